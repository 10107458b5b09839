import NFTables
import NetAddress

/// The nftables layout of Keel's service proxy (table `ip keel-proxy`).
///
/// kube-proxy's nftables layout gives every service a chain with an anonymous `numgen … vmap` set.
/// Two kernel costs make that O(n²) to load (≈122 s at 10K services here): binding each anonymous
/// set walks the whole transaction, and every chain that binds a map makes the kernel walk all of
/// the map's elements (`nf_tables_bind_check_setelem`). So Keel keeps both fixed, whatever the number
/// of services: a fixed set of maps, and a fixed set of chains that use them.
///
/// - `service-ips` vmap `daddr . proto . port → goto <selector>`: cluster, external and LB addresses
/// - `service-nodeports` vmap `proto . port → goto <selector>`, on `nodeport-ips`
/// - `endpoints` map `daddr . proto . port . index → backend addr . port`;
///   `nodeport-endpoints` map `proto . port . index → backend addr . port`
/// - `affinity` map `client . daddr . proto . port → backend addr . port` (dynamic, timeouts): ClientIP affinity
/// - `short-circuit-ips`, `short-circuit-nodeports` vmaps and `short-circuit-endpoints`,
///   `short-circuit-nodeport-endpoints` maps: the external addresses of externalTrafficPolicy Local
///   services for pods and the node itself, which use every backend (kube-proxy's short-circuit)
/// - `no-endpoint-services`, `no-endpoint-nodeports` vmaps: `goto reject` for services without any
///   endpoint (refused at once), `drop` for a Local traffic policy without an endpoint on this node
/// - `cluster-ips` and `service-cidrs` (interval): a cluster IP on a port no service uses is
///   refused, an unused address of the service ranges dropped (`cluster-ips-check`)
/// - `lb-restricted`, `lb-allowed` (interval) for loadBalancerSourceRanges; `hairpin` pairs
///
/// A selector chain is shared by every service with the same path, backend count and affinity
/// timeout (`svc-3`, `ext-2-a10800`, …): it marks for masquerade as its path requires, draws
/// `numgen random mod N`, looks the destination and the draw up in the endpoints map and DNATs. A
/// service's own state is only map elements (`contribution`), so changing one is element adds and
/// deletes, and a transaction grows linearly with what it carries.
public enum ServiceRuleset {
    public static let table = Table(.ip, "keel-proxy")
    /// The packet-mark bit that asks postrouting to masquerade (kube-proxy's 0x4000).
    public static let masqueradeMark: UInt32 = 0x4000

    /// Which traffic a selector chain handles, which decides masquerading and the endpoints map.
    public enum Path: String, Sendable, Hashable, Comparable, CaseIterable {
        /// Cluster IPs: clients outside the cluster CIDR are masqueraded.
        case cluster = "svc"
        /// External/LB addresses with externalTrafficPolicy Cluster: always masqueraded.
        case external = "ext"
        /// External/LB addresses with externalTrafficPolicy Local: never masqueraded.
        case externalLocal = "loc"
        case nodePort = "np"
        case nodePortLocal = "nploc"
        /// The external addresses of externalTrafficPolicy Local services, for pods and the node
        /// itself: every backend, the node masqueraded, pods not.
        case shortCircuit = "sc"
        case nodePortShortCircuit = "npsc"
        var isNodePort: Bool { self == .nodePort || self == .nodePortLocal || self == .nodePortShortCircuit }
        /// The map a selector of this path draws its backend from.
        var endpointsMap: String {
            switch self {
            case .cluster, .external, .externalLocal: "endpoints"
            case .nodePort, .nodePortLocal: "nodeport-endpoints"
            case .shortCircuit: "short-circuit-endpoints"
            case .nodePortShortCircuit: "short-circuit-nodeport-endpoints"
            }
        }
        public static func < (l: Self, r: Self) -> Bool { l.rawValue < r.rawValue }
    }

    /// A shared selector chain: path, backend count, affinity timeout.
    public struct Selector: Sendable, Hashable, Comparable {
        public var path: Path
        public var count: Int
        public var affinity: UInt32?
        public var chain: String { "\(path.rawValue)-\(count)" + (affinity.map { "-a\($0)" } ?? "") }
        public static func < (l: Self, r: Self) -> Bool { (l.path, l.count, l.affinity ?? 0) < (r.path, r.count, r.affinity ?? 0) }
    }

