import Cluster
import NetAddress
import ServiceProxy
import Testing

/// Kubernetes semantics of the proxy state: which services are proxied and which backends serve.
@Suite struct ProxyStateTests {
    static func ip(_ s: String) -> IPAddress { IPAddress(s)! }

    static func snapshot(_ services: [Service], _ slices: [EndpointSlice]) -> ClusterSnapshot {
        ClusterSnapshot(services: Dictionary(uniqueKeysWithValues: services.map { ($0.key, $0) }),
                        endpointSlices: Dictionary(uniqueKeysWithValues: slices.map { ($0.key, $0) }),
                        listedKinds: [.service, .endpointSlice])
    }
    static func slice(_ name: String, for service: String, port: UInt16, _ endpoints: [EndpointSlice.Endpoint]) -> EndpointSlice {
        EndpointSlice(metadata: ObjectMeta(name: name, namespace: "default", labels: [EndpointSlice.serviceNameLabel: service]),
                      addressType: .ipv4, endpoints: endpoints, ports: [EndpointPort(name: "http", protocol: .tcp, port: port)])
    }
    static func service(_ name: String, type: ServiceType = .clusterIP, vip: String = "10.96.0.10", nodePort: UInt16? = nil,
                        etp: TrafficPolicy = .cluster, itp: TrafficPolicy = .cluster, headless: Bool = false) -> Service {
        Service(metadata: ObjectMeta(name: name, namespace: "default"), type: type, clusterIPs: headless ? [] : [ip(vip)],
                isHeadless: headless, ports: [ServicePort(name: "http", protocol: .tcp, port: 80, targetPort: .name("http"), nodePort: nodePort)],
                externalTrafficPolicy: etp, internalTrafficPolicy: itp)
    }
    let node = ProxyNodeConfig(nodeName: "node1", nodeAddresses: [ip("192.168.50.11"), ip("10.0.0.5"), ip("127.0.0.1")])

    @Test func readyEndpointsServeAndTerminatingServingOnesAreTheFallback() {
        let s = Self.snapshot([Self.service("web")], [Self.slice("web-1", for: "web", port: 8080, [
            .init(Self.ip("10.244.1.5"), conditions: EndpointConditions(ready: true)),
            .init(Self.ip("10.244.1.6"), conditions: EndpointConditions(ready: false, serving: true, terminating: true)),
            .init(Self.ip("10.244.1.7"), conditions: EndpointConditions(ready: false, serving: false)),
        ])])
        #expect(ProxyState(snapshot: s, node: node).services.first?.internalBackends == [Backend(Self.ip("10.244.1.5"), 8080)])
        // No ready endpoint left: the serving-terminating one takes over, the not-serving one never.
        let fallback = Self.snapshot([Self.service("web")], [Self.slice("web-1", for: "web", port: 8080, [
            .init(Self.ip("10.244.1.6"), conditions: EndpointConditions(ready: false, serving: true, terminating: true)),
            .init(Self.ip("10.244.1.7"), conditions: EndpointConditions(ready: false, serving: false)),
        ])])
        #expect(ProxyState(snapshot: fallback, node: node).services.first?.internalBackends == [Backend(Self.ip("10.244.1.6"), 8080)])
    }

