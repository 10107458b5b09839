import NFTables
import NetAddress

/// One allow rule after selectors, named ports and ipBlocks were resolved: source (ingress) or
/// destination (egress) address ranges, and protocol/port ranges.
public struct CompiledRule: Sendable, Hashable {
    /// Where it comes from, for comments and `keelctl`: `ns/policy ingress[0]`.
    public var label: String
    public var peers: [AddressRange]
    public var ports: [PortRange]

    /// Stable id: FNV-1a over what the rule matches (two pods whose named port resolves differently
    /// get two ids; two pods under the same rule and ports share one). Computed once: rendering
    /// asks for it per element and per pod.
    public let id: UInt32

    public init(label: String, peers: [AddressRange], ports: [PortRange]) {
        self.label = label
        self.peers = peers.sorted()
        self.ports = ports.sorted()
        var h: UInt32 = 2_166_136_261
        func mix(_ v: UInt32) { for shift in stride(from: 0, to: 32, by: 8) { h = (h ^ ((v >> UInt32(shift)) & 0xff)) &* 16_777_619 } }
        for b in label.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        for p in self.peers { mix(p.low.value); mix(p.high.value) }
        for p in self.ports { mix(UInt32(p.protoLow) << 8 | UInt32(p.protoHigh)); mix(UInt32(p.low) << 16 | UInt32(p.high)) }
        id = h == 0 ? 1 : h
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
    public static func < (l: Self, r: Self) -> Bool { (l.protoLow, l.protoHigh, l.low, l.high) < (r.protoLow, r.protoHigh, r.low, r.high) }
    public var description: String { self == .all ? "any" : "\(protoLow)/\(low == high ? "\(low)" : "\(low)-\(high)")" }
}

/// A pod of this node and what its policies allow; nil sides are not isolated.
public struct CompiledPod: Sendable, Hashable {
    public var name: String
    public var address: IPv4Address
    public var ingress: [CompiledRule]?
    public var egress: [CompiledRule]?
    public init(name: String, address: IPv4Address, ingress: [CompiledRule]?, egress: [CompiledRule]?) {
        self.name = name
        self.address = address
        self.ingress = ingress
        self.egress = egress
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
        var dispatch: [String: Set<SetElement>] = ["ingress-pods": [], "egress-pods": []]
        var allow: [String: Set<SetElement>] = ["ingress-rules": [], "egress-rules": []]
        var groups: [String: [CompiledRule]] = [:]
        var emitted: [String: Set<UInt32>] = ["ingress": [], "egress": []]
        for pod in pods.sorted(by: { $0.address < $1.address }) {
            for (side, compiled) in [("ingress", pod.ingress), ("egress", pod.egress)] {
                guard let compiled else { continue }
                let ids = compiled.map(\.id).sorted()
                let group = "\(side)-" + String(fnv(ids.map(String.init).joined(separator: ",")), radix: 16)
                groups[group] = compiled
                dispatch["\(side)-pods"]!.insert(SetElement([.ipv4(pod.address)], verdict: .jump(group)))
                // A rule shared by many pods has its elements once.
                for rule in compiled where emitted[side]!.insert(rule.id).inserted {
                    for peer in rule.peers {
                        for port in rule.ports {
                            allow["\(side)-rules"]!.insert(SetElement(
                                [.mark(rule.id), .ipv4(peer.low), .proto(IPProtocol(rawValue: port.protoLow)), .port(port.low)],
                                to: [.mark(rule.id), .ipv4(peer.high), .proto(IPProtocol(rawValue: port.protoHigh)), .port(port.high)]))
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
            for rule in compiled.sorted(by: { $0.id < $1.id }) where seen.insert(rule.id).inserted {
                let peer: Expression = .payload(.network, offset: side == "ingress" ? 12 : 16, length: 4, into: .slot(1))
                rules.append(Rule(t, chain: group, comment: rule.label, [.expressions([
                    .immediate(DataValue.mark(rule.id).bytes, into: .slot(0)), peer,
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
}

func fnv(_ s: String) -> UInt32 {
    var h: UInt32 = 2_166_136_261
    for b in s.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
    return h
}