    /// What one service port adds to the table: elements per set, the selector chains it jumps to,
    /// and its shared elements (hairpin pairs another service may also need).
    public struct Contribution: Sendable, Equatable {
        public var elements: [String: [SetElement]] = [:]
        public var shared: [String: [SetElement]] = [:]
        public var selectors: Set<Selector> = []
    }

    /// A service port's elements and selectors. Pure.
    ///
    /// As kube-proxy's nftables mode: a service without any usable endpoint is refused on all its
    /// addresses; a Local traffic policy without an endpoint on this node drops what it governs
    /// (cluster-IP traffic for internalTrafficPolicy, outside clients for externalTrafficPolicy),
    /// while pods and the node itself still reach an externalTrafficPolicy Local service's external
    /// addresses through every backend.
    public static func contribution(_ svc: ServicePortState) -> Contribution {
        var c = Contribution()
        let proto = DataValue.proto(IPProtocol(rawValue: svc.name.proto.number))
        let port = DataValue.port(svc.port)
        let noLocalEndpoint: Verdict = svc.hasEndpoints ? .drop : .goto("reject")
        func add(_ set: String, _ e: SetElement) { c.elements[set, default: []].append(e) }
        func select(_ path: Path, _ list: [Backend], key: [DataValue]) -> Verdict {
            for (i, b) in list.enumerated() where b.address.isIPv4 {
                add(path.endpointsMap, SetElement(key + [.mark(UInt32(i))], data: [.ip(b.address), .port(b.port)]))
                c.shared["hairpin", default: []].append(SetElement([.ip(b.address), .ip(b.address)]))
            }
            let s = Selector(path: path, count: list.count, affinity: svc.affinityTimeout)
            c.selectors.insert(s)
            return .goto(s.chain)
        }

        for ip in svc.clusterIPs where ip.isIPv4 {
            let key: [DataValue] = [.ip(ip), proto, port]
            c.shared["cluster-ips", default: []].append(SetElement(.ip(ip)))
            if svc.internalBackends.isEmpty {
                add("no-endpoint-services", SetElement(key, verdict: noLocalEndpoint))
            } else {
                add("service-ips", SetElement(key, verdict: select(.cluster, svc.internalBackends, key: key)))
            }
        }
        for ip in (svc.externalIPs + svc.loadBalancerIPs) where ip.isIPv4 {
            let key: [DataValue] = [.ip(ip), proto, port]
            if svc.externalLocal && svc.hasEndpoints {
                add("short-circuit-ips", SetElement(key, verdict: select(.shortCircuit, svc.clusterBackends, key: key)))
            }
            if svc.externalBackends.isEmpty {
                add("no-endpoint-services", SetElement(key, verdict: noLocalEndpoint))
            } else {
                add("service-ips", SetElement(key, verdict: select(svc.externalLocal ? .externalLocal : .external, svc.externalBackends, key: key)))
            }
        }
        if let np = svc.nodePort {
            let key: [DataValue] = [proto, .port(np)]
            if svc.externalLocal && svc.hasEndpoints {
                add("short-circuit-nodeports", SetElement(key, verdict: select(.nodePortShortCircuit, svc.clusterBackends, key: key)))
            }
            if svc.externalBackends.isEmpty {
                add("no-endpoint-nodeports", SetElement(key, verdict: noLocalEndpoint))
            } else {
                add("service-nodeports", SetElement(key, verdict: select(svc.externalLocal ? .nodePortLocal : .nodePort, svc.externalBackends, key: key)))
            }
        }
        let ranges = svc.loadBalancerSourceRanges.filter { $0.family == .ipv4 }
        if !ranges.isEmpty {
            for ip in svc.loadBalancerIPs where ip.isIPv4 {
                add("lb-restricted", SetElement([.ip(ip), proto, port]))
                for r in ranges {
                    add("lb-allowed", SetElement([.ip(ip), proto, port, .ip(r.network)], to: [.ip(ip), proto, port, .ip(r.last)]))
                }
            }
        }
        return c
    }

