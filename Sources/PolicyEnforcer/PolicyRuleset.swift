import NFTables
import NetAddress

/// One allow rule after selectors, named ports and ipBlocks were resolved: source (ingress) or
/// destination (egress) address ranges, and protocol/port ranges.
///
/// Peers and ports are normalized on the way in (``AddressRange/union(_:)``, ``PortRange/union(_:)``):
/// disjoint, sorted, adjacent ranges merged. The rule's elements are the product of the two lists,
/// so they never overlap: the kernel refuses an element with a corner inside another one of the set
/// (EEXIST), and with it the whole transaction. Overlaps are normal input: a namespace selector whose pods lie inside
/// an ipBlock of the same rule, two overlapping ipBlocks, `port: 80` next to a range with 80 in it.
public struct CompiledRule: Sendable, Hashable {
    /// Where it comes from, for comments and `keelctl`: `ns/policy ingress[0]`.
    public var label: String
    /// The policy the rule belongs to, when it comes from one: what a failure to program is blamed on.
    public var policy: PolicyRef?
    public private(set) var peers: [AddressRange]
    public private(set) var ports: [PortRange]

    /// Stable id: FNV-1a over what the rule matches (two pods whose named port resolves differently
    /// get two ids; two pods under the same rule and ports share one). Computed once: rendering
    /// asks for it per element and per pod. Two different rules with one id are told apart by
    /// ``PolicyRuleset`` (it re-hashes the later one).
    public let id: UInt32

    public init(label: String, policy: PolicyRef? = nil, peers: [AddressRange], ports: [PortRange]) {
        self.label = label
        self.policy = policy
        self.peers = AddressRange.union(peers)
        self.ports = PortRange.union(ports)
        var h: UInt32 = 2_166_136_261
        func mix(_ v: UInt32) { for shift in stride(from: 0, to: 32, by: 8) { h = (h ^ ((v >> UInt32(shift)) & 0xff)) &* 16_777_619 } }
        for b in label.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        for p in self.peers { mix(p.low.value); mix(p.high.value) }
        for p in self.ports { mix(UInt32(p.protoLow) << 8 | UInt32(p.protoHigh)); mix(UInt32(p.low) << 16 | UInt32(p.high)) }
        id = h == 0 ? 1 : h
    }

    /// Whether the rule admits `address` with `proto`/`port` (what its elements match in the kernel).
    public func admits(_ address: IPv4Address, proto: UInt8, port: UInt16) -> Bool {
        peers.contains { $0.low <= address && address <= $0.high }
            && ports.contains { $0.protoLow <= proto && proto <= $0.protoHigh && $0.low <= port && port <= $0.high }
    }
}

/// An inclusive IPv4 range (a pod address is a range of one; an ipBlock with excepts is several).
public struct AddressRange: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var low: IPv4Address
    public var high: IPv4Address
    public init(_ low: IPv4Address, _ high: IPv4Address) {
        self.low = low
        self.high = high
    }
    public static let all = AddressRange(IPv4Address(0), IPv4Address(.max))
    public static func < (l: Self, r: Self) -> Bool { (l.low, l.high) < (r.low, r.high) }
    public var description: String { low == high ? "\(low)" : "\(low)-\(high)" }

    /// The same addresses as `ranges`, as disjoint sorted ranges, overlapping and adjacent ones merged.
    public static func union(_ ranges: [AddressRange]) -> [AddressRange] {
        var merged: [AddressRange] = []
        for r in ranges.sorted() {
            // Adjacent: the last range ends right before this one (no overflow: high < .max there).
            if let last = merged.last, r.low <= last.high || (last.high.value != .max && r.low.value == last.high.value + 1) {
                if r.high > last.high { merged[merged.count - 1].high = r.high }
            } else {
                merged.append(r)
            }
        }
        return merged
    }

    /// `cidr` minus `except`, as the ranges that remain.
    public static func ranges(of cidr: CIDR, except: [CIDR]) -> [AddressRange] {
        guard case .v4(let first) = cidr.network, case .v4(let last) = cidr.last else { return [] }
        var remaining = [AddressRange(first, last)]
        for hole in except {
            guard case .v4(let lo) = hole.network, case .v4(let hi) = hole.last else { continue }
            remaining = remaining.flatMap { r -> [AddressRange] in
                guard hi >= r.low, lo <= r.high else { return [r] }
                var pieces: [AddressRange] = []
                if lo > r.low { pieces.append(AddressRange(r.low, IPv4Address(lo.value - 1))) }
                if hi < r.high { pieces.append(AddressRange(IPv4Address(hi.value + 1), r.high)) }
                return pieces
            }
        }
        return remaining
    }
}

