import NFTables
import NetAddress
import Netlink
import NetnsHarness
import ServiceProxy
import Testing

/// The service proxy's ruleset, applied by the nftables core in a "node" namespace that routes
/// between a client and backends, checked with real connections.
final class ProxyBench {
    let lab: NetnsLab
    let client: LabNamespace
    let node: LabNamespace
    var backends: [(LabNamespace, IPAddress, BannerServer)] = []
    let nft: NFTablesSocket
    var applied: Ruleset?

    init(lab: NetnsLab, backends count: Int) throws {
        self.lab = lab
        client = try lab.namespace("px-client")
        node = try lab.namespace("px-node")
        try connect(client, "eth0", CIDR("192.168.99.2/24"), to: node, "c0", CIDR("192.168.99.1/24"))
        try client.route.addRoute(Route(destination: CIDR("0.0.0.0/0")!, gateway: IPAddress("192.168.99.1")))
        try node.sysctl("net.ipv4.ip_forward", "1")
        for i in 1...count {
            let ns = try lab.namespace("px-b\(i)")
            let ip = IPAddress("10.244.\(i).2")!
            try connect(node, InterfaceName("b\(i)")!, CIDR("10.244.\(i).1/24"), to: ns, "eth0", CIDR(ip, prefixLength: 24))
            try ns.route.addRoute(Route(destination: CIDR("0.0.0.0/0")!, gateway: IPAddress("10.244.\(i).1")))
            backends.append((ns, ip, try BannerServer(in: ns, address: ip, port: 8080, banner: "\(ip):8080")))
        }
        // Service addresses are routed (towards backend 1's side) so unmatched packets reach the filter hooks.
        try node.route.addRoute(Route(destination: CIDR("10.96.0.0/16")!, device: try node.route.link("b1").index))
        nft = try node.run { try NFTablesSocket() }
    }

    deinit { backends.forEach { $0.2.stop() } }

