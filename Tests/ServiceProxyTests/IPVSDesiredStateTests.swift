import Cluster
import NetAddress
import Netlink
@testable import ServiceProxy
import Testing

func ip(_ s: String) -> IPAddress { IPAddress(s)! }
func tcp(_ address: String, _ port: UInt16) -> IPVSServiceKey { IPVSServiceKey(address: ip(address), proto: .tcp, port: port) }
func udp(_ address: String, _ port: UInt16) -> IPVSServiceKey { IPVSServiceKey(address: ip(address), proto: .udp, port: port) }
func dest(_ address: String, _ port: UInt16, weight: UInt32 = 1) -> IPVSDestination { IPVSDestination(address: ip(address), port: port, weight: weight) }

let ipvsWeb = ServicePortName(namespace: "default", name: "web", port: "http", proto: .tcp)
let ipvsDNS = ServicePortName(namespace: "kube-system", name: "dns", port: "dns", proto: .udp)
let ipvsLocal = ServicePortName(namespace: "default", name: "local", port: "", proto: .tcp)
let ipvsEmpty = ServicePortName(namespace: "default", name: "empty", port: "", proto: .tcp)

/// Every feature once: cluster IP + node port + external IP + LB IP with source ranges and a
/// terminating endpoint (web), ClientIP affinity over UDP (dns), externalTrafficPolicy Local with one
/// local backend (local), no endpoints at all (empty); node-port addresses include loopback.
let ipvsFixture = ProxyState(
    services: [
        ServicePortState(name: ipvsWeb, clusterIPs: [ip("10.96.0.10")], port: 80, nodePort: 30080, externalIPs: [ip("203.0.113.7")],
                         loadBalancerIPs: [ip("192.0.2.10")], loadBalancerSourceRanges: [CIDR("198.51.100.0/24")!],
                         internalBackends: [Backend(ip("10.244.1.5"), 8080), Backend(ip("10.244.2.7"), 8080)],
                         terminatingInternalBackends: [Backend(ip("10.244.3.3"), 8080)]),
        ServicePortState(name: ipvsDNS, clusterIPs: [ip("10.96.0.53")], port: 53, affinityTimeout: 10800,
                         internalBackends: [Backend(ip("10.244.1.9"), 5353)]),
        ServicePortState(name: ipvsLocal, clusterIPs: [ip("10.96.0.77")], port: 80, nodePort: 30077, loadBalancerIPs: [ip("192.0.2.77")],
                         internalBackends: [Backend(ip("10.244.1.5"), 80), Backend(ip("10.244.2.7"), 80)],
                         externalBackends: [Backend(ip("10.244.1.5"), 80)], externalLocal: true),
        ServicePortState(name: ipvsEmpty, clusterIPs: [ip("10.96.0.99")], port: 80, nodePort: 30099, internalBackends: []),
    ],
    nodePortAddresses: [ip("192.168.50.11"), ip("10.0.0.5"), ip("127.0.0.1")],
    clusterCIDR: CIDR("10.244.0.0/16"))

@Suite struct IPVSDesiredStateTests {
    let desired = IPVSDesiredState(ipvsFixture)

    @Test func clusterIPGetsTheInternalBackends() {
        let web = desired.services[tcp("10.96.0.10", 80)]
        #expect(web?.service.scheduler == "rr" && web?.service.flags == [])
        #expect(web?.destinations.filter { $0.weight == 1 } == [dest("10.244.1.5", 8080), dest("10.244.2.7", 8080)])
        #expect(desired.owners[tcp("10.96.0.10", 80)] == ipvsWeb)
    }

    @Test func nodePortsExistOnEveryNodePortAddressButLoopback() {
        let keys = desired.services.keys.filter { $0.port == 30080 }.sorted()
        #expect(keys == [tcp("10.0.0.5", 30080), tcp("192.168.50.11", 30080)])
        #expect(desired.services[tcp("192.168.50.11", 30080)]?.destinations == desired.services[tcp("10.96.0.10", 80)]?.destinations)
        // A service without endpoints still gets its virtual services (the nftables table rejects).
        #expect(desired.services[tcp("10.0.0.5", 30099)]?.destinations == [])
        #expect(desired.services[tcp("10.96.0.99", 80)]?.destinations == [])
    }

    @Test func externalAndLoadBalancerIPsGetTheExternalBackends() {
        #expect(desired.services[tcp("203.0.113.7", 80)] != nil && desired.services[tcp("192.0.2.10", 80)] != nil)
        // externalTrafficPolicy Local: LB IP and node ports get this node's backend only; the cluster IP all.
        #expect(desired.services[tcp("192.0.2.77", 80)]?.destinations == [dest("10.244.1.5", 80)])
        #expect(desired.services[tcp("192.168.50.11", 30077)]?.destinations == [dest("10.244.1.5", 80)])
        #expect(desired.services[tcp("10.96.0.77", 80)]?.destinations == [dest("10.244.1.5", 80), dest("10.244.2.7", 80)])
    }

