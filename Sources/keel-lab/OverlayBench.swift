import Glibc
import NetAddress
import Netlink
import NetnsHarness
import PodNetwork
import Routes

/// `bench overlay`: the route controller's convergence time for 10, 100 and 1,000 peer nodes (full,
/// one peer changed, nothing changed), and pod-to-pod TCP throughput on one node, across nodes over
/// host-gw, and across nodes over VXLAN. Everything runs in the lab's namespaces.
struct OverlayBench {
    let lab: NetnsLab
    let runs: Int
    let peerCounts: [Int]
    let iperfSeconds: Int

    func run() throws {
        var convergence: [(backend: OverlayBackend, peers: Int, full: Double, onePeer: Double, noChange: Double)] = []
        for backend in OverlayBackend.allCases {
            for peers in peerCounts {
                var full: [Double] = [], one: [Double] = [], none: [Double] = []
                for run in 0..<runs {
                    let t = try converge(backend: backend, peers: peers, run: run)
                    full.append(t.full)
                    one.append(t.onePeer)
                    none.append(t.noChange)
                    lab.removeAll()
                }
                convergence.append((backend, peers, median(full), median(one), median(none)))
            }
        }
        print("Route controller convergence: one pass (desiredPeerState → PeerSync.current → peerChanges → PeerSync.apply)")
        print("in a node namespace with synthetic peers; median of \(runs) run(s), each in a fresh namespace")
        print("\(pad("backend", 9)) \(pad("peers", 7)) \(pad("entries", 9)) \(pad("full", 12)) \(pad("1 peer moved", 14)) nothing changed")
        print(String(repeating: "-", count: 70))
        for c in convergence {
            let entries = c.backend == .vxlan ? c.peers * 3 : c.peers
            print("\(pad(c.backend.rawValue, 9)) \(pad("\(c.peers)", 7)) \(pad("\(entries)", 9)) \(pad(ms(c.full), 12)) \(pad(ms(c.onePeer), 14)) \(ms(c.noChange))")
        }
        print("")

        var throughput: [String: Double] = [:]
        for backend in ["host-gw", "vxlan"] {
            let t = try measureThroughput(backend: backend)
            throughput["same-\(backend)"] = t.sameNode
            throughput[backend] = t.crossNode
            lab.removeAll()
        }
        print("Pod-to-pod TCP throughput (iperf3 -t \(iperfSeconds), one stream, 2 nodes, Gbit/s received)")
        let columns = ["same node", "across nodes: host-gw", "across nodes: vxlan", "same node (vxlan pod MTU)"]
        print(columns.map { pad($0, 27) }.joined())
        print(String(repeating: "-", count: 27 * columns.count))
        print([throughput["same-host-gw"]!, throughput["host-gw"]!, throughput["vxlan"]!, throughput["same-vxlan"]!]
            .map { pad(format2($0 / 1e9), 27) }.joined())
    }

    func ms(_ seconds: Double) -> String { format2(seconds * 1000) + " ms" }

    // MARK: - Convergence

