import Foundation
import NetAddress
import Netlink
import NetnsHarness
import Testing

/// The test-side view of an `OverlayLab` (keeld per node, pods from the host-gw or vxlan plugin):
/// what the route controller may touch, read with iproute2.
final class OverlayCluster {
    let overlay: OverlayLab
    var cluster: TestCluster { overlay.cluster }
    var backend: String { overlay.backend }
    var manifests: String { overlay.manifests }
    var agents: [String: BackgroundProcess] { overlay.agents }

    init(lab: NetnsLab, backend: String, nodes: Int, mtu: UInt32 = 1500) throws {
        overlay = try OverlayLab(cluster: TestCluster(lab: lab, nodeCount: nodes, mtu: mtu), backend: backend)
    }

    func node(_ name: String) -> TestCluster.ClusterNode { cluster.nodes.first { $0.name == name }! }
    func startAgent(_ node: TestCluster.ClusterNode, logLevel: String = "debug") throws { try overlay.startAgent(node, logLevel: logLevel) }
    @discardableResult func stopAgent(_ node: TestCluster.ClusterNode) -> Int32? { overlay.stopAgent(node) }
    func startAgents() throws { try overlay.startAgents(logLevel: "debug") }
    func addPod(_ node: TestCluster.ClusterNode, _ name: String) throws -> (LabNamespace, IPAddress) { try overlay.addPod(node, name) }
    func keelRoutes(_ node: TestCluster.ClusterNode) throws -> [Route] { try overlay.peerRoutes(node) }
    func waitForPeers() throws { try overlay.waitForPeers() }
    func agentLog(_ node: String) -> String { overlay.agentLog(node) }

    /// What the route controller may touch on `node`, as iproute2 prints it: the whole main table,
    /// and for vxlan the device, its FDB and its permanent neighbours. Read with the tools (not the
    /// code under test), in kernel dump order, so a duplicate entry would show as a second line.
    func datapath(_ node: TestCluster.ClusterNode) throws -> [String] {
        var out = try node.namespace.check(["ip", "route", "show", "table", "main"]).split(separator: "\n").map { "route \($0)" }
        if backend == "vxlan" {
            out += try node.namespace.check(["ip", "-d", "link", "show", "dev", "keel.1"]).split(separator: "\n").map { "link \($0)" }
            out += try node.namespace.check(["bridge", "fdb", "show", "dev", "keel.1"]).split(separator: "\n").map { "fdb \($0)" }
            out += try node.namespace.check(["ip", "neigh", "show", "dev", "keel.1", "nud", "permanent"]).split(separator: "\n").map { "neigh \($0)" }
        }
        return out
    }

    /// The datapath lines that point at `peer`: its pod CIDR, its node IP, or its VTEP MAC.
    func entries(_ lines: [String], for peer: TestCluster.ClusterNode) -> [String] {
        let mac = VTEP.mac(underlay: peer.ip, vni: 1).description
        return lines.filter { l in
            l.contains(peer.podCIDR.description) || l.contains("\(peer.podCIDR.network) ") || l.contains("dst \(peer.ip) ")
                || l.contains("via \(peer.ip) ") || l.lowercased().contains(mac.lowercased())
        }
    }
}

/// Counters in the underlay namespace's bridge (the "switch" between the nodes): VXLAN packets
/// (UDP 8472) and plain pod-to-pod IPv4 packets, read back with `nft -j`.
struct UnderlayCounters {
    let underlay: LabNamespace
    static let table = "keel_test_underlay"

    init(_ underlay: LabNamespace, clusterCIDR: CIDR) throws {
        self.underlay = underlay
        let script = """
        table bridge \(Self.table) {
          chain forward {
            type filter hook forward priority 0; policy accept;
            udp dport 8472 counter comment "vxlan"
            ip saddr \(clusterCIDR) ip daddr \(clusterCIDR) counter comment "pod-ip"
          }
        }

        """
        let r = try underlay.exec(["nft", "-f", "-"], stdin: Array(script.utf8))
        guard r.succeeded else { throw ProcessError(command: ["nft -f - (underlay counters)"], reason: r.description) }
    }

