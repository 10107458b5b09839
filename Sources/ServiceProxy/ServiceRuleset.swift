import NFTables
import NetAddress

/// The nftables layout of Keel's service proxy (table `ip keel-proxy`).
///
/// kube-proxy's nftables layout gives every service an anonymous `numgen … vmap` set; the kernel
/// walks the whole transaction when it binds each anonymous set, and looks named sets up linearly,
/// so loading N services costs O(N²) (≈122 s at 10K here). Keel keeps a **fixed number of sets**,
/// whatever the number of services:
///
/// - `service-ips`    vmap  `daddr . proto . port → goto svc-<port>` (cluster IPs) / `goto ext-<port>`
/// - `service-nodeports` vmap `proto . port → goto ext-<port>`, on `nodeport-ips`
/// - `endpoints`      map   `selection . index → backend addr . port`: every backend of every service
/// - `affinity`       map   `selection . client → index` (dynamic, timeouts): ClientIP affinity
/// - `no-endpoint-services`, `no-endpoint-nodeports` vmaps `→ goto reject` (refused at once)
/// - `lb-restricted`, `lb-allowed` (interval) for loadBalancerSourceRanges; `hairpin` pairs
///
/// A service port has a chain `svc-…` (and `ext-…` for NodePort/external/LB traffic) whose one rule
/// loads its selection id, draws `numgen random mod N` and looks the pair up in `endpoints`: no
/// per-service set, so a transaction grows linearly, and dispatch is O(1) map lookups.
public enum ServiceRuleset {
    public static let table = Table(.ip, "keel-proxy")
    /// The packet-mark bit that asks postrouting to masquerade (kube-proxy's 0x4000).
    public static let masqueradeMark: UInt32 = 0x4000

    /// Stable selection ids: FNV-1a of the service port name, probed on collision, in name order.
    /// Even ids select internal backends, the next odd id external ones. Ids only move on a hash
    /// collision, so an unrelated change never rewrites a service's chain.
    public static func selectionIDs(_ names: [ServicePortName]) -> [ServicePortName: UInt32] {
        var taken = Set<UInt32>(), ids: [ServicePortName: UInt32] = [:]
        for name in names.sorted() {
            var id = fnv1a(name.description) & ~1
            while taken.contains(id) || id == 0 { id &+= 2 }
            taken.insert(id)
            ids[name] = id
        }
        return ids
    }

    public static func chainName(_ prefix: String, _ name: ServicePortName) -> String { "\(prefix)-\(name)" }

