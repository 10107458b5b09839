import NFTables
import NetAddress
@testable import ServiceProxy
import Testing

@Suite struct IPVSRulesetTests {
    let ruleset = IPVSRuleset.ruleset(ipvsFixture)
    func elements(_ set: String) -> Set<SetElement> { ruleset.set(set, in: IPVSRuleset.table)?.elements ?? [] }
    func key(_ address: String, _ proto: IPProtocol, _ port: UInt16) -> [DataValue] { [.ip(ip(address)), .proto(proto), .port(port)] }

    @Test func golden() throws {
        try expectGolden(transaction(from: nil, to: ruleset).description + "\n", "ipvs-fixture.nft")
    }

    @Test func noRuleChainOrSetGrowsWithServices() {
        func state(_ n: Int) -> ProxyState {
            var services: [ServicePortState] = []
            for i in 0..<n {
                let vip = IPAddress.v4(IPv4Address(0x0A60_0000 + UInt32(i)))
                var backends: [Backend] = []
                for b in 0..<3 { backends.append(Backend(.v4(IPv4Address(0x0AF4_0000 + UInt32(i * 3 + b))), 8080)) }
                let nodePort = UInt16(30000 + i % 2000)
                services.append(ServicePortState(name: ServicePortName(namespace: "ns", name: "s\(i)", port: "", proto: .tcp),
                                                 clusterIPs: [vip], port: 80, nodePort: nodePort, internalBackends: backends))
            }
            return ProxyState(services: services, nodePortAddresses: [ip("192.168.50.11")], clusterCIDR: CIDR("10.244.0.0/16"))
        }
        let small = IPVSRuleset.ruleset(state(10)), big = IPVSRuleset.ruleset(state(1000))
        #expect(small.sets.count == big.sets.count && small.chains.count == big.chains.count && small.rules.count == big.rules.count)
        #expect(big.set("service-ports", in: IPVSRuleset.table)?.elements.count == 1000)
        #expect(big.set("hairpin", in: IPVSRuleset.table)?.elements.count == 3000)
    }

    @Test func masqueradeFollowsThePathAndTrafficPolicy() {
        let masq = elements("service-masquerade")
        #expect(masq.contains(SetElement(key("10.96.0.10", .tcp, 80), verdict: .jump("masquerade-off-cluster"))))
        #expect(masq.contains(SetElement(key("203.0.113.7", .tcp, 80), verdict: .jump("mark-for-masquerade"))))
        // externalTrafficPolicy Local keeps the client's address: its LB IP and node port are not marked.
        #expect(!masq.contains { $0.key == key("192.0.2.77", .tcp, 80) })
        #expect(elements("nodeport-masquerade") == [SetElement([.proto(.tcp), .port(30080)], verdict: .jump("mark-for-masquerade")),
                                                    SetElement([.proto(.tcp), .port(30099)], verdict: .jump("mark-for-masquerade"))])
        #expect(ruleset.rules(of: "masquerade-off-cluster", in: IPVSRuleset.table).count == 1)
        let noCIDR = IPVSRuleset.ruleset(ProxyState(services: ipvsFixture.services, nodePortAddresses: ipvsFixture.nodePortAddresses))
        #expect(noCIDR.rules(of: "masquerade-off-cluster", in: IPVSRuleset.table).isEmpty, "no cluster CIDR: pods cannot be told apart")
    }

    @Test func servicesWithoutEndpointsAreRejectedAndLocalOnesWithoutALocalBackendDropped() {
        #expect(elements("no-endpoint-services") == [SetElement(key("10.96.0.99", .tcp, 80), verdict: .goto("reject"))])
        #expect(elements("no-endpoint-nodeports") == [SetElement([.proto(.tcp), .port(30099)], verdict: .goto("reject"))])
        var state = ipvsFixture
        let i = state.services.firstIndex { $0.name == ipvsLocal }!
        state.services[i].externalBackends = []
        let r = IPVSRuleset.ruleset(state)
        #expect(r.set("no-endpoint-services", in: IPVSRuleset.table)!.elements.contains(SetElement(key("192.0.2.77", .tcp, 80), verdict: .drop)))
        #expect(r.set("no-endpoint-nodeports", in: IPVSRuleset.table)!.elements.contains(SetElement([.proto(.tcp), .port(30077)], verdict: .drop)))
    }

    @Test func serviceAddressesAndPortsAreListedForTheInputFilter() {
        #expect(elements("service-ips") == Set(IPVSDesiredState(ipvsFixture).dummyAddresses.map { SetElement(.ip($0)) }))
        #expect(elements("service-ports").contains(SetElement(key("10.96.0.53", .udp, 53))))
        #expect(!elements("service-ports").contains(SetElement(key("10.96.0.53", .tcp, 53))))
        #expect(elements("nodeport-ips") == [SetElement(.ip(ip("10.0.0.5"))), SetElement(.ip(ip("192.168.50.11")))])
        #expect(elements("lb-restricted") == [SetElement(key("192.0.2.10", .tcp, 80))])
        // Terminating endpoints are hairpin candidates too: their established connections were masqueraded.
        #expect(elements("hairpin").contains(SetElement([.ip(ip("10.244.3.3")), .ip(ip("10.244.3.3"))])))
    }
}