    /// Packets counted per rule comment.
    func packets() throws -> [String: Int] {
        let json = try underlay.check(["nft", "-j", "list", "table", "bridge", Self.table])
        let root = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        var out: [String: Int] = [:]
        for item in root["nftables"] as! [[String: Any]] {
            guard let rule = item["rule"] as? [String: Any], let comment = rule["comment"] as? String,
                  let exprs = rule["expr"] as? [[String: Any]] else { continue }
            for e in exprs { if let c = e["counter"] as? [String: Any], let p = c["packets"] as? Int { out[comment] = p } }
        }
        return out
    }
}

func waitUntil(_ what: String, timeout: Double = 10, _ condition: () throws -> Bool) throws {
    try waitFor(what, timeout: timeout, condition)
}

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct CrossNodeTests {
    /// 3 nodes x 2 pods: ping and TCP between every pair. The underlay's bridge counts what crossed
    /// it: VXLAN packets (UDP 8472) for the vxlan run and none for host-gw, where the pod packets
    /// cross as they are (and none of them do for vxlan: they are all inside the tunnel).
    @Test(arguments: ["host-gw", "vxlan"])
    func everyPodReachesEveryOtherPodAcrossThreeNodes(backend: String) throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let c = try OverlayCluster(lab: lab, backend: backend, nodes: 3)
            let counters = try UnderlayCounters(c.cluster.underlay, clusterCIDR: c.cluster.clusterCIDR)
            try c.startAgents()
            var pods: [(LabNamespace, IPAddress)] = []
            for node in c.cluster.nodes {
                for p in ["a", "b"] { pods.append(try c.addPod(node, p)) }
            }
            // Each node has a route to each of the two peers' pod CIDRs.
            try c.waitForPeers()
            let servers = try pods.map { try BannerServer(in: $0.0, address: $0.1, port: 8080, banner: "pod \($0.1)") }
            defer { servers.forEach { $0.stop() } }
            #expect(try counters.packets() == ["vxlan": 0, "pod-ip": 0], "nothing crossed the underlay before the traffic")
            for (from, _) in pods {
                for (_, to) in pods {
                    #expect(try TrafficProbe.ping(from: from, to: to), "ping \(from.name) -> \(to) over \(backend)")
                    #expect(try TrafficProbe.tcpConnect(from: from, to: to, port: 8080).reply == "pod \(to)")
                }
            }
            let seen = try counters.packets()
            // 6 pods, 4 of the 6 targets of each on another node: 24 pings and 24 connects crossed.
            if backend == "vxlan" {
                #expect(seen["vxlan"]! >= 24 * 2, "VXLAN-encapsulated packets on the underlay: \(seen)")
                #expect(seen["pod-ip"] == 0, "no pod packet crossed the underlay unencapsulated: \(seen)")
                let mtu = try pods[0].0.route.link("eth0").mtu
                #expect(mtu == 1450, "pod MTU is the underlay's 1500 minus 50")
            } else {
                #expect(seen["vxlan"] == 0, "host-gw encapsulates nothing: \(seen)")
                #expect(seen["pod-ip"]! >= 24 * 2, "pod packets crossed the underlay as they are: \(seen)")
            }
        }
    }

    /// An underlay of 1400 bytes (not the default, so a hard-coded 1450 would fail): the pod MTU is
    /// 1350, a DF ping of exactly 1350 bytes crosses to a pod on another node, 1351 bytes do not.
    @Test func vxlanPodMTUIsUnderlayMinus50() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let underlayMTU: UInt32 = 1400
            let c = try OverlayCluster(lab: lab, backend: "vxlan", nodes: 2, mtu: underlayMTU)
            try c.startAgents()
            let (a, _) = try c.addPod(c.cluster.nodes[0], "a")
            let (_, bIP) = try c.addPod(c.cluster.nodes[1], "b")
            try c.waitForPeers()
            let podMTU = try a.route.link("eth0").mtu
            #expect(podMTU == underlayMTU - 50)
            #expect(try c.cluster.nodes[0].namespace.route.link("keel.1").mtu == underlayMTU - 50)
            // ICMP payload = MTU - 20 (IPv4) - 8 (ICMP); -M do sets DF and forbids local fragmentation.
            func dfPing(bytes: UInt32) throws -> ProcessResult {
                try a.exec(["ping", "-4", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", "\(bytes - 28)", "\(bIP)"])
            }
            let fits = try dfPing(bytes: podMTU)
            #expect(fits.succeeded, "a \(podMTU)-byte DF packet crosses the tunnel: \(fits)")
            let tooBig = try dfPing(bytes: podMTU + 1)
            #expect(!tooBig.succeeded, "a \(podMTU + 1)-byte DF packet does not: \(tooBig)")
            // Refused by the pod's own stack for its size (iputils: "local error: message too long, mtu=1350"),
            // not sent and lost somewhere.
            #expect((tooBig.stdout + tooBig.stderr).lowercased().contains("message too long, mtu=\(podMTU)"),
                    "refused for its size, not lost: \(tooBig)")
            // The outer packet of a full-size pod packet is exactly the underlay MTU: the node can send
            // it unfragmented with DF (1400 - 28 bytes of ICMP payload), and not one byte more.
            let node1 = c.cluster.nodes[0].namespace, node2IP = c.cluster.nodes[1].ip
            #expect(try node1.exec(["ping", "-4", "-n", "-q", "-c", "1", "-W", "2", "-M", "do", "-s", "\(underlayMTU - 28)", "\(node2IP)"]).succeeded)
            #expect(try !node1.exec(["ping", "-4", "-n", "-q", "-c", "1", "-W", "2", "-M", "do", "-s", "\(underlayMTU - 27)", "\(node2IP)"]).succeeded)
        }
    }

    /// Node removal and return, a keeld restart that changes nothing, and a route of the admin's.
    @Test(arguments: ["host-gw", "vxlan"])
    func removedNodeGoesAndComesBackAndRestartIsANoOp(backend: String) throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let c = try OverlayCluster(lab: lab, backend: backend, nodes: 3)
            try c.startAgents()
            let pods = try c.cluster.nodes.map { try c.addPod($0, "a") }
            try c.waitForPeers()
            let (node1, node2, node3) = (c.node("node1"), c.node("node2"), c.node("node3"))
            // An administrator's route (proto boot, as `ip route add` makes it): never Keel's to touch.
            let handRoute = "10.99.0.0/24 via 192.168.50.1 dev eth0"
            try node1.namespace.check(["ip", "route", "add"] + handRoute.split(separator: " ").map(String.init))
            let full = try [node1, node2].map { try c.datapath($0) }
            for (i, lines) in full.enumerated() {
                #expect(c.entries(lines, for: node3).count == (backend == "vxlan" ? 3 : 1),
                        "node\(i + 1) has node3's route\(backend == "vxlan" ? ", FDB entry and neighbour" : ""): \(lines)")
            }

            // Remove node3 from the manifests: node1 and node2 drop everything that points at it.
            let node3Manifest = "\(c.manifests)/node3.yaml"
            try FileManager.default.removeItem(atPath: node3Manifest)
            try waitUntil("node3's entries gone on node1 and node2") {
                try [node1, node2].allSatisfy { c.entries(try c.datapath($0), for: node3).isEmpty }
            }
            for (i, n) in [node1, node2].enumerated() {
                let now = try c.datapath(n)
                // Only node3's lines went: what points at the other peer and everything else stayed.
                #expect(now == full[i].filter { c.entries([$0], for: node3).isEmpty }, "node\(i + 1): \(now)")
            }
            #expect(try c.datapath(node1).contains { $0.hasPrefix("route \(handRoute)") }, "the hand-made route survives a peer removal")

            // Add it back: the same entries as before, and node3's pod is reachable again both ways.
            try writeFile(node3Manifest, node3.manifest)
            try waitUntil("node3's entries back") { try c.datapath(node1) == full[0] && c.datapath(node2) == full[1] }
            let server = try BannerServer(in: pods[2].0, address: pods[2].1, port: 8080, banner: "node3 pod")
            defer { server.stop() }
            for (from, _) in pods.prefix(2) {
                #expect(try TrafficProbe.ping(from: from, to: pods[2].1), "\(from.name) -> node3's pod after re-add")
                #expect(try TrafficProbe.tcpConnect(from: from, to: pods[2].1, port: 8080).reply == "node3 pod")
                #expect(try TrafficProbe.ping(from: pods[2].0, to: c.podIP(of: from, in: pods)), "node3's pod -> \(from.name)")
            }

            // Restart keeld on node1 with nothing changed: same datapath line for line (no duplicate,
            // the device not recreated), and the new process logs that its pass had nothing to do.
            let before = try c.datapath(node1)
            #expect(c.stopAgent(node1) == 0, "keeld exits cleanly on SIGTERM")
            try c.startAgent(node1, logLevel: "trace")
            try waitUntil("restarted keeld found the peers in sync") { c.agentLog("node1").contains("peers in sync") }
            let log = c.agentLog("node1")
            #expect(try c.datapath(node1) == before)
            #expect(!log.contains("peer entries synced"), "the first pass after the restart applied nothing:\n\(log)")
            #expect(!log.contains("node file written") && !log.contains("VTEP MAC published"), "nothing rewritten:\n\(log)")
            #expect(try c.datapath(node1).contains { $0.hasPrefix("route \(handRoute)") }, "the hand-made route survives a restart")
            #expect(try TrafficProbe.ping(from: pods[0].0, to: pods[2].1), "still reachable after the restart")
        }
    }

    /// Three bad Node manifests appear next to the good ones: each is logged with its name and field
    /// and skipped, by the running agents and by one started afterwards; the good nodes keep working.
    @Test func malformedNodeManifestsAreLoggedAndSkipped() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let c = try OverlayCluster(lab: lab, backend: "vxlan", nodes: 3)
            try c.startAgents()
            let pods = try c.cluster.nodes.map { try c.addPod($0, "a") }
            try c.waitForPeers()
            let (node1, node2) = (c.node("node1"), c.node("node2"))
            let before = try c.cluster.nodes.map { try c.datapath($0) }

            func node(_ name: String, podCIDR: String, addresses: String) -> String {
                "apiVersion: v1\nkind: Node\nmetadata:\n  name: \(name)\nspec:\n  podCIDR: \(podCIDR)\nstatus:\n\(addresses)\n"
            }
            // node4: bad CIDR; node5: no InternalIP; node6: node2's pod CIDR (node2.yaml sorts first and keeps it).
            try writeFile("\(c.manifests)/node4.yaml", node("node4", podCIDR: "10.244.300.0/24",
                                                            addresses: "  addresses:\n  - type: InternalIP\n    address: 192.168.50.14"))
            try writeFile("\(c.manifests)/node5.yaml", node("node5", podCIDR: "10.244.5.0/24",
                                                            addresses: "  addresses:\n  - type: Hostname\n    address: node5"))
            try writeFile("\(c.manifests)/node6.yaml", node("node6", podCIDR: "\(node2.podCIDR)",
                                                            addresses: "  addresses:\n  - type: InternalIP\n    address: 192.168.50.16"))
            let expected = [("node4", "spec.podCIDR", "is not a CIDR"), ("node5", "status.addresses", "no InternalIP"),
                            ("node6", "spec.podCIDR", "overlaps \(node2.podCIDR) of Node \"node2\"")]
            func logged(_ log: String, _ e: (String, String, String)) -> Bool {
                log.split(separator: "\n").contains { line in
                    line.contains("skipped") && line.contains("object.name=\(e.0)") && line.contains("field=\(e.1)") && line.contains(e.2)
                }
            }
            try waitUntil("every agent logged the three problems") {
                c.cluster.nodes.allSatisfy { n in expected.allSatisfy { logged(c.agentLog(n.name), $0) } }
            }
            // A resync pass (1 s) later nothing moved: node2's CIDR still goes to node2, no node4-6 entry.
            usleep(1_500_000)
            #expect(try c.cluster.nodes.map { try c.datapath($0) } == before)
            #expect(try c.datapath(node1).contains { $0.contains("route \(node2.podCIDR) via \(node2.podCIDR.network) dev keel.1 proto 75 onlink") })
            for (from, _) in pods {
                for (_, to) in pods { #expect(try TrafficProbe.ping(from: from, to: to), "\(from.name) -> \(to) with bad manifests around") }
            }

            // A keeld that starts with the bad files present reports them too and programs the same.
            c.stopAgent(node1)
            try c.startAgent(node1)
            try waitUntil("restarted agent logged the problems") { expected.allSatisfy { logged(c.agentLog("node1"), $0) } }
            usleep(1_500_000)
            #expect(try c.datapath(node1) == before[0])
            #expect(c.agents["node1"]!.isRunning)
        }
    }
}

extension OverlayCluster {
    func podIP(of pod: LabNamespace, in pods: [(LabNamespace, IPAddress)]) -> IPAddress { pods.first { $0.0 === pod }!.1 }
}