    /// The whole desired table for `state`. Pure.
    public static func ruleset(_ state: ProxyState) -> Ruleset {
        let t = table
        let ids = selectionIDs(state.services.map(\.name))
        var chains: [Chain] = [], rules: [Rule] = []
        var serviceIPs = Set<SetElement>(), nodePorts = Set<SetElement>()
        var noEndpointIPs = Set<SetElement>(), noEndpointPorts = Set<SetElement>()
        var endpoints = Set<SetElement>(), hairpin = Set<SetElement>()
        var restricted = Set<SetElement>(), allowed = Set<SetElement>()

        // Static skeleton.
        let prerouting = Chain(t, "prerouting", type: .nat, hook: .prerouting, priority: .dstnat)
        let output = Chain(t, "output", type: .nat, hook: .output, priority: .dstnat)
        let postrouting = Chain(t, "postrouting", type: .nat, hook: .postrouting, priority: .srcnat)
        let services = Chain(t, "services")
        let firewall = Chain(t, "firewall", type: .filter, hook: .prerouting, priority: ChainPriority(rawValue: -110))
        let filterInput = Chain(t, "filter-input", type: .filter, hook: .input, priority: -10)
        let filterForward = Chain(t, "filter-forward", type: .filter, hook: .forward, priority: -10)
        let filterOutput = Chain(t, "filter-output", type: .filter, hook: .output, priority: -10)
        let reject = Chain(t, "reject")
        chains += [prerouting, output, postrouting, services, firewall, filterInput, filterForward, filterOutput, reject]
        let key3: [Field] = [.ipv4.daddr, .l4proto, .th.dport]
        rules += [
            Rule(prerouting, [.jump("services")]),
            Rule(output, [.jump("services")]),
            Rule(services, [.vmap("service-ips", key: key3)]),
            Rule(services, [.lookup(in: "nodeport-ips", key: [.ipv4.daddr]), .vmap("service-nodeports", key: [.l4proto, .th.dport])]),
            Rule(firewall, comment: "loadBalancerSourceRanges", [.lookup(in: "lb-restricted", key: key3),
                                                                   .lookup(notIn: "lb-allowed", key: key3 + [.ipv4.saddr]), .drop]),
            Rule(postrouting, comment: "hairpin", [.lookup(in: "hairpin", key: [.ipv4.saddr, .ipv4.daddr]), .masquerade]),
            Rule(postrouting, comment: "marked for masquerade", [.expressions(markIsSet()), .masquerade]),
            Rule(reject, [.reject(.icmp(code: 3))]),   // port unreachable: the client's connect fails at once
        ]
        for chain in [filterInput, filterForward, filterOutput] {
            rules.append(Rule(chain, comment: "services without endpoints", [.ctState(.new), .vmap("no-endpoint-services", key: key3)]))
        }
        rules.append(Rule(filterInput, comment: "node ports without endpoints",
                          [.ctState(.new), .lookup(in: "nodeport-ips", key: [.ipv4.daddr]), .vmap("no-endpoint-nodeports", key: [.l4proto, .th.dport])]))

        for svc in state.services {
            let id = ids[svc.name]!
            let proto = DataValue.proto(IPProtocol(rawValue: svc.name.proto.number))
            let v4 = { (list: [IPAddress]) in list.filter(\.isIPv4) }
            let anyBackend = !svc.internalBackends.isEmpty || !svc.externalBackends.isEmpty
            let internalChain = chainName("svc", svc.name), externalChain = chainName("ext", svc.name)

            for (i, b) in svc.internalBackends.enumerated() where b.address.isIPv4 {
                endpoints.insert(SetElement([.mark(id), .mark(UInt32(i))], data: [.ip(b.address), .port(b.port)]))
                hairpin.insert(SetElement([.ip(b.address), .ip(b.address)]))
            }
            // External traffic has its own selection only when its backends differ (ETP Local).
            let externalID = svc.externalBackends == svc.internalBackends ? id : id + 1
            if svc.hasExternalEntry && externalID != id {
                for (i, b) in svc.externalBackends.enumerated() where b.address.isIPv4 {
                    endpoints.insert(SetElement([.mark(externalID), .mark(UInt32(i))], data: [.ip(b.address), .port(b.port)]))
                    hairpin.insert(SetElement([.ip(b.address), .ip(b.address)]))
                }
            }

            // Internal traffic (cluster IPs).
            if !svc.internalBackends.isEmpty {
                chains.append(Chain(t, internalChain))
                if let cidr = state.clusterCIDR {
                    rules.append(Rule(t, chain: internalChain, comment: "clients outside the cluster CIDR", [
                        .match(.ipv4.saddr, notIn: cidr), .expressions(setMark())]))
                }
                rules += selection(chain: internalChain, id: id, count: svc.internalBackends.count, affinity: svc.affinityTimeout)
                for ip in v4(svc.clusterIPs) {
                    serviceIPs.insert(SetElement([.ip(ip), proto, .port(svc.port)], verdict: .goto(internalChain)))
                }
            } else {
                for ip in v4(svc.clusterIPs) { noEndpointIPs.insert(SetElement([.ip(ip), proto, .port(svc.port)], verdict: .goto("reject"))) }
            }

            // External traffic (node ports, external IPs, load-balancer IPs).
            guard svc.hasExternalEntry else { continue }
            let externalAddresses = v4(svc.externalIPs) + v4(svc.loadBalancerIPs)
            if anyBackend {
                chains.append(Chain(t, externalChain))
                if svc.externalLocal {
                    // Pods of this node reaching an external address behave as internal clients (kube-proxy does the same).
                    if let cidr = state.clusterCIDR, !svc.internalBackends.isEmpty {
                        rules.append(Rule(t, chain: externalChain, comment: "pods use the cluster-wide backends", [
                            .match(.ipv4.saddr, in: cidr), .goto(internalChain)]))
                    }
                    if svc.externalBackends.isEmpty {
                        rules.append(Rule(t, chain: externalChain, comment: "externalTrafficPolicy Local: no local backend", [.drop]))
                    } else {
                        rules += selection(chain: externalChain, id: externalID, count: svc.externalBackends.count, affinity: svc.affinityTimeout)
                    }
                } else {
                    rules.append(Rule(t, chain: externalChain, comment: "externalTrafficPolicy Cluster: masquerade", [.expressions(setMark())]))
                    rules += selection(chain: externalChain, id: externalID, count: svc.externalBackends.count, affinity: svc.affinityTimeout)
                }
                for ip in externalAddresses { serviceIPs.insert(SetElement([.ip(ip), proto, .port(svc.port)], verdict: .goto(externalChain))) }
                if let np = svc.nodePort { nodePorts.insert(SetElement([proto, .port(np)], verdict: .goto(externalChain))) }
            } else {
                for ip in externalAddresses { noEndpointIPs.insert(SetElement([.ip(ip), proto, .port(svc.port)], verdict: .goto("reject"))) }
                if let np = svc.nodePort { noEndpointPorts.insert(SetElement([proto, .port(np)], verdict: .goto("reject"))) }
            }
            let ranges = svc.loadBalancerSourceRanges.filter { $0.family == .ipv4 }
            if !ranges.isEmpty {
                for ip in v4(svc.loadBalancerIPs) {
                    restricted.insert(SetElement([.ip(ip), proto, .port(svc.port)]))
                    for r in ranges {
                        allowed.insert(SetElement([.ip(ip), proto, .port(svc.port), .ip(r.network)],
                                                  to: [.ip(ip), proto, .port(svc.port), .ip(r.last)]))
                    }
                }
            }
        }

        let sets = [
            NFTSet(t, "service-ips", key: [.ipv4Address, .inetProto, .inetService], mapping: .verdict, elements: serviceIPs),
            NFTSet(t, "service-nodeports", key: [.inetProto, .inetService], mapping: .verdict, elements: nodePorts),
            NFTSet(t, "nodeport-ips", key: [.ipv4Address], elements: Set(state.nodePortAddresses.filter(\.isIPv4).map { SetElement(.ip($0)) })),
            NFTSet(t, "no-endpoint-services", key: [.ipv4Address, .inetProto, .inetService], mapping: .verdict, elements: noEndpointIPs),
            NFTSet(t, "no-endpoint-nodeports", key: [.inetProto, .inetService], mapping: .verdict, elements: noEndpointPorts),
            NFTSet(t, "endpoints", key: [.mark, .mark], mapping: .data([.ipv4Address, .inetService]), elements: endpoints),
            NFTSet(t, "affinity", key: [.mark, .ipv4Address], mapping: .data([.mark]), flags: [.dynamic, .timeout], maxElements: 65535),
            NFTSet(t, "hairpin", key: [.ipv4Address, .ipv4Address], elements: hairpin),
            NFTSet(t, "lb-restricted", key: [.ipv4Address, .inetProto, .inetService], elements: restricted),
            NFTSet(t, "lb-allowed", key: [.ipv4Address, .inetProto, .inetService, .ipv4Address], flags: .interval, elements: allowed),
        ]
        return Ruleset(tables: [t], chains: chains, sets: sets, rules: rules)
    }