    /// Sets and maps of the layout, without elements.
    public static var sets: [NFTSet] {
        let t = table
        return [
            NFTSet(t, "service-ips", key: [.ipv4Address, .inetProto, .inetService], mapping: .verdict),
            NFTSet(t, "service-nodeports", key: [.inetProto, .inetService], mapping: .verdict),
            NFTSet(t, "nodeport-ips", key: [.ipv4Address]),
            NFTSet(t, "no-endpoint-services", key: [.ipv4Address, .inetProto, .inetService], mapping: .verdict),
            NFTSet(t, "no-endpoint-nodeports", key: [.inetProto, .inetService], mapping: .verdict),
            NFTSet(t, "short-circuit-ips", key: [.ipv4Address, .inetProto, .inetService], mapping: .verdict),
            NFTSet(t, "short-circuit-nodeports", key: [.inetProto, .inetService], mapping: .verdict),
            NFTSet(t, "endpoints", key: [.ipv4Address, .inetProto, .inetService, .mark], mapping: .data([.ipv4Address, .inetService])),
            NFTSet(t, "nodeport-endpoints", key: [.inetProto, .inetService, .mark], mapping: .data([.ipv4Address, .inetService])),
            NFTSet(t, "short-circuit-endpoints", key: [.ipv4Address, .inetProto, .inetService, .mark], mapping: .data([.ipv4Address, .inetService])),
            NFTSet(t, "short-circuit-nodeport-endpoints", key: [.inetProto, .inetService, .mark], mapping: .data([.ipv4Address, .inetService])),
            NFTSet(t, "cluster-ips", key: [.ipv4Address]),
            NFTSet(t, "service-cidrs", key: [.ipv4Address], flags: .interval),
            NFTSet(t, "affinity", key: [.ipv4Address, .ipv4Address, .inetProto, .inetService], mapping: .data([.ipv4Address, .inetService]),
                   flags: [.dynamic, .timeout], maxElements: 65535),
            NFTSet(t, "hairpin", key: [.ipv4Address, .ipv4Address]),
            NFTSet(t, "lb-restricted", key: [.ipv4Address, .inetProto, .inetService]),
            NFTSet(t, "lb-allowed", key: [.ipv4Address, .inetProto, .inetService, .ipv4Address], flags: .interval),
        ]
    }

