import Foundation
import NetAddress
import Netlink
import NetnsHarness
import Testing

/// A cluster of node namespaces running keeld (route controller) with pods made by the host-gw or
/// vxlan plugin binaries.
final class OverlayCluster {
    let cluster: TestCluster
    let backend: String
    let dir: String
    let runner: [String: CNIRunner]
    var agents: [String: BackgroundProcess] = [:]

    init(lab: NetnsLab, backend: String, nodes: Int) throws {
        self.backend = backend
        cluster = try TestCluster(lab: lab, nodeCount: nodes)
        dir = "/tmp/keel-overlay-\(getpid())-\(backend)-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: dir + "/manifests", withIntermediateDirectories: true)
        try cluster.writeManifests(to: dir + "/manifests")
        var runners: [String: CNIRunner] = [:]
        for n in cluster.nodes { runners[n.name] = CNIRunner(node: n.namespace, path: [CNIRunner.keelPluginDirectory]) }
        runner = runners
    }

    deinit {
        for a in agents.values { a.stop() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    var keeld: String { CNIRunner.keelPluginDirectory + "/keeld" }
    func nodeFile(_ node: String) -> String { "\(dir)/\(node).env" }

    func startAgent(_ node: TestCluster.ClusterNode, extra: [String] = []) throws {
        agents[node.name] = try NamespaceProcess.start(
            [keeld, "--routes", "--backend", backend, "--manifests", dir + "/manifests", "--node-name", node.name,
             "--node-file", nodeFile(node.name), "--resync-seconds", "1", "--log-level", "debug"] + extra,
            in: node.namespace.namespace)
    }

    func startAgents() throws {
        for n in cluster.nodes { try startAgent(n) }
        try waitUntil("node files written") { cluster.nodes.allSatisfy { FileManager.default.fileExists(atPath: nodeFile($0.name)) } }
    }

    func config(_ node: String) -> String {
        """
        {"cniVersion":"1.0.0","name":"keel","type":"\(backend)","nodeFile":"\(nodeFile(node))","dataDir":"\(dir)/ipam-\(node)"}
        """
    }

    /// A pod on `node` attached through the plugin binary; returns its namespace and address.
    func addPod(_ node: TestCluster.ClusterNode, _ name: String) throws -> (LabNamespace, IPAddress) {
        let pod = try cluster.lab.namespace("\(node.name)-\(name)")
        let r = try runner[node.name]!.add(backend, pod: pod, containerID: "\(node.name)-\(name)", config: config(node.name))
        guard r.succeeded else { throw ProcessError(command: ["\(backend) ADD"], reason: r.description) }
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let address = ((json["ips"] as! [[String: Any]])[0]["address"] as! String).split(separator: "/")[0]
        return (pod, IPAddress(address)!)
    }

    /// Peer entries (routes with protocol keel) on `node`.
    func keelRoutes(_ node: TestCluster.ClusterNode) throws -> [Route] {
        try node.namespace.route.routes(table: .main).filter { $0.proto == .keel }
    }

    func agentLog(_ node: String) -> String { agents[node]?.stderr ?? "" }
}

func waitUntil(_ what: String, timeout: Double = 10, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        usleep(50_000)
    }
    throw ProcessError(command: ["wait"], reason: "timed out waiting for: \(what)")
}

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct CrossNodeTests {
    @Test(arguments: ["host-gw", "vxlan"])
    func everyPodReachesEveryOtherPodAcrossThreeNodes(backend: String) throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let c = try OverlayCluster(lab: lab, backend: backend, nodes: 3)
            try c.startAgents()
            var pods: [(LabNamespace, IPAddress)] = []
            for node in c.cluster.nodes {
                for p in ["a", "b"] { pods.append(try c.addPod(node, p)) }
            }
            // Each node has a route to each of the two peers' pod CIDRs.
            try waitUntil("peer routes") { try c.cluster.nodes.allSatisfy { try c.keelRoutes($0).count == 2 } }
            let servers = try pods.map { try BannerServer(in: $0.0, address: $0.1, port: 8080, banner: "pod \($0.1)") }
            defer { servers.forEach { $0.stop() } }
            for (from, _) in pods {
                for (_, to) in pods {
                    #expect(try TrafficProbe.ping(from: from, to: to), "ping \(from.name) -> \(to) over \(backend)")
                    #expect(try TrafficProbe.tcpConnect(from: from, to: to, port: 8080).reply == "pod \(to)")
                }
            }
            if backend == "vxlan" {
                let mtu = try pods[0].0.route.link("eth0").mtu
                #expect(mtu == 1450, "pod MTU is the underlay's 1500 minus 50")
            }
        }
    }
}
