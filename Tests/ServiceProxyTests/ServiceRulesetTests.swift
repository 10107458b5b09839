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
    clusterCIDR: CIDR("10.244.0.0/16"), serviceCIDRs: [CIDR("10.96.0.0/16")!])

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

/// Traffic policies, unused service addresses: kube-proxy's nftables mode, element by element.
@Suite struct ServiceRulesetPolicyTests {
    static let ext = IPAddress("203.0.113.7")!
    static let remote = [Backend(IPAddress("10.244.2.7")!, 8080), Backend(IPAddress("10.244.3.7")!, 8080)]
    static let near = Backend(IPAddress("10.244.1.7")!, 8080)
    static func elements(_ r: Ruleset, _ set: String) -> Set<SetElement> { r.set(set, in: ServiceRuleset.table)?.elements ?? [] }

    /// externalTrafficPolicy Local, endpoints only on other nodes: outside clients are dropped (in
    /// the filter hooks, as kube-proxy), pods and the node reach every backend through the
    /// short-circuit maps; the node port likewise.
    @Test func externalLocalWithoutALocalEndpointShortCircuitsPodsAndTheNode() {
        let svc = ServicePortState(name: web, clusterIPs: [IPAddress("10.96.0.10")!], port: 80, nodePort: 30080, externalIPs: [Self.ext],
                                   internalBackends: Self.remote, externalBackends: [], externalLocal: true, clusterBackends: Self.remote)
        let r = ServiceRuleset.ruleset(ProxyState(services: [svc], nodePortAddresses: [IPAddress("192.168.50.11")!], clusterCIDR: CIDR("10.244.0.0/16")))
        let key: [DataValue] = [.ip(Self.ext), .proto(.tcp), .port(80)]
        #expect(Self.elements(r, "short-circuit-ips") == [SetElement(key, verdict: .goto("sc-2"))])
        #expect(Self.elements(r, "short-circuit-nodeports") == [SetElement([.proto(.tcp), .port(30080)], verdict: .goto("npsc-2"))])
        #expect(Self.elements(r, "short-circuit-endpoints") == Set(Self.remote.enumerated().map {
            SetElement(key + [.mark(UInt32($0.offset))], data: [.ip($0.element.address), .port($0.element.port)]) }))
        #expect(Self.elements(r, "no-endpoint-services") == [SetElement(key, verdict: .drop)])
        #expect(Self.elements(r, "no-endpoint-nodeports") == [SetElement([.proto(.tcp), .port(30080)], verdict: .drop)])
        #expect(!Self.elements(r, "service-ips").contains { $0.key == key })
        #expect(Self.elements(r, "service-nodeports").isEmpty)
        // Only the node's own connections are masqueraded on the short-circuit (pods keep their address).
        let sc = r.rules.filter { $0.chain == "sc-2" }
        #expect(sc.count == 2 && sc[0].comment == "the node's own traffic", "\(sc)")
    }

    /// With a local endpoint, outside clients use it (source kept) while pods and the node still
    /// draw from every backend.
    @Test func externalLocalWithALocalEndpoint() {
        let all = [Self.near] + Self.remote
        let svc = ServicePortState(name: web, clusterIPs: [IPAddress("10.96.0.10")!], port: 80, externalIPs: [Self.ext],
                                   internalBackends: all, externalBackends: [Self.near], externalLocal: true, clusterBackends: all)
        let r = ServiceRuleset.ruleset(ProxyState(services: [svc]))
        let key: [DataValue] = [.ip(Self.ext), .proto(.tcp), .port(80)]
        #expect(Self.elements(r, "service-ips").contains(SetElement(key, verdict: .goto("loc-1"))))
        #expect(Self.elements(r, "short-circuit-ips") == [SetElement(key, verdict: .goto("sc-3"))])
        #expect(!Self.elements(r, "no-endpoint-services").contains { $0.key == key })
    }

    /// Refused at once only when no node has an endpoint; a Local policy without one here drops.
    @Test(arguments: [
        ("internalTrafficPolicy Local, endpoints elsewhere", [Backend](), [Backend](), remote, Verdict.drop),
        ("no endpoints at all", [Backend](), [Backend](), [Backend](), Verdict.goto("reject")),
    ])
    func clusterIPWithoutInternalBackends(_ name: String, _ inside: [Backend], _ outside: [Backend], _ cluster: [Backend], _ verdict: Verdict) {
        let svc = ServicePortState(name: web, clusterIPs: [IPAddress("10.96.0.10")!], port: 80, nodePort: 30080,
                                   internalBackends: inside, externalBackends: outside, clusterBackends: cluster)
        let r = ServiceRuleset.ruleset(ProxyState(services: [svc]))
        #expect(Self.elements(r, "no-endpoint-services") == [SetElement([.ip(IPAddress("10.96.0.10")!), .proto(.tcp), .port(80)], verdict: verdict)], "\(name)")
        #expect(Self.elements(r, "no-endpoint-nodeports") == [SetElement([.proto(.tcp), .port(30080)], verdict: verdict)], "\(name)")
    }

    /// Every proxied cluster IP is in `cluster-ips` once, however many ports share it, and the
    /// service ranges are in `service-cidrs`; both are checked after DNAT in forward and output.
    @Test func clusterIPsAndServiceRanges() {
        let vip = IPAddress("10.96.0.10")!
        let ports = ["http", "https"].map { ServicePortState(name: ServicePortName(namespace: "default", name: "web", port: $0, proto: .tcp),
                                                             clusterIPs: [vip], port: $0 == "http" ? 80 : 443, internalBackends: [Self.near]) }
        let state = ProxyState(services: ports, serviceCIDRs: [CIDR("10.96.0.0/16")!, CIDR("10.96.4.0/24")!, CIDR("fd00::/108")!])
        let r = ServiceRuleset.ruleset(state)
        #expect(Self.elements(r, "cluster-ips") == [SetElement(.ip(vip))])
        #expect(Self.elements(r, "service-cidrs") == [SetElement(prefix: CIDR("10.96.0.0/16")!)])
        for chain in ["filter-forward", "filter-output"] {
            #expect(r.rules.contains { $0.chain == chain && $0.description.contains("jump cluster-ips-check") }, "\(chain)")
        }
        // One port of the two goes: the address stays in the set (the other still uses it).
        let fewer = ProxyState(services: [ports[0]], serviceCIDRs: state.serviceCIDRs)
        #expect(transaction(from: r, to: ServiceRuleset.ruleset(fewer)).description.contains("cluster-ips") == false)
    }
}