    /// The static chains and rules (everything but selector chains and elements).
    static func skeleton(clusterCIDR: CIDR?) -> (chains: [Chain], rules: [Rule]) {
        let t = table
        let prerouting = Chain(t, "prerouting", type: .nat, hook: .prerouting, priority: .dstnat)
        let output = Chain(t, "output", type: .nat, hook: .output, priority: .dstnat)
        let postrouting = Chain(t, "postrouting", type: .nat, hook: .postrouting, priority: .srcnat)
        let services = Chain(t, "services")
        let firewall = Chain(t, "firewall", type: .filter, hook: .prerouting, priority: ChainPriority(rawValue: -110))
        let filterInput = Chain(t, "filter-input", type: .filter, hook: .input, priority: -10)
        let filterForward = Chain(t, "filter-forward", type: .filter, hook: .forward, priority: -10)
        let filterOutput = Chain(t, "filter-output", type: .filter, hook: .output, priority: -10)
        let reject = Chain(t, "reject")
        let shortCircuit = Chain(t, "short-circuit")
        let clusterIPsCheck = Chain(t, "cluster-ips-check")
        let key3: [Field] = [.ipv4.daddr, .l4proto, .th.dport]
        var rules = [
            Rule(prerouting, [.jump("services")]),
            Rule(output, [.jump("services")]),
        ]
        // Pods (by the cluster CIDR) and the node itself reach externalTrafficPolicy Local services
        // through every backend, before the external path that keeps to this node's.
        if let cidr = clusterCIDR, cidr.family == .ipv4 {
            rules.append(Rule(services, comment: "pod traffic to external addresses", [.match(.ipv4.saddr, in: cidr), .jump("short-circuit")]))
        }
        rules += [
            Rule(services, comment: "node traffic to external addresses", [.match(.fibSourceType, equals: .integer(2)), .jump("short-circuit")]),
            Rule(shortCircuit, [.vmap("short-circuit-ips", key: key3)]),
            Rule(shortCircuit, [.lookup(in: "nodeport-ips", key: [.ipv4.daddr]), .vmap("short-circuit-nodeports", key: [.l4proto, .th.dport])]),
            Rule(services, [.vmap("service-ips", key: key3)]),
            Rule(services, [.lookup(in: "nodeport-ips", key: [.ipv4.daddr]), .vmap("service-nodeports", key: [.l4proto, .th.dport])]),
            Rule(firewall, comment: "loadBalancerSourceRanges", [.lookup(in: "lb-restricted", key: key3),
                                                                   .lookup(notIn: "lb-allowed", key: key3 + [.ipv4.saddr]), .drop]),
            Rule(postrouting, comment: "hairpin", [.lookup(in: "hairpin", key: [.ipv4.saddr, .ipv4.daddr]), .masquerade]),
            Rule(postrouting, comment: "marked for masquerade", [.expressions(markIsSet()), .masquerade]),
            Rule(reject, [.reject(.icmp(code: 3))]),   // port unreachable: the client's connect fails at once
            // Reached after DNAT (forward, and output at priority -10 > dstnat): a packet still
            // addressed to a cluster IP matched none of its service ports.
            Rule(clusterIPsCheck, comment: "ports no service of a cluster IP uses", [.lookup(in: "cluster-ips", key: [.ipv4.daddr]), .reject(.icmp(code: 3))]),
            Rule(clusterIPsCheck, comment: "service range addresses no service holds", [.lookup(in: "service-cidrs", key: [.ipv4.daddr]), .drop]),
        ]
        for chain in [filterInput, filterForward, filterOutput] {
            rules.append(Rule(chain, comment: "services without endpoints", [.ctState(.new), .vmap("no-endpoint-services", key: key3)]))
        }
        rules.append(Rule(filterInput, comment: "node ports without endpoints",
                          [.ctState(.new), .lookup(in: "nodeport-ips", key: [.ipv4.daddr]), .vmap("no-endpoint-nodeports", key: [.l4proto, .th.dport])]))
        for chain in [filterForward, filterOutput] {
            rules.append(Rule(chain, [.ctState(.new), .jump("cluster-ips-check")]))
        }
        return ([prerouting, output, postrouting, services, shortCircuit, firewall, filterInput, filterForward, filterOutput, reject,
                 clusterIPsCheck], rules)
    }

    /// A selector chain and its rules.
    ///
    /// Registers: s0 client, s1 destination, s2 protocol, s3 port, s4 index — so the affinity key
    /// (s0…s3), the endpoints key (s1…s4) and the node-port endpoints key (s2…s4) are contiguous.
    static func selectorChain(_ s: Selector, clusterCIDR: CIDR?) -> (Chain, [Rule]) {
        let t = table
        let chain = Chain(t, s.chain)
        var rules: [Rule] = []
        switch s.path {
        case .cluster:
            if let cidr = clusterCIDR {
                rules.append(Rule(chain, comment: "clients outside the cluster CIDR", [.match(.ipv4.saddr, notIn: cidr), .expressions(setMark())]))
            }
        case .external, .nodePort:
            rules.append(Rule(chain, comment: "externalTrafficPolicy Cluster: masquerade", [.expressions(setMark())]))
        case .externalLocal, .nodePortLocal:
            break   // the client's address is kept
        case .shortCircuit, .nodePortShortCircuit:
            // The node's own connections leave with a node address as their source, which a
            // backend on another node could not answer; pods keep theirs (kube-proxy alike).
            rules.append(Rule(chain, comment: "the node's own traffic", [.match(.fibSourceType, equals: .integer(2)), .expressions(setMark())]))
        }
        let map = s.path.endpointsMap
        let keyStart: Register = s.path.isNodePort ? .slot(2) : .slot(1)
        let load: [Expression] = [
            .payload(.network, offset: 16, length: 4, into: .slot(1)),
            .meta(.l4proto, into: .slot(2)),
            .payload(.transport, offset: 2, length: 2, into: .slot(3)),
        ]
        let dnat: [Expression] = [
            .lookup(set: map, source: keyStart, into: .slot(5), inverted: false),
            .nat(NATExpression(.dnat, family: .ip, addressMin: .slot(5), portMin: .slot(6))),
        ]
        let saddr = Expression.payload(.network, offset: 12, length: 4, into: .slot(0))
        if let timeout = s.affinity {
            // The affinity map remembers the backend itself (not an index), so that no rule feeds a
            // map lookup's result into another lookup's key: nft (1.0.6) cannot print that.
            rules.append(Rule(chain, comment: "ClientIP affinity", [.expressions([saddr] + load + [
                .lookup(set: "affinity", source: .slot(0), into: .slot(5), inverted: false),
                .dynset(DynamicSetUpdate(.update, set: "affinity", keyRegister: .slot(0), dataRegister: .slot(5),
                                         timeout: .seconds(Int64(timeout)))),
                .nat(NATExpression(.dnat, family: .ip, addressMin: .slot(5), portMin: .slot(6))),
            ])]))
            rules.append(Rule(chain, comment: "\(s.count) backends, remembered for \(timeout) s", [.expressions([saddr] + load + [
                .numgen(.random, modulus: UInt32(s.count), offset: 0, into: .slot(4)),
                .lookup(set: map, source: keyStart, into: .slot(5), inverted: false),
                .dynset(DynamicSetUpdate(.add, set: "affinity", keyRegister: .slot(0), dataRegister: .slot(5),
                                         timeout: .seconds(Int64(timeout)))),
                .nat(NATExpression(.dnat, family: .ip, addressMin: .slot(5), portMin: .slot(6))),
            ])]))
        } else {
            rules.append(Rule(chain, comment: "\(s.count) backends", [.expressions(load + [
                .numgen(.random, modulus: UInt32(s.count), offset: 0, into: .slot(4)),
            ] + dnat)]))
        }
        return (chain, rules)
    }

