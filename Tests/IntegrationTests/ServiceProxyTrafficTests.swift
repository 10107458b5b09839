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
