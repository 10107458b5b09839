import NFTables
import NetAddress
import Netlink
import NetnsHarness
import PolicyEnforcer
import Testing

/// The policy ruleset applied directly in a node namespace whose pods sit on one bridge (so the
/// bridged path through br_netfilter is what is enforced), checked with real connections.
@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct PolicyRulesetTrafficTests {
    @Test func isolatedPodAcceptsOnlyWhatItsRulesAllowAndRepliesPass() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let node = try lab.namespace("pol-node")
            let bridge = try node.route.createLink(LinkSpec(name: "kbr0", kind: .bridge, up: true))
            try node.route.addAddress(.withBroadcast(linkIndex: bridge.index, cidr: CIDR("10.244.1.1/24")!))
            try node.sysctl("net.bridge.bridge-nf-call-iptables", "1")
            var pods: [(LabNamespace, IPv4Address)] = []
            for i in 0..<3 {
                let pod = try lab.namespace("pol-p\(i)")
                let ip = IPv4Address(10, 244, 1, UInt8(10 + i))
                let (host, _) = try connect(node, InterfaceName("kp\(i)")!, nil, to: pod, "eth0", CIDR(.v4(ip), prefixLength: 24))
                try node.route.setMaster(.index(host.index), bridge.index)
                pods.append((pod, ip))
            }
            let servers = try pods.flatMap { p in try [8080, 8081].map { try BannerServer(in: p.0, address: .v4(p.1), port: UInt16($0), banner: "\(p.1):\($0)") } }
            defer { servers.forEach { $0.stop() } }
            let (a, b, c) = (pods[0], pods[1], pods[2])
            // Pod a: ingress isolated, allows TCP 8080 from pod b only. Pod c: egress isolated, nothing allowed.
            let compiled = [
                CompiledPod(name: "a", address: a.1, ingress: [CompiledRule(label: "default/allow-b ingress[0]",
                    peers: [AddressRange(b.1, b.1)], ports: [PortRange(proto: 6, 8080, 8080)])], egress: nil),
                CompiledPod(name: "c", address: c.1, ingress: nil, egress: []),
            ]
            let nft = try node.run { try NFTablesSocket() }
            let desired = PolicyRuleset.ruleset(compiled)
            try nft.apply(transaction(from: nil, to: desired))
            #expect(try nft.table(named: "keel-policy", family: .ip) == desired)

            func tcp(_ from: (LabNamespace, IPv4Address), _ to: (LabNamespace, IPv4Address), _ port: UInt16) throws -> String? {
                try TrafficProbe.tcpConnect(from: from.0, to: .v4(to.1), port: port, timeoutMilliseconds: 700).reply
            }
            #expect(try tcp(b, a, 8080) == "\(a.1):8080", "allowed: b -> a:8080")
            #expect(try tcp(b, a, 8081) == nil, "denied: b -> a:8081")
            #expect(try tcp(c, a, 8080) == nil, "denied: c is egress-isolated (and a does not allow c)")
            #expect(try tcp(a, b, 8081) == "\(b.1):8081", "a's egress is not isolated; replies to a pass")
            #expect(try tcp(b, c, 8080) == "\(c.1):8080", "c's ingress is open; its replies pass though its egress is isolated")
            #expect(try tcp(c, b, 8080) == nil, "c may not start connections")
        }
    }

    @Test func exceptCarvesHolesOutOfABlock() {
        let r = AddressRange.ranges(of: CIDR("10.0.0.0/24")!, except: [CIDR("10.0.0.64/26")!, CIDR("10.0.0.255/32")!])
        #expect(r.map(\.description) == ["10.0.0.0-10.0.0.63", "10.0.0.128-10.0.0.254"])
    }
}