    func apply(_ state: ProxyState) throws {
        let desired = ServiceRuleset.ruleset(state)
        try nft.apply(transaction(from: applied, to: desired))
        applied = desired
    }
}

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct ServiceProxyTrafficTests {
    static let vip = IPAddress("10.96.0.10")!
    static let web = ServicePortName(namespace: "default", name: "web", port: "http", proto: .tcp)

    @Test func clusterIPSpreadsAcrossBackendsAndReadsBackEqual() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let p = try ProxyBench(lab: lab, backends: 2)
            let state = ProxyState(services: [ServicePortState(name: Self.web, clusterIPs: [Self.vip], port: 80,
                                                               internalBackends: p.backends.map { Backend($0.1, 8080) })],
                                   clusterCIDR: CIDR("10.244.0.0/16"))
            try p.apply(state)
            #expect(try p.nft.table(named: "keel-proxy", family: .ip) == ServiceRuleset.ruleset(state))
            var seen = Set<String>()
            for _ in 0..<30 {
                if let r = try TrafficProbe.tcpConnect(from: p.client, to: Self.vip, port: 80).reply { seen.insert(r) }
            }
            #expect(seen == Set(p.backends.map { "\($0.1):8080" }))
        }
    }

    @Test func serviceWithoutEndpointsIsRefusedAtOnce() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let p = try ProxyBench(lab: lab, backends: 1)
            try p.apply(ProxyState(services: [ServicePortState(name: Self.web, clusterIPs: [Self.vip], port: 80, internalBackends: [])]))
            #expect(try TrafficProbe.tcpConnect(from: p.client, to: Self.vip, port: 80, timeoutMilliseconds: 1000) == .refused)
        }
    }

    @Test func affinitySticksToOneBackend() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let p = try ProxyBench(lab: lab, backends: 3)
            try p.apply(ProxyState(services: [ServicePortState(name: Self.web, clusterIPs: [Self.vip], port: 80, affinityTimeout: 10800,
                                                               internalBackends: p.backends.map { Backend($0.1, 8080) })]))
            let replies = try (0..<15).map { _ in try TrafficProbe.tcpConnect(from: p.client, to: Self.vip, port: 80).reply }
            #expect(replies.allSatisfy { $0 != nil })
            #expect(Set(replies).count == 1, "\(replies)")
        }
    }
}

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct ServiceDataplaneIncrementalTests {
    /// Whatever path a state arrives by (full or incremental), the kernel ends up holding exactly
    /// the ruleset that state renders to.
    @Test func incrementalSyncsConvergeToTheFullRuleset() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("px-inc")
            let nft = try ns.run { try NFTablesSocket() }
            let dataplane = NFTablesServiceDataplane(nft: nft, conntrack: nil, logger: .init(label: "test"))
            func svc(_ i: Int, backends: Int, nodePort: UInt16? = nil, affinity: UInt32? = nil) -> ServicePortState {
                ServicePortState(name: ServicePortName(namespace: "ns", name: "s\(i)", port: "", proto: .tcp),
                                 clusterIPs: [.v4(IPv4Address(0x0A60_0000 + UInt32(i)))], port: 80, nodePort: nodePort,
                                 affinityTimeout: affinity,
                                 internalBackends: (0..<backends).map { Backend(.v4(IPv4Address(0x0AF4_0000 + UInt32(i * 16 + $0))), 8080) })
            }
            /// externalTrafficPolicy Local with `local` of its backends on this node, and an external IP.
            func etpLocal(_ i: Int, backends: Int, local: Int) -> ServicePortState {
                var s = svc(i, backends: backends, nodePort: UInt16(30000 + i))
                s.externalIPs = [.v4(IPv4Address(0xCB00_7100 + UInt32(i)))]
                s.externalLocal = true
                s.externalBackends = Array(s.internalBackends.prefix(local))
                return s
            }
            /// internalTrafficPolicy Local without an endpoint here: dropped, not refused.
            func itpLocal(_ i: Int, remote: Int) -> ServicePortState {
                var s = svc(i, backends: remote)
                s.clusterBackends = s.internalBackends
                s.internalBackends = []
                return s
            }
            let cidr = CIDR("10.244.0.0/16")
            let steps: [([ServicePortState], [String])] = [
                ([], []),
                ([svc(1, backends: 2), svc(2, backends: 0, nodePort: 30002)], ["10.96.0.0/16"]),
                ([svc(1, backends: 3), svc(2, backends: 1, nodePort: 30002), svc(3, backends: 2, affinity: 60), etpLocal(4, backends: 2, local: 0)],
                 ["10.96.0.0/12", "10.100.0.0/24"]),
                ([svc(2, backends: 1, nodePort: 30002), svc(3, backends: 2, affinity: 60), etpLocal(4, backends: 3, local: 1), itpLocal(5, remote: 2)],
                 ["10.96.0.0/12", "10.100.0.0/24"]),
                ([svc(3, backends: 1), etpLocal(4, backends: 1, local: 0), itpLocal(5, remote: 0)], ["10.96.0.0/16"]),
                ([svc(3, backends: 1)], []),
            ]
            for (n, (services, ranges)) in steps.enumerated() {
                let state = ProxyState(services: services, nodePortAddresses: [IPAddress("192.168.50.11")!], clusterCIDR: cidr,
                                       serviceCIDRs: ranges.map { CIDR($0)! })
                try dataplane.apply(state)
                var got = try #require(try nft.table(named: "keel-proxy", family: .ip))
                if let i = got.sets.firstIndex(where: { $0.name == "affinity" }) { got.sets[i].elements = [] }
                let want = ServiceRuleset.ruleset(state)
                #expect(got == want, "step \(n): \(transaction(from: want, to: got))")
            }
        }
    }
}

extension ServiceDataplaneIncrementalTests {
    /// The affinity map holds the packet path's entries, keyed client . destination . protocol .
    /// port. A service port whose affinity goes, whose timeout changes or that goes away loses its
    /// entries (its cluster IP's and its node port's on every node address); other services keep
    /// theirs. A restarted agent drops the entries no affinity service of its state owns.
    @Test func affinityEntriesFollowTheirServices() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("px-aff")
            let nft = try ns.run { try NFTablesSocket() }
            let node = IPAddress("192.168.50.11")!
            func svc(_ i: Int, affinity: UInt32?, nodePort: UInt16? = nil) -> ServicePortState {
                ServicePortState(name: ServicePortName(namespace: "ns", name: "s\(i)", port: "", proto: .tcp),
                                 clusterIPs: [IPAddress("10.96.0.\(i)")!], port: 80, nodePort: nodePort, affinityTimeout: affinity,
                                 internalBackends: [Backend(IPAddress("10.244.1.\(i)")!, 8080), Backend(IPAddress("10.244.2.\(i)")!, 8080)])
            }
            func state(_ services: [ServicePortState]) -> ProxyState {
                ProxyState(services: services, nodePortAddresses: [node], clusterCIDR: CIDR("10.244.0.0/16"))
            }
            let map = try #require(ServiceRuleset.sets.first { $0.name == "affinity" })
            /// One remembered client per destination, as the packet path would have added it.
            func remember(_ destinations: [(IPAddress, UInt16)]) throws {
                var tx = Transaction()
                tx.add(elements: destinations.map { d, port in
                    SetElement([.ip(IPAddress("10.244.9.9")!), .ip(d), .proto(.tcp), .port(port)],
                               data: [.ip(IPAddress("10.244.1.1")!), .port(8080)], timeout: .seconds(600))
                }, to: map)
                try nft.apply(tx)
            }
            func remembered() throws -> Set<String> {
                Set(try nft.elements(of: map).map { "\($0.key[1]):\($0.key[3])" })
            }
            let dataplane = NFTablesServiceDataplane(nft: nft, conntrack: nil, logger: .init(label: "test"))
            try dataplane.apply(state([svc(1, affinity: 60), svc(2, affinity: 60), svc(3, affinity: 60, nodePort: 30003)]))
            try remember([(IPAddress("10.96.0.1")!, 80), (IPAddress("10.96.0.2")!, 80), (IPAddress("10.96.0.3")!, 80), (node, 30003)])
            #expect(try remembered() == ["10.96.0.1:80", "10.96.0.2:80", "10.96.0.3:80", "192.168.50.11:30003"])

