import NFTables
import NetAddress

/// The nftables half of the IPVS data plane (table `ip keel-ipvs`): what IPVS cannot do itself.
/// IPVS balances; this table decides which clients are masqueraded and which packets never reach
/// IPVS. kube-proxy's IPVS mode does the same with iptables and ipsets; here every list is a set or
/// map, so the chains and rules are the same for 1 service or 10 000, and only three chains bind
/// maps (`services`, `postrouting`, `filter-input`: each binding walks the map's elements).
///
/// | set / map | key → value |
/// |---|---|
/// | `service-ips` | the addresses on `keel-ipvs0` (cluster, external, LB IPs) |
/// | `service-ports` | address . proto . port of every virtual service on them |
/// | `service-masquerade` (vmap) | address . proto . port → `jump masquerade-off-cluster` (cluster IPs) or `jump mark-for-masquerade` (external/LB, externalTrafficPolicy Cluster) |
/// | `nodeport-ips`, `nodeport-masquerade` (vmap) | node-port addresses; proto . node port → `jump mark-for-masquerade` (Cluster policy) |
/// | `no-endpoint-services`, `no-endpoint-nodeports` (vmaps) | → `goto reject` (no endpoint at all) or `drop` (externalTrafficPolicy Local, none on this node) |
/// | `lb-restricted`, `lb-allowed` (interval) | loadBalancerSourceRanges |
/// | `hairpin` | backend . backend: a pod reaching itself through a service is masqueraded (kube-proxy's KUBE-LOOP-BACK) |
///
/// `filter-input` (priority 0) runs before IPVS, which hooks LOCAL_IN at priority 98
/// (NF_IP_PRI_NAT_SRC − 2): source ranges, no-endpoint rejects, and a reject of new connections
/// to a service address on a port that is no service of it — addresses on a dummy interface are
/// local, and without it the node's own listeners on 0.0.0.0 (sshd, kubelet) would answer on every
/// cluster IP. Marks are set in `nat` prerouting/output and masqueraded in `postrouting`, where
/// IPVS's rewritten packet passes with `net.ipv4.vs.conntrack=1`.
public enum IPVSRuleset {
    public static let table = Table(.ip, "keel-ipvs")
    /// The same bit as the nftables plane's (kube-proxy's 0x4000); only one of the two tables exists.
    public static let masqueradeMark = ServiceRuleset.masqueradeMark

    /// Sets and maps of the layout, without elements.
    public static var sets: [NFTSet] {
        let t = table
        let key3: [DataType] = [.ipv4Address, .inetProto, .inetService]
        return [
            NFTSet(t, "service-ips", key: [.ipv4Address]),
            NFTSet(t, "service-ports", key: key3),
            NFTSet(t, "service-masquerade", key: key3, mapping: .verdict),
            NFTSet(t, "nodeport-ips", key: [.ipv4Address]),
            NFTSet(t, "nodeport-masquerade", key: [.inetProto, .inetService], mapping: .verdict),
            NFTSet(t, "no-endpoint-services", key: key3, mapping: .verdict),
            NFTSet(t, "no-endpoint-nodeports", key: [.inetProto, .inetService], mapping: .verdict),
            NFTSet(t, "lb-restricted", key: key3),
            NFTSet(t, "lb-allowed", key: key3 + [.ipv4Address], flags: .interval),
            NFTSet(t, "hairpin", key: [.ipv4Address, .ipv4Address]),
        ]
    }