/// Protocol and destination-port ranges (all protocols and ports: `.all`).
public struct PortRange: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var protoLow: UInt8, protoHigh: UInt8
    public var low: UInt16, high: UInt16
    public init(proto: UInt8, _ low: UInt16, _ high: UInt16) {
        protoLow = proto
        protoHigh = proto
        self.low = low
        self.high = high
    }
    init(protoLow: UInt8, protoHigh: UInt8, low: UInt16, high: UInt16) {
        self.protoLow = protoLow
        self.protoHigh = protoHigh
        self.low = low
        self.high = high
    }
    public static let all = PortRange(protoLow: 0, protoHigh: 255, low: 0, high: 65535)

    /// The same protocol/port pairs as `ranges`, as disjoint sorted ranges: `[.all]` when any range
    /// covers every protocol, else per protocol the port ranges merged (a range over several
    /// protocols is taken one protocol at a time).
    public static func union(_ ranges: [PortRange]) -> [PortRange] {
        if ranges.contains(where: { $0.protoLow == 0 && $0.protoHigh == 255 && $0.low == 0 && $0.high == 65535 }) { return [.all] }
        var byProto: [UInt8: [(low: UInt16, high: UInt16)]] = [:]
        for r in ranges where r.protoLow <= r.protoHigh && r.low <= r.high {
            for proto in r.protoLow...r.protoHigh { byProto[proto, default: []].append((r.low, r.high)) }
        }
        var out: [PortRange] = []
        for proto in byProto.keys.sorted() {
            var merged: [(low: UInt16, high: UInt16)] = []
            for r in byProto[proto]!.sorted(by: { ($0.low, $0.high) < ($1.low, $1.high) }) {
                if let last = merged.last, r.low <= last.high || (last.high != .max && r.low == last.high + 1) {
                    merged[merged.count - 1].high = max(last.high, r.high)
                } else {
                    merged.append(r)
                }
            }
            out += merged.map { PortRange(proto: proto, $0.low, $0.high) }
        }
        return out
    }
    public static func < (l: Self, r: Self) -> Bool { (l.protoLow, l.protoHigh, l.low, l.high) < (r.protoLow, r.protoHigh, r.low, r.high) }
    public var description: String { self == .all ? "any" : "\(protoLow)/\(low == high ? "\(low)" : "\(low)-\(high)")" }
}

/// A pod of this node and what its policies allow; nil sides are not isolated.
public struct CompiledPod: Sendable, Hashable {
    public var name: String
    public var address: IPv4Address
    public var ingress: [CompiledRule]?
    public var egress: [CompiledRule]?
    /// The policies that isolate the pod per side (those with no rule here too, such as a default deny).
    public var ingressPolicies: Set<PolicyRef>
    public var egressPolicies: Set<PolicyRef>
    public init(name: String, address: IPv4Address, ingress: [CompiledRule]?, egress: [CompiledRule]?,
                ingressPolicies: Set<PolicyRef> = [], egressPolicies: Set<PolicyRef> = []) {
        self.name = name
        self.address = address
        self.ingress = ingress
        self.egress = egress
        self.ingressPolicies = ingressPolicies
        self.egressPolicies = egressPolicies
    }