    @Test func clientIPAffinityIsPersistence() {
        let dns = desired.services[udp("10.96.0.53", 53)]?.service
        #expect(dns?.flags == .persistent && dns?.timeout == 10800 && dns?.netmask == 32)
        #expect(desired.services[tcp("10.96.0.10", 80)]?.service.timeout == 0)
    }

    @Test func terminatingEndpointsStayWithWeightZero() {
        #expect(desired.services[tcp("10.96.0.10", 80)]?.destinations.last == dest("10.244.3.3", 8080, weight: 0))
        // A backend that is also listed as terminating (the KEP-1669 fallback) serves: weight 1.
        let fallback = IPVSDesiredState.destinations([Backend(ip("10.244.3.3"), 80)], terminating: [Backend(ip("10.244.3.3"), 80)])
        #expect(fallback == [dest("10.244.3.3", 80)])
    }

    @Test func schedulerIsEveryServices() {
        let wlc = IPVSDesiredState(ipvsFixture, scheduler: IPVSScheduler(rawValue: "wlc")!)
        #expect(!wlc.services.isEmpty && wlc.services.values.allSatisfy { $0.service.scheduler == "wlc" })
        #expect(IPVSScheduler(rawValue: "roundrobin") == nil && IPVSScheduler(rawValue: "mh") != nil)
    }

    @Test func dummyHoldsServiceAddressesNotNodeAddresses() {
        #expect(desired.dummyAddresses == ["10.96.0.10", "10.96.0.53", "10.96.0.77", "10.96.0.99", "192.0.2.10", "192.0.2.77",
                                           "203.0.113.7"].map(ip))
        #expect(desired.nodePortAddresses == [ip("10.0.0.5"), ip("192.168.50.11")])
    }

    @Test func aContestedKeyGoesToTheFirstServiceAndIsReported() {
        var state = ipvsFixture
        state.services.append(ServicePortState(name: ServicePortName(namespace: "z", name: "late", port: "", proto: .tcp),
                                               clusterIPs: [ip("10.96.0.88")], port: 80, externalIPs: [ip("203.0.113.7")],
                                               internalBackends: [Backend(ip("10.244.9.9"), 80)]))
        let d = IPVSDesiredState(ProxyState(services: state.services, nodePortAddresses: state.nodePortAddresses))
        #expect(d.owners[tcp("203.0.113.7", 80)] == ipvsWeb)
        #expect(d.conflicts.map(\.key) == [tcp("203.0.113.7", 80)])
        #expect(d.services[tcp("10.96.0.88", 80)]?.destinations == [dest("10.244.9.9", 80)])
    }

    /// The builder lists terminating endpoints apart, by traffic policy; the backends stay as they were.
    @Test func builderListsTerminatingEndpointsApart() {
        let service = Service(metadata: ObjectMeta(name: "web", namespace: "default"), type: .nodePort, clusterIPs: [ip("10.96.0.10")],
                              ports: [ServicePort(name: "http", protocol: .tcp, port: 80, targetPort: .name("http"), nodePort: 30080)],
                              externalTrafficPolicy: .local)
        let slice = EndpointSlice(
            metadata: ObjectMeta(name: "web-1", namespace: "default", labels: [EndpointSlice.serviceNameLabel: "web"]),
            addressType: .ipv4,
            endpoints: [
                .init(ip("10.244.1.5"), conditions: EndpointConditions(ready: true), nodeName: "node1"),
                .init(ip("10.244.1.6"), conditions: EndpointConditions(ready: false, serving: true, terminating: true), nodeName: "node1"),
                .init(ip("10.244.2.6"), conditions: EndpointConditions(ready: false, serving: false, terminating: true), nodeName: "node2"),
                .init(ip("10.244.2.7"), conditions: EndpointConditions(ready: false, serving: false), nodeName: "node2"),
            ],
            ports: [EndpointPort(name: "http", protocol: .tcp, port: 8080)])
        let snapshot = ClusterSnapshot(services: [service.key: service], endpointSlices: [slice.key: slice],
                                       listedKinds: [.service, .endpointSlice])
        let svc = ProxyState(snapshot: snapshot, node: ProxyNodeConfig(nodeName: "node1", nodeAddresses: [ip("192.168.50.11")]))
            .services.first!
        #expect(svc.internalBackends == [Backend(ip("10.244.1.5"), 8080)])
        #expect(svc.terminatingInternalBackends == [Backend(ip("10.244.1.6"), 8080), Backend(ip("10.244.2.6"), 8080)])
        #expect(svc.externalBackends == [Backend(ip("10.244.1.5"), 8080)])
        #expect(svc.terminatingExternalBackends == [Backend(ip("10.244.1.6"), 8080)], "externalTrafficPolicy Local: this node's only")
    }
}