    @Test func namedTargetPortsResolvePerSlice() {
        let s = Self.snapshot([Self.service("web")], [
            Self.slice("web-a", for: "web", port: 8080, [.init(Self.ip("10.244.1.5"))]),
            Self.slice("web-b", for: "web", port: 9090, [.init(Self.ip("10.244.2.5"))]),
        ])
        #expect(ProxyState(snapshot: s, node: node).services.first?.internalBackends
            == [Backend(Self.ip("10.244.1.5"), 8080), Backend(Self.ip("10.244.2.5"), 9090)])
    }

    @Test func trafficPoliciesNarrowToThisNodesBackends() {
        let endpoints: [EndpointSlice.Endpoint] = [.init(Self.ip("10.244.1.5"), nodeName: "node1"), .init(Self.ip("10.244.2.5"), nodeName: "node2")]
        let local = Self.snapshot([Self.service("web", type: .nodePort, nodePort: 30080, etp: .local, itp: .local)],
                                  [Self.slice("web-1", for: "web", port: 8080, endpoints)])
        let svc = ProxyState(snapshot: local, node: node).services.first!
        #expect(svc.internalBackends == [Backend(Self.ip("10.244.1.5"), 8080)])
        #expect(svc.externalBackends == [Backend(Self.ip("10.244.1.5"), 8080)] && svc.externalLocal)
        // externalTrafficPolicy only matters for externally accessible services (kube-proxy's
        // ExternallyAccessible): NodePort, LoadBalancer, and ClusterIP with external IPs.
        let clusterIP = Self.snapshot([Self.service("web", etp: .local)], [Self.slice("web-1", for: "web", port: 8080, endpoints)])
        let c = ProxyState(snapshot: clusterIP, node: node).services.first!
        #expect(!c.externalLocal && c.nodePort == nil && c.internalBackends.count == 2)
        var withExternalIP = Self.service("web", etp: .local)
        withExternalIP.externalIPs = [Self.ip("192.0.2.10")]
        let e = ProxyState(snapshot: Self.snapshot([withExternalIP], [Self.slice("web-1", for: "web", port: 8080, endpoints)]), node: node).services.first!
        #expect(e.externalLocal && e.externalBackends == [Backend(Self.ip("10.244.1.5"), 8080)] && e.internalBackends.count == 2)
    }

    @Test func headlessAndExternalNameAreNotProxied() {
        var externalName = Self.service("ext", vip: "10.96.0.11")
        externalName.type = .externalName
        externalName.externalName = "example.org"
        let s = Self.snapshot([Self.service("headless", headless: true), externalName], [])
        #expect(ProxyState(snapshot: s, node: node).services.isEmpty)
    }

    @Test func nodePortsAnswerOnFilteredNodeAddressesNeverLoopback() {
        #expect(ProxyState(snapshot: Self.snapshot([], []), node: node).nodePortAddresses == [Self.ip("10.0.0.5"), Self.ip("192.168.50.11")])
        var filtered = node
        filtered.nodePortAddresses = [CIDR("192.168.50.0/24")!, CIDR("127.0.0.0/8")!]
        #expect(ProxyState(snapshot: Self.snapshot([], []), node: filtered).nodePortAddresses == [Self.ip("192.168.50.11")])
    }

    /// Whatever the traffic policies, `clusterBackends` is every usable endpoint: what pods and the
    /// node reach on an externalTrafficPolicy Local service's external addresses, and whether the
    /// service has endpoints at all.
    @Test func clusterBackendsIgnoreTrafficPolicies() {
        let endpoints: [EndpointSlice.Endpoint] = [.init(Self.ip("10.244.2.5"), nodeName: "node2"), .init(Self.ip("10.244.3.5"), nodeName: "node3")]
        let s = Self.snapshot([Self.service("web", type: .nodePort, nodePort: 30080, etp: .local, itp: .local)],
                              [Self.slice("web-1", for: "web", port: 8080, endpoints)])
        let svc = ProxyState(snapshot: s, node: node).services.first!
        #expect(svc.internalBackends.isEmpty && svc.externalBackends.isEmpty, "no endpoint on node1")
        #expect(svc.clusterBackends == [Backend(Self.ip("10.244.2.5"), 8080), Backend(Self.ip("10.244.3.5"), 8080)])
        #expect(svc.hasEndpoints)
    }

    /// The service ranges are the flag's and the ServiceCIDR objects', without duplicates or nested ranges.
    @Test func serviceCIDRsComeFromTheFlagAndTheServiceCIDRObjects() {
        var s = Self.snapshot([], [])
        s.serviceCIDRs = [
            ObjectKey(kind: .serviceCIDR, name: "kubernetes"): ServiceCIDR(metadata: ObjectMeta(name: "kubernetes"),
                                                                          cidrs: [CIDR("10.96.0.0/16")!, CIDR("fd00:96::/108")!]),
            ObjectKey(kind: .serviceCIDR, name: "extra"): ServiceCIDR(metadata: ObjectMeta(name: "extra"), cidrs: [CIDR("10.100.0.0/24")!]),
        ]
        var flagged = node
        flagged.serviceCIDRs = [CIDR("10.96.0.0/12")!]
        #expect(ProxyState(snapshot: s, node: node).serviceCIDRs == [CIDR("10.96.0.0/16")!, CIDR("10.100.0.0/24")!, CIDR("fd00:96::/108")!])
        #expect(ProxyState(snapshot: s, node: flagged).serviceCIDRs == [CIDR("10.96.0.0/12")!, CIDR("fd00:96::/108")!])
    }

    @Test(arguments: [
        (["10.96.0.0/16", "10.96.0.0/16"], ["10.96.0.0/16"]),
        (["10.96.5.0/24", "10.96.0.0/16", "10.97.0.0/16"], ["10.96.0.0/16", "10.97.0.0/16"]),
        (["10.96.0.7/16"], ["10.96.0.0/16"]),
        ([], []),
    ])
    func outermostRangesNeverOverlap(_ given: [String], _ expected: [String]) {
        #expect(ProxyState.outermost(given.map { CIDR($0)! }) == expected.map { CIDR($0)! })
    }
}