    /// The pod with every side that `excluded` policies isolate or contribute to reduced to "allow
    /// nothing": what cannot be programmed fails closed, the pod's other side is untouched.
    public func failingClosed(excluding excluded: Set<PolicyRef>) -> CompiledPod {
        guard !excluded.isEmpty else { return self }
        func touched(_ rules: [CompiledRule]?, _ policies: Set<PolicyRef>) -> Bool {
            !policies.isDisjoint(with: excluded) || (rules ?? []).contains { $0.policy.map(excluded.contains) ?? false }
        }
        var pod = self
        if ingress != nil, touched(ingress, ingressPolicies) { pod.ingress = [] }
        if egress != nil, touched(egress, egressPolicies) { pod.egress = [] }
        return pod
    }
}

/// The nftables layout of Keel's policy enforcer (table `ip keel-policy`), a fixed number of sets
/// whatever the number of pods and policies:
///
/// - `ingress-pods` / `egress-pods` vmaps: this node's isolated pod address → `jump` its group chain
/// - `ingress-rules` / `egress-rules`: `rule id . peer range . proto range . port range` (intervals)
///
/// A group chain (pods whose compiled rules are the same share one) has one rule per allow rule —
/// load the rule's id, the peer address, protocol and port, look the tuple up, `return` on a hit —
/// and ends in `drop`. The `forward` chain accepts established flows first (replies always pass),
/// then sends new flows through the source's egress and the destination's ingress group. The node's
/// own traffic to its pods (kubelet probes) goes through `output`, not `forward`, and stays open.
/// Bridged pod-to-pod traffic reaches `forward` through br_netfilter (`bridge-nf-call-iptables`).
public enum PolicyRuleset {
    public static let table = Table(.ip, "keel-policy")

    public static func ruleset(_ pods: [CompiledPod]) -> Ruleset {
        let t = table
        let forward = Chain(t, "forward", type: .filter, hook: .forward, priority: .filter)
        var chains = [forward], rules: [Rule] = [
            Rule(forward, [.ctState([.established, .related]), .accept]),
            Rule(forward, [.vmap("egress-pods", key: [.ipv4.saddr])]),
            Rule(forward, [.vmap("ingress-pods", key: [.ipv4.daddr])]),
        ]
        let ids = RuleIDs(pods)
        var dispatch: [String: Set<SetElement>] = ["ingress-pods": [], "egress-pods": []]
        var allow: [String: Set<SetElement>] = ["ingress-rules": [], "egress-rules": []]
        var groups: [String: [CompiledRule]] = [:]
        var emitted: [String: Set<UInt32>] = ["ingress": [], "egress": []]
        for (address, sides) in dispatchSides(pods) {
            for (side, compiled) in [("ingress", sides.ingress), ("egress", sides.egress)] {
                guard let compiled else { continue }
                let group = "\(side)-" + String(fnv(compiled.map { ids[$0] }.sorted().map(String.init).joined(separator: ",")), radix: 16)
                groups[group] = compiled
                dispatch["\(side)-pods"]!.insert(SetElement([.ipv4(address)], verdict: .jump(group)))
                // A rule shared by many pods has its elements once.
                for rule in compiled where emitted[side]!.insert(ids[rule]).inserted {
                    for peer in rule.peers {
                        for port in rule.ports {
                            allow["\(side)-rules"]!.insert(SetElement(
                                [.mark(ids[rule]), .ipv4(peer.low), .proto(IPProtocol(rawValue: port.protoLow)), .port(port.low)],
                                to: [.mark(ids[rule]), .ipv4(peer.high), .proto(IPProtocol(rawValue: port.protoHigh)), .port(port.high)]))
                        }
                    }
                }
            }
        }
        for (group, compiled) in groups.sorted(by: { $0.key < $1.key }) {
            let side = group.hasPrefix("ingress") ? "ingress" : "egress"
            chains.append(Chain(t, group))
            // Unique rules only: two policies with the same rule need one lookup.
            var seen = Set<UInt32>()
            for rule in compiled.sorted(by: { ids[$0] < ids[$1] }) where seen.insert(ids[rule]).inserted {
                let peer: Expression = .payload(.network, offset: side == "ingress" ? 12 : 16, length: 4, into: .slot(1))
                rules.append(Rule(t, chain: group, comment: rule.label, [.expressions([
                    .immediate(DataValue.mark(ids[rule]).bytes, into: .slot(0)), peer,
                    .meta(.l4proto, into: .slot(2)),
                    .payload(.transport, offset: 2, length: 2, into: .slot(3)),
                    .lookup(set: "\(side)-rules", source: .slot(0), into: nil, inverted: false),
                ]), .return]))
            }
            rules.append(Rule(t, chain: group, comment: "isolated: not allowed by any policy", [.counter, .drop]))
        }
        let key: [DataType] = [.mark, .ipv4Address, .inetProto, .inetService]
        let sets = [
            NFTSet(t, "ingress-pods", key: [.ipv4Address], mapping: .verdict, elements: dispatch["ingress-pods"]!),
            NFTSet(t, "egress-pods", key: [.ipv4Address], mapping: .verdict, elements: dispatch["egress-pods"]!),
            NFTSet(t, "ingress-rules", key: key, flags: .interval, elements: allow["ingress-rules"]!),
            NFTSet(t, "egress-rules", key: key, flags: .interval, elements: allow["egress-rules"]!),
        ]
        return Ruleset(tables: [t], chains: chains, sets: sets, rules: rules)
    }

