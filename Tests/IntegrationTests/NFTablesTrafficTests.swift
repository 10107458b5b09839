import NFTables
import NetAddress
import Netlink
import NetnsHarness
import Testing

/// Rules made by the nftables core, checked with real connections between namespaces:
/// client ── router (the rules) ── server.
@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct NFTablesTrafficTests {
    let vip = IPAddress("10.96.0.10")!
    let server = IPAddress("10.2.0.2")!

    func topology(_ lab: NetnsLab, _ tag: String) throws -> (client: LabNamespace, router: LabNamespace, server: LabNamespace) {
        let c = try lab.namespace("\(tag)-c"), r = try lab.namespace("\(tag)-r"), s = try lab.namespace("\(tag)-s")
        try connect(c, "eth0", CIDR("10.1.0.2/24"), to: r, "c0", CIDR("10.1.0.1/24"))
        try connect(r, "s0", CIDR("10.2.0.1/24"), to: s, "eth0", CIDR("10.2.0.2/24"))
        try c.route.addRoute(Route(destination: CIDR("0.0.0.0/0")!, gateway: IPAddress("10.1.0.1")))
        try s.route.addRoute(Route(destination: CIDR("0.0.0.0/0")!, gateway: IPAddress("10.2.0.1")))
        try r.sysctl("net.ipv4.ip_forward", "1")
        // Service addresses are routed like any other (towards the server side), so that packets the
        // DNAT did not rewrite reach the forward hook, where the reject rule sees them.
        try r.route.addRoute(Route(destination: CIDR("10.96.0.0/16")!, device: try r.route.link("s0").index))
        return (c, r, s)
    }

    func serviceRuleset(backends: [(proto: IPProtocol, port: UInt16, backend: IPAddress, backendPort: UInt16)]) -> Ruleset {
        let t = Table(.ip, "keel-test")
        let pre = Chain(t, "prerouting", type: .nat, hook: .prerouting, priority: .dstnat)
        let filter = Chain(t, "forward", type: .filter, hook: .forward, priority: .filter)
        let map = NFTSet(t, "service-backends", key: [.ipv4Address, .inetProto, .inetService],
                         mapping: .data([.ipv4Address, .inetService]),
                         elements: Set(backends.map { SetElement([.ip(vip), .proto($0.proto), .port($0.port)],
                                                                 data: [.ip($0.backend), .port($0.backendPort)]) }))
        return Ruleset(tables: [t], chains: [pre, filter], sets: [map], rules: [
            Rule(pre, [.counter, .dnat(.ipv4, map: "service-backends", key: [.ipv4.daddr, .l4proto, .th.dport])]),
            // Anything else sent to the service address is refused at once, not left to time out.
            Rule(filter, [.match(.ipv4.daddr, equals: .ip(vip)), .reject(.tcpReset)]),
        ])
    }

    @Test func dnatThroughAMapRedirectsRealTCPAndUDP() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let (client, router, serverNS) = try topology(lab, "dnat")
            let backend = try BannerServer(in: serverNS, address: server, port: 8080, banner: "backend-8080")
            defer { backend.stop() }
            // Before the rules: nothing answers at the service address (the server side has no such address).
            #expect(try TrafficProbe.tcpConnect(from: client, to: vip, port: 80, timeoutMilliseconds: 500).reply == nil)

            let nft = try router.run { try NFTablesSocket() }
            let desired = serviceRuleset(backends: [(.tcp, 80, server, 8080), (.udp, 53, server, 8080)])
            try nft.apply(transaction(from: nil, to: desired))
            #expect(try TrafficProbe.tcpConnect(from: client, to: vip, port: 80).reply == "backend-8080")
            #expect(try TrafficProbe.udpExchange(from: client, to: vip, port: 53) == "backend-8080")
            // No map entry for port 81: the reject rule refuses it immediately.
            #expect(try TrafficProbe.tcpConnect(from: client, to: vip, port: 81) == .refused)

            // Removing the element (a cheap diff: one element delete) stops the redirect.
            let smaller = serviceRuleset(backends: [(.udp, 53, server, 8080)])
            let diff = transaction(from: desired, to: smaller)
            #expect(diff.operations.count == 1)
            try nft.apply(diff)
            #expect(try TrafficProbe.tcpConnect(from: client, to: vip, port: 80) == .refused)
            #expect(try nft.table(named: "keel-test", family: .ip) == smaller)
        }
    }
}