    /// The rules that pick a backend for selection `id` out of `count` and DNAT to it, through the
    /// global `endpoints` map (and `affinity`, when the service has ClientIP affinity).
    static func selection(chain: String, id: UInt32, count: Int, affinity: UInt32?) -> [Rule] {
        let t = table
        let idBytes = DataValue.mark(id).bytes
        let dnat: [Expression] = [
            .lookup(set: "endpoints", source: .slot(1), into: .slot(4), inverted: false),
            .nat(NATExpression(.dnat, family: .ip, addressMin: .slot(4), portMin: .slot(5))),
        ]
        guard let timeout = affinity else {
            return [Rule(t, chain: chain, comment: "\(count) backends", [.expressions([
                .immediate(idBytes, into: .slot(1)),
                .numgen(.random, modulus: UInt32(count), offset: 0, into: .slot(2)),
            ] + dnat)])]
        }
        let saddr = Expression.payload(.network, offset: 12, length: 4, into: .slot(1))
        return [
            // A client seen before goes back to its backend, and its entry's timeout starts again.
            Rule(t, chain: chain, comment: "ClientIP affinity", [.expressions([
                .immediate(idBytes, into: .slot(0)), saddr,
                .lookup(set: "affinity", source: .slot(0), into: .slot(2), inverted: false),
                .dynset(DynamicSetUpdate(.update, set: "affinity", keyRegister: .slot(0), dataRegister: .slot(2),
                                         timeout: .seconds(Int64(timeout)))),
                .immediate(idBytes, into: .slot(1)),
            ] + dnat)]),
            Rule(t, chain: chain, comment: "\(count) backends, remembered for \(timeout) s", [.expressions([
                .immediate(idBytes, into: .slot(0)), saddr,
                .numgen(.random, modulus: UInt32(count), offset: 0, into: .slot(2)),
                .dynset(DynamicSetUpdate(.add, set: "affinity", keyRegister: .slot(0), dataRegister: .slot(2),
                                         timeout: .seconds(Int64(timeout)))),
                .immediate(idBytes, into: .slot(1)),
            ] + dnat)]),
        ]
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

/// FNV-1a, 32 bits: stable across runs and machines, unlike Swift's seeded Hasher.
func fnv1a(_ s: String) -> UInt32 {
    var h: UInt32 = 2_166_136_261
    for b in s.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
    return h
}
