import Foundation
import Glibc
import Logging
import NFTables
import NetAddress
import Netlink
import NetnsHarness
import ServiceProxy
import Synchronization
import Testing

// The IPVS data plane on this machine's kernel, inside lab namespaces: keeld's refusal to start in
// IPVS mode without IPVS, and everything of the data plane that is not IPVS itself (dummy interface,
// sysctls, the nftables table and what it filters) with an in-memory IPVS table. Traffic through
// real IPVS runs in the VM lane (the stock Debian kernel has ip_vs).

/// /proc/net/ip_vs exists once the ip_vs module is loaded (in every namespace).
private let kernelHasIPVS = access("/proc/net/ip_vs", F_OK) == 0

/// An IPVS table in memory, for the parts of the data plane that do not need the kernel's.
private final class MemoryIPVSTable: IPVSTable {
    private let table = Mutex<[IPVSServiceKey: IPVSVirtualService]>([:])
    func services() throws -> [IPVSService] { table.withLock { $0.values.map(\.service) } }
    func destinations(of service: IPVSServiceKey) throws -> [IPVSDestination] { table.withLock { $0[service]?.destinations ?? [] } }
    func apply(_ operations: [IPVSOperation]) throws { table.withLock { $0 = $0.applying(operations) } }
    var contents: [IPVSServiceKey: IPVSVirtualService] { table.withLock { $0 } }
}

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct IPVSHostTests {
    static let manifests = """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: default}
        spec:
          type: NodePort
          clusterIP: 10.96.0.10
          ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: web-1
          namespace: default
          labels: {kubernetes.io/service-name: web}
        addressType: IPv4
        endpoints:
        - addresses: ["10.244.1.5"]
          conditions: {ready: true}
          nodeName: node1
        ports: [{name: http, protocol: TCP, port: 8080}]

        """

    /// A node namespace with an uplink address, like a node's eth0.
    static func node(_ lab: NetnsLab) throws -> LabNamespace {
        let node = try lab.namespace("node")
        try node.route.createLink(LinkSpec(name: "eth0", kind: .bridge))   // no dummy driver in this kernel
        try node.configure("eth0", address: CIDR("192.168.50.11/24")!)
        return node
    }

    /// Links, addresses, routes, sysctls (the IPVS ones too) and nftables tables of `node`.
    static func fingerprint(_ node: LabNamespace) throws -> NamespaceFingerprint {
        let tables = try node.run { try NFTablesSocket().tableNames() }.map { "nft table \($0)" }
        let vs = ["net.ipv4.vs.conntrack", "net.ipv4.vs.expire_nodest_conn", "net.ipv4.vs.expire_quiescent_template",
                  "net.ipv4.vs.conn_reuse_mode"].map { "sysctl \($0)=\((try? node.sysctl($0)) ?? "absent")" }  // absent without ip_vs
        return try NamespaceFingerprint.read(node.route, namespace: node.namespace, extra: tables + vs)
    }

    /// `keeld --proxy --proxy-mode ipvs` in a node namespace. Without IPVS in the kernel it must exit
    /// non-zero at once, say that the module ip_vs is missing, and leave the namespace exactly as it
    /// was: no table, no keel-ipvs0, no sysctl. With IPVS (a kernel where /proc/net/ip_vs exists) that
    /// expectation does not apply and is skipped; the same command must then program the service.
    @Test func keeldInIPVSModeNeedsIPVSAndTouchesNothingWithoutIt() throws {
        try withScratchDirectory("ipvs") { dir in
            try Self.manifests.write(toFile: dir + "/web.yaml", atomically: true, encoding: .utf8)
            try NetnsLab.with(prefix: "keel-ipvs") { lab in
                let node = try Self.node(lab)
                let before = try Self.fingerprint(node)
                let keeld = try NamespaceProcess.start(["\(CNIRunner.keelPluginDirectory)/keeld", "--manifests", dir, "--proxy",
                                                        "--proxy-mode", "ipvs", "--node-name", "node1"], in: node.namespace)
                defer { keeld.stop() }
                if kernelHasIPVS {
                    print("IPVSHostTests: /proc/net/ip_vs exists, so the no-IPVS expectation is skipped; checking that keeld programs IPVS")
                    let ipvs = try IPVSSocket.inside(node.namespace)
                    let key = IPVSServiceKey(address: IPAddress("10.96.0.10")!, proto: .tcp, port: 80)
                    try waitUntil("keeld programs the cluster IP in IPVS", timeout: 15) {
                        try ipvs.services().contains { $0.key == key }
                    }
                    #expect(try ipvs.destinations(of: key).map(\.address) == [IPAddress("10.244.1.5")!])
                    #expect(try ipvs.services().contains { $0.key == IPVSServiceKey(address: IPAddress("192.168.50.11")!, proto: .tcp, port: 30080) })
                    let dummy = try node.route.link(.name(KernelIPVSNodeDevices.dummyName))
                    #expect(try node.route.addresses(link: dummy.index).map(\.cidr.address) == [IPAddress("10.96.0.10")!])
                    #expect(keeld.stop() == 0, "keeld exits cleanly on SIGTERM")
                    return
                }
                try waitUntil("keeld exits", timeout: 10) { !keeld.isRunning }
                let status = keeld.stop()
                let stderr = keeld.stderr
                #expect(status != 0, "keeld must fail without IPVS:\n\(stderr)")
                #expect(stderr.contains("ip_vs"), "the message names the missing module:\n\(stderr)")
                let after = try Self.fingerprint(node)
                #expect(after == before, "keeld changed the namespace: \(before.difference(to: after))")
            }
        }
    }

    /// The data plane's kernel parts in a node namespace, with an in-memory IPVS table: the dummy
    /// interface holds exactly the service addresses (down), the table loads and reads back as
    /// rendered, its input filter refuses new connections to a service address on a port that is no
    /// service of it (while the node's own address still answers), a restart changes nothing, and a
    /// removed service takes its address along.
    @Test func dataplaneKeepsDummySysctlsAndTableInItsNamespace() throws {
        try NetnsLab.with(prefix: "keel-ipvs") { lab in
            let node = try Self.node(lab)
            try node.sysctl("net.ipv4.ip_forward", "0")
            let web = ServicePortState(name: ServicePortName(namespace: "default", name: "web", port: "http", proto: .tcp),
                                       clusterIPs: [IPAddress("10.96.0.10")!], port: 80, nodePort: 30080,
                                       loadBalancerIPs: [IPAddress("192.0.2.10")!], loadBalancerSourceRanges: [CIDR("198.51.100.0/24")!],
                                       internalBackends: [Backend(IPAddress("10.244.1.5")!, 8080)])
            let empty = ServicePortState(name: ServicePortName(namespace: "default", name: "empty", port: "", proto: .tcp),
                                         clusterIPs: [IPAddress("10.96.0.99")!], port: 80, internalBackends: [])
            let state = ProxyState(services: [web, empty], nodePortAddresses: [IPAddress("192.168.50.11")!], clusterCIDR: CIDR("10.244.0.0/16"))
            let ipvs = MemoryIPVSTable()
            func dataplane() throws -> IPVSServiceDataplane {
                let devices = KernelIPVSNodeDevices(route: node.route, nft: try node.run { try NFTablesSocket() }, namespace: node.namespace)
                // Only ip_forward: the net.ipv4.vs.* sysctls exist only where ip_vs is loaded.
                return IPVSServiceDataplane(ipvs: ipvs, node: devices, sysctls: [IPVSSysctl("net.ipv4.ip_forward", "1")],
                                            logger: Logger(label: "test"))
            }

            try dataplane().apply(state)
            let dummy = try node.route.link(.name(KernelIPVSNodeDevices.dummyName))
            #expect((dummy.kind == "dummy" || dummy.kind == "bridge") && !dummy.isUp, "dummy, or an empty bridge without CONFIG_DUMMY")
            #expect(Set(try node.route.addresses(link: dummy.index).map(\.cidr)) == Set(["10.96.0.10/32", "10.96.0.99/32", "192.0.2.10/32"].map { CIDR($0)! }))
            #expect(try node.sysctl("net.ipv4.ip_forward") == "1")
            #expect(try node.run { try NFTablesSocket().table(named: "keel-ipvs", family: .ip) } == IPVSRuleset.ruleset(state))
            #expect(try node.exec(["nft", "list", "table", "ip", "keel-ipvs"]).succeeded, "nft prints the table")
            #expect(ipvs.contents == IPVSDesiredState(state).services)

            // Without IPVS the node's own listeners see what passes the filter.
            let anyAddress = IPAddress("0.0.0.0")!
            let servicePort = try BannerServer(in: node, address: anyAddress, port: 80, banner: "port 80")
            let otherPort = try BannerServer(in: node, address: anyAddress, port: 9999, banner: "port 9999")
            defer { servicePort.stop(); otherPort.stop() }
            #expect(try TrafficProbe.tcpConnect(from: node, to: IPAddress("10.96.0.10")!, port: 9999) == .refused,
                    "a cluster IP answers on its service ports only")
            #expect(try TrafficProbe.tcpConnect(from: node, to: IPAddress("192.168.50.11")!, port: 9999).reply == "port 9999",
                    "the node's own address is not filtered")
            #expect(try TrafficProbe.tcpConnect(from: node, to: IPAddress("10.96.0.10")!, port: 80).reply == "port 80",
                    "a service port passes the filter (IPVS would take it in LOCAL_IN)")
            #expect(try TrafficProbe.tcpConnect(from: node, to: IPAddress("10.96.0.99")!, port: 80) == .refused,
                    "a service without endpoints is rejected")

            // A restart over an intact namespace sends nothing.
            let restarted = try dataplane()
            try restarted.apply(state)
            #expect(restarted.lastReport?.fullSync == true && restarted.lastReport?.changedSomething == false,
                    "\(String(describing: restarted.lastReport))")

            // The service without endpoints goes, and its address with it.
            let smaller = ProxyState(services: [web], nodePortAddresses: state.nodePortAddresses, clusterCIDR: state.clusterCIDR)
            try restarted.apply(smaller)
            #expect(Set(try node.route.addresses(link: dummy.index).map(\.cidr)) == Set(["10.96.0.10/32", "192.0.2.10/32"].map { CIDR($0)! }))
            #expect(try node.run { try NFTablesSocket().table(named: "keel-ipvs", family: .ip) } == IPVSRuleset.ruleset(smaller))
            #expect(ipvs.contents == IPVSDesiredState(smaller).services)
        }
    }
}