    /// A node namespace with an underlay (`eth0`, 172.16.0.1/16) and, for vxlan, the VXLAN
    /// device as keeld makes it; then three timed passes against synthetic peers.
    func converge(backend: OverlayBackend, peers: Int, run: Int) throws -> (full: Double, onePeer: Double, noChange: Double) {
        let ns = try lab.namespace("conv-\(backend.rawValue)-\(peers)-\(run)")
        // A veth whose peer stays in the namespace (this kernel has no dummy driver): up, so routes via it are accepted.
        let underlay = try ns.route.createLink(LinkSpec(name: "eth0", kind: .veth(peerName: "eth0p"), mtu: 1500, up: true))
        try ns.route.setUp("eth0p")
        let nodeIP = IPAddress("172.16.0.1")!
        try ns.route.addAddress(InterfaceAddress(linkIndex: underlay.index, cidr: CIDR(nodeIP, prefixLength: 16)!))
        var local = LocalNode(name: "bench-node", backend: backend)
        if backend == .vxlan {
            let device = VXLANDevice(underlayInterface: "eth0", underlayAddress: nodeIP, podCIDR: CIDR("10.0.0.0/24")!)
            local.vxlanIndex = try device.ensure(ns.route).device.index
        }
        // Peer i: pod CIDR 10.<1 + i/256>.<i%256>.0/24, node IP 172.16.<1 + i/250>.<2 + i%250>.
        var nodes: [PeerNode] = (0..<peers).map { (i: Int) -> PeerNode in
            let podNetwork = IPAddress.v4(IPv4Address(10, UInt8(1 + i / 256), UInt8(i % 256), 0))
            let nodeIP = IPAddress.v4(IPv4Address(172, 16, UInt8(1 + i / 250), UInt8(2 + i % 250)))
            return PeerNode(name: "peer\(i)", podCIDRs: [CIDR(podNetwork, prefixLength: 24)!], nodeIPs: [nodeIP])
        }
        let sync = PeerSync(socket: ns.route)

        /// One pass, as RouteController runs it; returns its time and the number of changes applied.
        func pass() throws -> (Double, Int) {
            var applied = 0
            let t = try Stopwatch.measure {
                let desired = desiredPeerState(nodes: nodes, local: local)
                let changes = peerChanges(current: try sync.current(vxlanIndex: local.vxlanIndex), desired: desired)
                let failures = sync.apply(changes)
                guard failures.isEmpty else {
                    throw ProcessError(command: ["bench overlay \(backend.rawValue) \(peers)"], reason: "\(failures)")
                }
                applied = changes.count
            }
            // Not timed: the kernel holds exactly the desired entries.
            let desired = desiredPeerState(nodes: nodes, local: local)
            let now = try sync.current(vxlanIndex: local.vxlanIndex)
            guard now.routes == desired.routes, now.fdb == desired.fdb, now.neighbours == desired.neighbours,
                  now.routes.count == peers else {
                throw ProcessError(command: ["bench overlay \(backend.rawValue) \(peers)"],
                                   reason: "kernel holds \(now.routes.count) routes, \(now.fdb.count) FDB, \(now.neighbours.count) neighbours")
            }
            return (t, applied)
        }

        let entries = backend == .vxlan ? 3 : 1
        let (full, fullChanges) = try pass()
        // One peer moves to a new node IP: host-gw replaces its route (delete + add); vxlan its FDB
        // entry and neighbour (the VTEP MAC follows the underlay address), the onlink route stays.
        let moved = peers / 2
        nodes[moved].nodeIPs = [IPAddress.v4(IPv4Address(172, 16, 250, UInt8(2 + run % 250)))]
        let (onePeer, oneChanges) = try pass()
        let (noChange, noChanges) = try pass()
        guard fullChanges == peers * entries, oneChanges == 2 * (backend == .vxlan ? 2 : 1), noChanges == 0 else {
            throw ProcessError(command: ["bench overlay \(backend.rawValue) \(peers)"],
                               reason: "unexpected change counts: full \(fullChanges), one peer \(oneChanges), none \(noChanges)")
        }
        return (full, onePeer, noChange)
    }

    // MARK: - Throughput

    /// Two nodes running keeld, pods from the plugin binaries: a server pod and a client on node1,
    /// a client on node2; iperf3 from each client to the server.
    func measureThroughput(backend: String) throws -> (sameNode: Double, crossNode: Double) {
        let cluster = try TestCluster(lab: lab, nodeCount: 2, label: "tp-\(backend)-")
        let overlay = try BenchOverlay(cluster: cluster, backend: backend)
        defer { overlay.stop() }
        try overlay.startAgents()
        let (server, serverIP) = try overlay.addPod(cluster.nodes[0], "server")
        let (sameNode, _) = try overlay.addPod(cluster.nodes[0], "client")
        let (otherNode, _) = try overlay.addPod(cluster.nodes[1], "client")
        try benchWait("peer routes") {
            try cluster.nodes.allSatisfy { try $0.namespace.route.routes(table: .main).contains { $0.proto == .keel } }
        }
        guard try TrafficProbe.ping(from: otherNode, to: serverIP) else {
            throw ProcessError(command: ["bench overlay \(backend)"], reason: "node2's pod cannot reach \(serverIP)")
        }
        let iperf = try NamespaceProcess.start(["iperf3", "-s", "-B", "\(serverIP)"], in: server.namespace)
        defer { iperf.stop() }
        try benchWait("iperf3 server listening") {
            guard iperf.isRunning else { throw ProcessError(command: iperf.command, reason: "exited: \(iperf.stderr)") }
            return try !server.check(["ss", "-Hltn", "sport = :5201"]).isEmpty
        }
        func client(_ pod: LabNamespace) throws -> Double {
            let r = try pod.exec(["iperf3", "-c", "\(serverIP)", "-t", "\(iperfSeconds)", "-J"])
            guard r.succeeded, let bps = receivedBitsPerSecond(r.stdout) else {
                throw ProcessError(command: ["iperf3 -c \(serverIP) in \(pod.name)"], reason: r.description)
            }
            return bps
        }
        return (try client(sameNode), try client(otherNode))
    }
}

