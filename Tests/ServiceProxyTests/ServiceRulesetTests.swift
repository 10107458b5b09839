import Foundation
import NFTables
import NetAddress
@testable import ServiceProxy
import Testing

/// Compares `text` with the golden file; `KEEL_UPDATE_GOLDEN=1` rewrites it (read the diff in review).
func expectGolden(_ text: String, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/\(name)")
    if ProcessInfo.processInfo.environment["KEEL_UPDATE_GOLDEN"] == "1" {
        try text.write(to: url, atomically: true, encoding: .utf8)
        return
    }
    let golden = try String(contentsOf: url, encoding: .utf8)
    #expect(text == golden, "ruleset differs from Golden/\(name); rerun with KEEL_UPDATE_GOLDEN=1 and read the diff",
            sourceLocation: sourceLocation)
}

let web = ServicePortName(namespace: "default", name: "web", port: "http", proto: .tcp)
let dns = ServicePortName(namespace: "kube-system", name: "dns", port: "dns", proto: .udp)

let fixture = ProxyState(
    services: [
        ServicePortState(name: web, clusterIPs: [IPAddress("10.96.0.10")!], port: 80, nodePort: 30080,
                         loadBalancerIPs: [IPAddress("192.0.2.10")!], loadBalancerSourceRanges: [CIDR("198.51.100.0/24")!],
                         internalBackends: [Backend(IPAddress("10.244.1.5")!, 8080), Backend(IPAddress("10.244.2.7")!, 8080)]),
        ServicePortState(name: dns, clusterIPs: [IPAddress("10.96.0.53")!], port: 53, affinityTimeout: 10800,
                         internalBackends: [Backend(IPAddress("10.244.1.9")!, 5353)]),
        ServicePortState(name: ServicePortName(namespace: "default", name: "empty", port: "", proto: .tcp),
                         clusterIPs: [IPAddress("10.96.0.99")!], port: 80, nodePort: 30099, internalBackends: []),
        ServicePortState(name: ServicePortName(namespace: "default", name: "local", port: "", proto: .tcp),
                         clusterIPs: [IPAddress("10.96.0.77")!], port: 80, nodePort: 30077,
                         internalBackends: [Backend(IPAddress("10.244.2.7")!, 80)], externalBackends: [], externalLocal: true),
    ],
    nodePortAddresses: [IPAddress("192.168.50.11")!, IPAddress("127.0.0.1")!],
    clusterCIDR: CIDR("10.244.0.0/16"))

@Suite struct ServiceRulesetTests {
    @Test func golden() throws {
        try expectGolden(transaction(from: nil, to: ServiceRuleset.ruleset(fixture)).description + "\n", "fixture.nft")
    }

    @Test func setCountDoesNotGrowWithServices() {
        func state(_ n: Int) -> ProxyState {
            ProxyState(services: (0..<n).map { i in
                ServicePortState(name: ServicePortName(namespace: "ns", name: "s\(i)", port: "", proto: .tcp),
                                 clusterIPs: [IPAddress.v4(IPv4Address(0x0A60_0000 + UInt32(i)))], port: 80,
                                 internalBackends: (0..<3).map { Backend(.v4(IPv4Address(0x0AF4_0000 + UInt32(i * 3 + $0))), 8080) })
            })
        }
        let small = ServiceRuleset.ruleset(state(10)), big = ServiceRuleset.ruleset(state(1000))
        #expect(small.sets.count == big.sets.count)
        #expect(big.set("endpoints", in: ServiceRuleset.table)?.elements.count == 3000)
        // Neither sets nor chains nor rules grow with services: every 3-backend service shares `svc-3`.
        #expect(big.chains.count == small.chains.count && big.rules.count == small.rules.count)
        #expect(big.chain("svc-3", in: ServiceRuleset.table) != nil)
    }

    @Test func loopbackNeverServesNodePorts() {
        let r = ServiceRuleset.ruleset(fixture)
        #expect(r.set("nodeport-ips", in: ServiceRuleset.table)?.elements == [SetElement(.ip(IPAddress("192.168.50.11")!))])
    }

    @Test func serviceWithoutBackendsIsRejectedNotRouted() {
        let r = ServiceRuleset.ruleset(fixture)
        let rejected = r.set("no-endpoint-services", in: ServiceRuleset.table)!.elements
        #expect(rejected.contains(SetElement([.ip(IPAddress("10.96.0.99")!), .proto(.tcp), .port(80)], verdict: .goto("reject"))))
        #expect(r.set("no-endpoint-nodeports", in: ServiceRuleset.table)!.elements
            .contains(SetElement([.proto(.tcp), .port(30099)], verdict: .goto("reject"))))
        #expect(!r.set("service-ips", in: ServiceRuleset.table)!.elements.contains { $0.key.first == .ip(IPAddress("10.96.0.99")!) })
    }

    @Test func oneEndpointChangeTouchesOnlyThatServicesElements() {
        var changed = fixture
        changed.services[changed.services.firstIndex { $0.name == web }!].internalBackends[1] = Backend(IPAddress("10.244.3.3")!, 8080)
        changed.services[changed.services.firstIndex { $0.name == web }!].externalBackends[1] = Backend(IPAddress("10.244.3.3")!, 8080)
        let tx = transaction(from: ServiceRuleset.ruleset(fixture), to: ServiceRuleset.ruleset(changed))
        let text = tx.description
        #expect(!text.contains("chain"), "no chain is rewritten:\n\(text)")
        // endpoints (cluster and LB address) and nodeport-endpoints: out and in; the hairpin pair of
        // the new backend in (10.244.2.7's stays: the "local" service still uses it).
        #expect(tx.operations.count == 5, "\(text)")
        #expect(tx.operations.allSatisfy { if case .addElements = $0 { true } else if case .deleteElements = $0 { true } else { false } })
        #expect(text.contains("10.244.3.3") && text.contains("10.244.2.7"))
        #expect(!text.contains("10.96.0.53"))
    }

}