    /// The whole desired table for `state`. Pure.
    public static func ruleset(_ state: ProxyState) -> Ruleset {
        ruleset(state, contributions: state.services.map(contribution))
    }

    /// The whole desired table for `state`, from the contributions of its services (computed once
    /// by a data plane that keeps them).
    static func ruleset(_ state: ProxyState, contributions: [Contribution]) -> Ruleset {
        var (chains, rules) = skeleton(clusterCIDR: state.clusterCIDR)
        var elements: [String: Set<SetElement>] = [:]
        var selectors = Set<Selector>()
        for c in contributions {
            for (set, list) in c.elements { elements[set, default: []].formUnion(list) }
            for (set, list) in c.shared { elements[set, default: []].formUnion(list) }
            selectors.formUnion(c.selectors)
        }
        elements["nodeport-ips"] = Set(state.nodePortAddresses.filter(\.isIPv4).map { SetElement(.ip($0)) })
        elements["service-cidrs"] = serviceCIDRElements(state.serviceCIDRs)
        for s in selectors.sorted() {
            let (chain, chainRules) = selectorChain(s, clusterCIDR: state.clusterCIDR)
            chains.append(chain)
            rules += chainRules
        }
        let sets = Self.sets.map { s -> NFTSet in
            var s = s
            s.elements = elements[s.name] ?? []
            return s
        }
        return Ruleset(tables: [table], chains: chains, sets: sets, rules: rules)
    }

    /// The `service-cidrs` elements: IPv4 ranges, disjoint (``ProxyState`` keeps them so, but its
    /// field can be set directly, and one overlap would fail the whole transaction).
    static func serviceCIDRElements(_ cidrs: [CIDR]) -> Set<SetElement> {
        Set(ProxyState.outermost(cidrs.filter { $0.family == .ipv4 }).map { SetElement(prefix: $0) })
    }

    /// meta mark |= 0x4000
    static func setMark() -> [Expression] {
        [.meta(.mark, into: .slot(0)),
         .bitwise(source: .slot(0), into: .slot(0), mask: DataValue.mark(~masqueradeMark).bytes, xor: DataValue.mark(masqueradeMark).bytes),
         .setMeta(.mark, from: .slot(0))]
    }

    /// meta mark & 0x4000 != 0
    static func markIsSet() -> [Expression] {
        [.meta(.mark, into: .slot(0)),
         .bitwise(source: .slot(0), into: .slot(0), mask: DataValue.mark(masqueradeMark).bytes, xor: DataValue.mark(0).bytes),
         .cmp(.slot(0), .neq, DataValue.mark(0).bytes)]
    }
}