/// `end.sum_received.bits_per_second` of `iperf3 -J` output, without a JSON library.
func receivedBitsPerSecond(_ json: String) -> Double? {
    guard let section = json.firstRange(of: "\"sum_received\""),
          let key = json[section.upperBound...].firstRange(of: "\"bits_per_second\":") else { return nil }
    let value = json[key.upperBound...].drop { $0 == " " || $0 == "\t" }.prefix { "0123456789.eE+-".contains($0) }
    return Double(value)
}

/// keeld on every node of a `TestCluster`, pods attached by the host-gw/vxlan plugin binaries found
/// next to keel-lab; manifests, node files and IPAM data in a temp folder removed by `stop()`.
final class BenchOverlay {
    let cluster: TestCluster
    let backend: String
    let directory: String
    let binaries = CNIRunner.keelPluginDirectory
    var agents: [BackgroundProcess] = []

    init(cluster: TestCluster, backend: String) throws {
        self.cluster = cluster
        self.backend = backend
        directory = "/tmp/keel-bench-overlay-\(getpid())-\(backend)"
        mkdir(directory, 0o755)
        try cluster.writeManifests(to: manifests)
        for tool in ["keeld", backend, "host-local"] where access("\(binaries)/\(tool)", X_OK) != 0 {
            throw ProcessError(command: ["bench overlay"], reason: "\(tool) not found in \(binaries) (build all products, or set KEEL_PLUGIN_DIR)")
        }
    }

    var manifests: String { "\(directory)/manifests" }
    func nodeFile(_ node: String) -> String { "\(directory)/\(node).env" }

    func startAgents() throws {
        for node in cluster.nodes {
            agents.append(try NamespaceProcess.start(
                ["\(binaries)/keeld", "--routes", "--backend", backend, "--manifests", manifests, "--node-name", node.name,
                 "--node-file", nodeFile(node.name), "--log-level", "warning"],
                in: node.namespace.namespace))
        }
        try benchWait("node files") { cluster.nodes.allSatisfy { access(nodeFile($0.name), R_OK) == 0 } }
    }

    func addPod(_ node: TestCluster.ClusterNode, _ name: String) throws -> (LabNamespace, IPAddress) {
        let pod = try cluster.lab.namespace("tp-\(backend)-\(node.name)-\(name)")
        let config = """
        {"cniVersion":"1.0.0","name":"keel","type":"\(backend)","nodeFile":"\(nodeFile(node.name))","dataDir":"\(directory)/ipam-\(node.name)"}
        """
        let r = try CNIRunner(node: node.namespace, path: [binaries]).add(backend, pod: pod, containerID: "\(node.name)-\(name)", config: config)
        guard r.succeeded, let start = r.stdout.firstRange(of: "\"address\":\""),
              let address = IPAddress(r.stdout[start.upperBound...].prefix { $0 != "/" }) else {
            throw ProcessError(command: ["\(backend) ADD"], reason: r.description)
        }
        return (pod, address)
    }

    /// Stops keeld by its handles and removes the temp folder. The namespaces go with the lab.
    func stop() {
        for a in agents { a.stop() }
        agents = []
        _ = try? NamespaceProcess.run(["rm", "-rf", directory])   // best effort: a temp folder of ours
    }
}

/// Polls `condition` every 50 ms for up to `timeout` seconds.
func benchWait(_ what: String, timeout: Double = 15, _ condition: () throws -> Bool) throws {
    let deadline = Stopwatch.now() + timeout
    while Stopwatch.now() < deadline {
        if try condition() { return }
        usleep(50_000)
    }
    throw ProcessError(command: ["wait"], reason: "timed out after \(Int(timeout)) s waiting for \(what)")
}
