import Glibc
import NetAddress
import Netlink

/// A `TestCluster` running keeld's route controller on every node, with pods attached by the
/// `host-gw` or `vxlan` plugin binaries: what the demo, the cross-node tests and the overlay
/// benchmark build on. Its files (manifests, node files, IPAM data) live in a temp folder removed
/// with it; keeld processes are stopped by their handles.
public final class OverlayLab: @unchecked Sendable {
    public let cluster: TestCluster
    public let backend: String
    public let directory: String
    public private(set) var agents: [String: BackgroundProcess] = [:]
    let binaries: String

    public init(cluster: TestCluster, backend: String, binaries: String = CNIRunner.keelPluginDirectory) throws {
        self.cluster = cluster
        self.backend = backend
        self.binaries = binaries
        directory = "/tmp/keel-overlay-\(getpid())-\(backend)-\(UInt32.random(in: 0 ... .max))"
        mkdir(directory, 0o755)
        mkdir(manifests, 0o755)
        try cluster.writeManifests(to: manifests)
    }

    deinit {
        for a in agents.values { a.stop() }
        _ = try? NamespaceProcess.run(["rm", "-rf", directory])   // best effort: a temp folder
    }

    public var manifests: String { "\(directory)/manifests" }
    public func nodeFile(_ node: String) -> String { "\(directory)/\(node).env" }

    /// Starts keeld with the route controller on `node`.
    public func startAgent(_ node: TestCluster.ClusterNode, logLevel: String = "info", extra: [String] = []) throws {
        agents[node.name]?.stop()
        agents[node.name] = try NamespaceProcess.start(
            ["\(binaries)/keeld", "--routes", "--backend", backend, "--manifests", manifests, "--node-name", node.name,
             "--node-file", nodeFile(node.name), "--resync-seconds", "1", "--log-level", logLevel] + extra,
            in: node.namespace.namespace)
    }

    /// Stops `node`'s keeld with SIGTERM through its handle; returns its exit status.
    @discardableResult
    public func stopAgent(_ node: TestCluster.ClusterNode) -> Int32? {
        defer { agents[node.name] = nil }
        return agents[node.name]?.stop()
    }

    /// What `node`'s keeld logged so far (stderr).
    public func agentLog(_ node: String) -> String { agents[node]?.stderr ?? "" }

    /// Starts keeld on every node and waits until each has written its node file.
    public func startAgents(logLevel: String = "info", extra: [String] = []) throws {
        for n in cluster.nodes { try startAgent(n, logLevel: logLevel, extra: extra) }
        try waitFor("node files", timeout: 10) { cluster.nodes.allSatisfy { access(nodeFile($0.name), R_OK) == 0 } }
    }

    /// The plugin's network config for pods of `node`.
    public func networkConfig(_ node: String) -> String {
        """
        {"cniVersion":"1.0.0","name":"keel","type":"\(backend)","nodeFile":"\(nodeFile(node))","dataDir":"\(directory)/ipam-\(node)"}
        """
    }

    /// A pod on `node`, attached by the plugin binary; returns its namespace and first address.
    public func addPod(_ node: TestCluster.ClusterNode, _ name: String) throws -> (LabNamespace, IPAddress) {
        let pod = try cluster.lab.namespace("\(node.name)-\(name)")
        let runner = CNIRunner(node: node.namespace, path: [binaries])
        let r = try runner.add(backend, pod: pod, containerID: "\(node.name)-\(name)", config: networkConfig(node.name))
        guard r.succeeded, let address = Self.firstAddress(inResult: r.stdout) else {
            throw ProcessError(command: ["\(backend) ADD"], reason: r.description)
        }
        return (pod, address)
    }

    /// Routes with protocol keel on `node`: the peers' pod CIDRs.
    public func peerRoutes(_ node: TestCluster.ClusterNode) throws -> [Route] {
        try node.namespace.route.routes(table: .main).filter { $0.proto == .keel }
    }

    /// Waits until every node has a route to every other node's pod CIDR.
    public func waitForPeers(timeout: Double = 10) throws {
        let expected = cluster.nodes.count - 1
        try waitFor("peer routes on every node", timeout: timeout) {
            try cluster.nodes.allSatisfy { try peerRoutes($0).count == expected }
        }
    }

    /// Writes a manifest into keeld's folder (atomically: the watcher never sees half a file).
    public func writeManifest(_ name: String, _ yaml: String) throws {
        try writeFile("\(manifests)/\(name)", yaml)
    }

    /// `"address":"10.244.1.2/24"` → 10.244.1.2, without a JSON library (the harness stays Foundation-free).
    static func firstAddress(inResult json: String) -> IPAddress? {
        guard let r = json.firstRange(of: "\"address\":\"") else { return nil }
        return IPAddress(json[r.upperBound...].prefix { $0 != "/" && $0 != "\"" })
    }
}

/// Polls `condition` every 50 ms until it holds or `timeout` seconds pass.
public func waitFor(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
    var waited = 0.0
    while waited < timeout {
        if try condition() { return }
        usleep(50_000)
        waited += 0.05
    }
    throw ProcessError(command: ["wait"], reason: "timed out after \(timeout) s waiting for \(what)")
}