    /// The chains and rules; they depend on the cluster CIDR only.
    static func skeleton(clusterCIDR: CIDR?) -> (chains: [Chain], rules: [Rule]) {
        let t = table
        let prerouting = Chain(t, "prerouting", type: .nat, hook: .prerouting, priority: .dstnat)
        let output = Chain(t, "output", type: .nat, hook: .output, priority: .dstnat)
        let postrouting = Chain(t, "postrouting", type: .nat, hook: .postrouting, priority: .srcnat)
        let services = Chain(t, "services")
        let offCluster = Chain(t, "masquerade-off-cluster")
        let mark = Chain(t, "mark-for-masquerade")
        let filterInput = Chain(t, "filter-input", type: .filter, hook: .input, priority: .filter)
        let reject = Chain(t, "reject")
        let key3: [Field] = [.ipv4.daddr, .l4proto, .th.dport]
        var rules = [
            Rule(prerouting, [.jump("services")]),
            Rule(output, [.jump("services")]),
            Rule(services, [.vmap("service-masquerade", key: key3)]),
            Rule(services, [.lookup(in: "nodeport-ips", key: [.ipv4.daddr]), .vmap("nodeport-masquerade", key: [.l4proto, .th.dport])]),
            Rule(mark, [.expressions(ServiceRuleset.setMark())]),
            Rule(postrouting, comment: "hairpin", [.lookup(in: "hairpin", key: [.ipv4.saddr, .ipv4.daddr]), .masquerade]),
            Rule(postrouting, comment: "marked for masquerade", [.expressions(ServiceRuleset.markIsSet()), .masquerade]),
            Rule(filterInput, comment: "loadBalancerSourceRanges", [.lookup(in: "lb-restricted", key: key3),
                                                                     .lookup(notIn: "lb-allowed", key: key3 + [.ipv4.saddr]), .drop]),
            Rule(filterInput, comment: "services without endpoints", [.ctState(.new), .vmap("no-endpoint-services", key: key3)]),
            Rule(filterInput, comment: "node ports without endpoints",
                 [.ctState(.new), .lookup(in: "nodeport-ips", key: [.ipv4.daddr]), .vmap("no-endpoint-nodeports", key: [.l4proto, .th.dport])]),
            Rule(filterInput, comment: "service addresses answer on their service ports only",
                 [.ctState(.new), .lookup(in: "service-ips", key: [.ipv4.daddr]), .lookup(notIn: "service-ports", key: key3), .goto("reject")]),
            Rule(reject, [.reject(.icmp(code: 3))]),   // port unreachable: the client's connect fails at once
        ]
        if let cidr = clusterCIDR, cidr.family == .ipv4 {
            rules.append(Rule(offCluster, comment: "clients outside the cluster CIDR",
                              [.match(.ipv4.saddr, notIn: cidr), .expressions(ServiceRuleset.setMark())]))
        }
        return ([prerouting, output, postrouting, services, offCluster, mark, filterInput, reject], rules)
    }

    /// The elements one service port contributes, per set. Pure.
    static func elements(of svc: ServicePortState, into elements: inout [String: Set<SetElement>]) {
        let proto = DataValue.proto(IPProtocol(rawValue: svc.name.proto.number))
        let port = DataValue.port(svc.port)
        // No endpoint anywhere: refused. Endpoints, none on this node for a Local policy: dropped (kube-proxy).
        let noLocalEndpoint: Verdict = svc.hasEndpoints ? .drop : .goto("reject")
        func add(_ set: String, _ e: SetElement) { elements[set, default: []].insert(e) }

        for ip in svc.clusterIPs where ip.isIPv4 {
            let key: [DataValue] = [.ip(ip), proto, port]
            add("service-ips", SetElement(.ip(ip)))
            add("service-ports", SetElement(key))
            add("service-masquerade", SetElement(key, verdict: .jump("masquerade-off-cluster")))
            if svc.internalBackends.isEmpty { add("no-endpoint-services", SetElement(key, verdict: noLocalEndpoint)) }
        }
        for ip in svc.externalIPs + svc.loadBalancerIPs where ip.isIPv4 {
            let key: [DataValue] = [.ip(ip), proto, port]
            add("service-ips", SetElement(.ip(ip)))
            add("service-ports", SetElement(key))
            if !svc.externalLocal { add("service-masquerade", SetElement(key, verdict: .jump("mark-for-masquerade"))) }
            if svc.externalBackends.isEmpty { add("no-endpoint-services", SetElement(key, verdict: noLocalEndpoint)) }
        }
        if let np = svc.nodePort {
            let key: [DataValue] = [proto, .port(np)]
            if !svc.externalLocal { add("nodeport-masquerade", SetElement(key, verdict: .jump("mark-for-masquerade"))) }
            if svc.externalBackends.isEmpty { add("no-endpoint-nodeports", SetElement(key, verdict: noLocalEndpoint)) }
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
        var backends = svc.internalBackends + svc.terminatingInternalBackends
        if svc.hasExternalEntry { backends += svc.externalBackends + svc.terminatingExternalBackends }
        for b in backends where b.address.isIPv4 { add("hairpin", SetElement([.ip(b.address), .ip(b.address)])) }
    }

    /// The whole desired table for `state`. Pure.
    public static func ruleset(_ state: ProxyState) -> Ruleset {
        var elements: [String: Set<SetElement>] = [:]
        for svc in state.services { Self.elements(of: svc, into: &elements) }
        return ruleset(clusterCIDR: state.clusterCIDR, nodePortAddresses: state.nodePortAddresses, serviceElements: elements)
    }

    /// The whole table from the service ports' elements already gathered (`IPVSPortLedger`). Pure.
    static func ruleset(clusterCIDR: CIDR?, nodePortAddresses: [IPAddress], serviceElements: [String: Set<SetElement>]) -> Ruleset {
        let (chains, rules) = skeleton(clusterCIDR: clusterCIDR)
        var elements = serviceElements
        elements["nodeport-ips"] = Set(nodePortAddresses.filter(\.isIPv4).map { SetElement(.ip($0)) })
        let sets = Self.sets.map { s -> NFTSet in
            var s = s
            s.elements = elements[s.name] ?? []
            return s
        }
        return Ruleset(tables: [table], chains: chains, sets: sets, rules: rules)
    }
}