            try dataplane.apply(state([svc(1, affinity: 120), svc(2, affinity: 60), svc(3, affinity: 60, nodePort: 30003)]))
            #expect(try remembered() == ["10.96.0.2:80", "10.96.0.3:80", "192.168.50.11:30003"], "a new timeout forgets the old entries")
            try dataplane.apply(state([svc(1, affinity: 120), svc(2, affinity: nil), svc(3, affinity: 60, nodePort: 30003)]))
            #expect(try remembered() == ["10.96.0.3:80", "192.168.50.11:30003"], "affinity turned off forgets them")
            try dataplane.apply(state([svc(1, affinity: 120), svc(2, affinity: nil)]))
            #expect(try remembered().isEmpty, "a service that goes takes its node port's entries too")

            // A restart: entries of destinations without affinity in the new agent's state go, the others stay.
            try remember([(IPAddress("10.96.0.1")!, 80), (IPAddress("10.96.0.2")!, 80)])
            let restarted = NFTablesServiceDataplane(nft: nft, conntrack: nil, logger: .init(label: "test"))
            try restarted.apply(state([svc(1, affinity: 120), svc(2, affinity: nil)]))
            #expect(try remembered() == ["10.96.0.1:80"])
        }
    }
}

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct ServiceRulesetNftCompatibilityTests {
    /// Operators' `nft list ruleset` (nftables 1.0.6) must be able to print what the proxy programs.
    /// Known exception: the ClientIP-affinity rules (a map lookup's result stored by a dynset), which
    /// nft 1.0.6's delinearizer cannot print (it aborts); kept out of this table, noted in the README.
    @Test func nftListsTheProxyTable() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("px-nft")
            let nft = try ns.run { try NFTablesSocket() }
            let web = ServicePortName(namespace: "default", name: "web", port: "http", proto: .tcp)
            let dns = ServicePortName(namespace: "kube-system", name: "dns", port: "dns", proto: .udp)
            let state = ProxyState(services: [
                ServicePortState(name: web, clusterIPs: [IPAddress("10.96.0.10")!], port: 80, nodePort: 30080,
                                 internalBackends: [Backend(IPAddress("10.244.1.5")!, 8080), Backend(IPAddress("10.244.2.7")!, 8080)]),
                ServicePortState(name: dns, clusterIPs: [IPAddress("10.96.0.53")!], port: 53,
                                 internalBackends: [Backend(IPAddress("10.244.1.9")!, 5353)]),
                // externalTrafficPolicy Local without a local endpoint: the short-circuit chains and drops.
                ServicePortState(name: ServicePortName(namespace: "default", name: "local", port: "", proto: .tcp),
                                 clusterIPs: [IPAddress("10.96.0.77")!], port: 80, nodePort: 30077, externalIPs: [IPAddress("203.0.113.7")!],
                                 internalBackends: [Backend(IPAddress("10.244.2.7")!, 80)], externalBackends: [], externalLocal: true),
            ], nodePortAddresses: [IPAddress("192.168.50.11")!], clusterCIDR: CIDR("10.244.0.0/16"), serviceCIDRs: [CIDR("10.96.0.0/16")!])
            try nft.apply(transaction(from: nil, to: ServiceRuleset.ruleset(state)))
            let listed = try ns.exec(["nft", "list", "ruleset"])
            #expect(listed.succeeded, "\(listed.stderr)")
            #expect(listed.stdout.contains("numgen random mod 2 map @endpoints"), "\(listed.stdout)")
            #expect(listed.stdout.contains("fib saddr type local"), "\(listed.stdout)")
            #expect(listed.stdout.contains("@short-circuit-nodeport-endpoints"), "\(listed.stdout)")
            #expect(listed.stdout.contains("10.96.0.0/16"), "\(listed.stdout)")
        }
    }
}