    /// Each address's rules per side, in address order. Two pods of the node with one address (a
    /// pod that is gone but still listed, an address reused) would be two keys of one map, which the
    /// kernel refuses: the address gets one entry, and where the pods' rules differ it allows
    /// nothing on that side (fail closed) rather than one pod's rules for the other.
    static func dispatchSides(_ pods: [CompiledPod]) -> [(IPv4Address, (ingress: [CompiledRule]?, egress: [CompiledRule]?))] {
        var byAddress: [IPv4Address: [CompiledPod]] = [:]
        for pod in pods { byAddress[pod.address, default: []].append(pod) }
        func side(_ lists: [[CompiledRule]?]) -> [CompiledRule]? {
            let isolated = lists.compactMap { $0 }
            guard let first = isolated.first else { return nil }
            return isolated.count == lists.count && isolated.allSatisfy({ Set($0) == Set(first) }) ? first : []
        }
        return byAddress.keys.sorted().map { address in
            let sharing = byAddress[address]!
            if sharing.count == 1 { return (address, (sharing[0].ingress, sharing[0].egress)) }
            return (address, (side(sharing.map(\.ingress)), side(sharing.map(\.egress))))
        }
    }
}

/// The id each distinct rule is programmed under. ``CompiledRule/id`` is a 32-bit hash, so two
/// different rules can share one; then the one that sorts later is re-hashed until its id is free,
/// since elements of one id are matched by every chain that looks that id up.
struct RuleIDs {
    private var assigned: [CompiledRule: UInt32] = [:]

    init(_ pods: [CompiledPod]) {
        var byID: [UInt32: [CompiledRule]] = [:]
        for pod in pods {
            for rule in (pod.ingress ?? []) + (pod.egress ?? []) where !(byID[rule.id]?.contains(rule) ?? false) {
                byID[rule.id, default: []].append(rule)
            }
        }
        var taken = Set(byID.keys)
        for (id, sharing) in byID where sharing.count > 1 {
            let ordered = sharing.sorted { "\($0.label) \($0.peers) \($0.ports)" < "\($1.label) \($1.peers) \($1.ports)" }
            for rule in ordered.dropFirst() {
                var next = id
                repeat { next = fnv(String(next) + "/" + rule.label); if next == 0 { next = 1 } } while taken.contains(next)
                taken.insert(next)
                assigned[rule] = next
            }
        }
    }

    subscript(rule: CompiledRule) -> UInt32 { assigned.isEmpty ? rule.id : assigned[rule] ?? rule.id }
}

func fnv(_ s: String) -> UInt32 {
    var h: UInt32 = 2_166_136_261
    for b in s.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
    return h
}
