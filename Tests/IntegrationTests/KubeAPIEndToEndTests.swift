import Foundation
import Glibc
import NFTables
import NetAddress
import Netlink
import NetnsHarness
import Testing

// keeld against a Kubernetes API: a FakeKubeAPI listening in the test cluster's underlay namespace on
// the nodes' gateway (192.168.50.1) over HTTPS with a CA made for the run and a bearer token, a
// kubeconfig carrying that CA, and one `keeld --kubeconfig … --routes --proxy --policy` per node.
// Everything keeld learns comes from LIST + WATCH; what it publishes about its node comes back as
// PATCHes of its own Node.

private let apiPort: UInt16 = 16443
private let serviceIP = IPAddress("10.96.0.10")!
private let apiToken = "lab-token"

/// A kubeconfig for keeld: the API on the underlay gateway, the test CA as
/// `certificate-authority-data`, the lab's bearer token.
private func writeKubeconfig(_ path: String, server: String, ca: TestCertificateAuthority) throws {
    try writeFile(path, """
        apiVersion: v1
        kind: Config
        current-context: lab
        clusters:
        - name: lab
          cluster:
            server: \(server)
            certificate-authority-data: \(Data(ca.certificatePEM.utf8).base64EncodedString())
        users:
        - name: keeld
          user:
            token: \(apiToken)
        contexts:
        - name: lab
          context:
            cluster: lab
            user: keeld

        """)
}

/// The cluster objects as the API server would return them (JSON).
private enum APIObjects {
    static func node(_ n: TestCluster.ClusterNode) -> String {
        """
        {"kind":"Node","apiVersion":"v1","metadata":{"name":"\(n.name)"},"spec":{"podCIDR":"\(n.podCIDR)","podCIDRs":["\(n.podCIDR)"]},
         "status":{"addresses":[{"type":"InternalIP","address":"\(n.ip)"},{"type":"Hostname","address":"\(n.name)"}]}}
        """
    }
    static let namespace = """
        {"kind":"Namespace","apiVersion":"v1","metadata":{"name":"default","labels":{"kubernetes.io/metadata.name":"default"}}}
        """
    static func pod(_ name: String, node: String, ip: IPAddress, labels: [String: String]) -> String {
        let l = labels.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
        return """
        {"kind":"Pod","apiVersion":"v1","metadata":{"name":"\(name)","namespace":"default","labels":{\(l)}},
         "spec":{"nodeName":"\(node)","containers":[{"name":"main","image":"keel.test/banner","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}]}]},
         "status":{"phase":"Running","podIP":"\(ip)","podIPs":[{"ip":"\(ip)"}]}}
        """
    }
    static let service = """
        {"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"default"},
         "spec":{"type":"ClusterIP","clusterIP":"\(serviceIP)","clusterIPs":["\(serviceIP)"],"ports":[{"name":"http","port":80,"targetPort":8080,"protocol":"TCP"}]}}
        """
    static func slice(backend: IPAddress, node: String) -> String {
        """
        {"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"web-1","namespace":"default","labels":{"kubernetes.io/service-name":"web"}},
         "addressType":"IPv4","endpoints":[{"addresses":["\(backend)"],"conditions":{"ready":true},"nodeName":"\(node)"}],
         "ports":[{"name":"http","port":8080,"protocol":"TCP"}]}
        """
    }
    /// Ingress to app=web only from pods labelled role=allowed.
    static let policy = """
        {"kind":"NetworkPolicy","apiVersion":"networking.k8s.io/v1","metadata":{"name":"web-from-allowed","namespace":"default"},
         "spec":{"podSelector":{"matchLabels":{"app":"web"}},"policyTypes":["Ingress"],
                 "ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"allowed"}}}],"ports":[{"protocol":"TCP","port":8080}]}]}}
        """
}

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct KubeAPIEndToEndTests {
    @Test(.timeLimit(.minutes(2)))
    func keeldFollowsTheAPIServer() throws {
        try NetnsLab.with(prefix: "keel-kapi") { lab in
            let cluster = try TestCluster(lab: lab, nodeCount: 3)
            let overlay = try OverlayLab(cluster: cluster, backend: "vxlan")   // its folder: node files, IPAM, kubeconfig
            let kubeconfig = "\(overlay.directory)/kubeconfig"
            let ca = try TestCertificateAuthority()
            try writeKubeconfig(kubeconfig, server: "https://\(cluster.gateway):\(apiPort)", ca: ca)
            var agents: [String: BackgroundProcess] = [:]
            defer { for a in agents.values { a.stop() } }
            func log(_ node: String) -> String { agents[node]?.stderr ?? "" }
            for node in cluster.nodes {
                agents[node.name] = try NamespaceProcess.start(
                    ["\(CNIRunner.keelPluginDirectory)/keeld", "--kubeconfig", kubeconfig, "--routes", "--proxy", "--policy",
                     "--backend", "vxlan", "--node-name", node.name, "--node-file", overlay.nodeFile(node.name),
                     "--resync-seconds", "1", "--log-level", "debug"],
                    in: node.namespace.namespace)
            }

            // 1. The API server is down (connections refused; the HTTP client keeps reconnecting with
            // backoff): keeld keeps running and programs nothing.
            usleep(3_000_000)
            for node in cluster.nodes {
                #expect(agents[node.name]?.isRunning == true, "keeld on \(node.name) keeps running without the API server")
                #expect(try overlay.peerRoutes(node).isEmpty)
                #expect(access(overlay.nodeFile(node.name), F_OK) != 0, "no node file before the Node is known")
            }

            // 2. The API server comes up with the nodes: keeld converges.
            let api = try FakeKubeAPI(in: cluster.underlay, address: cluster.gateway, port: apiPort,
                                      certificateAuthority: ca, acceptedTokens: [apiToken])
            defer { api.stop() }
            try api.apply(APIObjects.namespace)
            for node in cluster.nodes { try api.apply(APIObjects.node(node)) }
            try waitFor("node files", timeout: 15) { cluster.nodes.allSatisfy { access(overlay.nodeFile($0.name), R_OK) == 0 } }
            try overlay.waitForPeers(timeout: 15)
            #expect(api.requests.allSatisfy { $0.headers["authorization"] == "Bearer \(apiToken)" && $0.responseCode != 401 })

            // keeld patched its own Node: the VTEP MAC annotation and NetworkUnavailable=False.
            try waitFor("VTEP MAC and condition patched", timeout: 10) {
                cluster.nodes.allSatisfy { n in
                    let node = api.object(.node, name: n.name)
                    let annotations = (node?["metadata"] as? [String: Any])?["annotations"] as? [String: Any]
                    let conditions = (node?["status"] as? [String: Any])?["conditions"] as? [[String: Any]] ?? []
                    return annotations?["keel.dev/vtep-mac"] as? String == VTEP.mac(underlay: n.ip, vni: 1).description
                        && conditions.contains { $0["type"] as? String == "NetworkUnavailable" && $0["status"] as? String == "False" }
                }
            }
            let patches = api.requests.filter { $0.method == "PATCH" }
            for node in cluster.nodes {
                #expect(patches.contains { $0.path == "/api/v1/nodes/\(node.name)" && $0.headers["content-type"] == "application/merge-patch+json" })
                #expect(patches.contains { $0.path == "/api/v1/nodes/\(node.name)/status"
                    && $0.headers["content-type"] == "application/strategic-merge-patch+json" })
            }
            // Every PATCH is of the sender's own Node: no keeld writes anything else.
            #expect(patches.allSatisfy { $0.path.hasPrefix("/api/v1/nodes/") })

            // 3. Pods: a backend on node2, a client on every node (the one on node1 labelled role=allowed).
            let (webNS, webIP) = try overlay.addPod(cluster.nodes[1], "web")
            let web = try BannerServer(in: webNS, address: webIP, port: 8080, banner: "web")
            defer { web.stop() }
            var clients: [(LabNamespace, IPAddress)] = []
            for (i, node) in cluster.nodes.enumerated() {
                let client = try overlay.addPod(node, "c")
                clients.append(client)
                try api.apply(APIObjects.pod("c\(i + 1)", node: node.name, ip: client.1, labels: i == 0 ? ["role": "allowed"] : ["role": "other"]))
            }
            try api.apply(APIObjects.pod("web", node: cluster.nodes[1].name, ip: webIP, labels: ["app": "web"]))

            // A Service + EndpointSlice through the API: reachable by its cluster IP from a pod on every node.
            try api.apply(APIObjects.service)
            try api.apply(APIObjects.slice(backend: webIP, node: cluster.nodes[1].name))
            for (i, (ns, _)) in clients.enumerated() {
                try waitFor("service from the pod on node\(i + 1)", timeout: 10) {
                    try TrafficProbe.tcpConnect(from: ns, to: serviceIP, port: 80, timeoutMilliseconds: 500).reply == "web"
                }
            }

            // A ServiceCIDR through the API: every node's proxy takes its range (dropping its unused addresses).
            try api.apply(#"{"kind":"ServiceCIDR","apiVersion":"networking.k8s.io/v1","metadata":{"name":"kubernetes"},"spec":{"cidrs":["10.96.0.0/16"]}}"#)
            for node in cluster.nodes {
                let nft = try node.namespace.run { try NFTablesSocket() }
                try waitFor("service-cidrs on \(node.name)", timeout: 10) {
                    try nft.table(named: "keel-proxy", family: .ip)?.sets.first { $0.name == "service-cidrs" }?.elements
                        == [SetElement(prefix: CIDR("10.96.0.0/16")!)]
                }
            }

            // 4. A NetworkPolicy through the API: only role=allowed reaches app=web.
            try api.apply(APIObjects.policy)
            try waitFor("policy denies the pod on node3", timeout: 10) {
                try TrafficProbe.tcpConnect(from: clients[2].0, to: serviceIP, port: 80, timeoutMilliseconds: 300).reply == nil
            }
            #expect(try TrafficProbe.tcpConnect(from: clients[0].0, to: serviceIP, port: 80).reply == "web", "role=allowed on node1")
            #expect(try TrafficProbe.tcpConnect(from: clients[0].0, to: webIP, port: 8080).reply == "web", "role=allowed, pod IP")
            #expect(try TrafficProbe.tcpConnect(from: clients[1].0, to: webIP, port: 8080, timeoutMilliseconds: 500).reply == nil,
                    "role=other on the same node")

            // 5. /metrics on every node carries the API source's series.
            for node in cluster.nodes {
                let metrics = try TrafficProbe.httpGet(from: node.namespace, to: node.ip, port: 10249, path: "/metrics").reply ?? ""
                #expect(metrics.contains("keel_api_events_total{kind=\"Service\"}"), "\(metrics.prefix(400))")
                #expect(metrics.contains("keel_api_seconds_since_last_event{kind=\"Node\"}"))
                #expect(metrics.contains("keel_api_watch_restarts_total{kind=\"NetworkPolicy\"}"))
                #expect(metrics.contains("keel_api_relists_total{kind=\"EndpointSlice\"}"))
                #expect(metrics.contains("keel_proxy_syncs_total"))
            }

            // 6. Deleting node3 through the API removes its routes on node1 and node2.
            let gone = cluster.nodes[2]
            api.delete(.node, name: gone.name)
            for node in cluster.nodes.prefix(2) {
                try waitFor("route to \(gone.name) gone on \(node.name)", timeout: 10) {
                    try overlay.peerRoutes(node).allSatisfy { $0.destination != gone.podCIDR }
                }
                #expect(try overlay.peerRoutes(node).count == 1)
            }
            for node in cluster.nodes { #expect(agents[node.name]?.isRunning == true, "\(log(node.name).suffix(2000))") }
        }
    }

    /// keeld killed (SIGKILL: no cleanup at all) and started again under the API source: an
    /// established connection through the Service keeps working across it, the restarted keeld lists
    /// every kind afresh, and the ruleset afterwards is the one before (no rule or element twice).
    @Test(.timeLimit(.minutes(1)))
    func killingKeeldLosesNoConnectionAndCreatesNoDuplicates() throws {
        try NetnsLab.with(prefix: "keel-kapk") { lab in
            let cluster = try TestCluster(lab: lab, nodeCount: 2)
            let overlay = try OverlayLab(cluster: cluster, backend: "host-gw")
            let kubeconfig = "\(overlay.directory)/kubeconfig"
            let ca = try TestCertificateAuthority()
            try writeKubeconfig(kubeconfig, server: "https://\(cluster.gateway):\(apiPort)", ca: ca)
            let api = try FakeKubeAPI(in: cluster.underlay, address: cluster.gateway, port: apiPort,
                                      certificateAuthority: ca, acceptedTokens: [apiToken])
            defer { api.stop() }
            try api.apply(APIObjects.namespace)
            for node in cluster.nodes { try api.apply(APIObjects.node(node)) }

            var agents: [String: BackgroundProcess] = [:]
            defer { for a in agents.values { a.stop() } }
            func start(_ node: TestCluster.ClusterNode) throws {
                agents[node.name] = try NamespaceProcess.start(
                    ["\(CNIRunner.keelPluginDirectory)/keeld", "--kubeconfig", kubeconfig, "--routes", "--proxy", "--policy",
                     "--backend", "host-gw", "--node-name", node.name, "--node-file", overlay.nodeFile(node.name),
                     "--resync-seconds", "1", "--log-level", "debug"],
                    in: node.namespace.namespace)
            }
            for node in cluster.nodes { try start(node) }
            try waitFor("node files", timeout: 15) { cluster.nodes.allSatisfy { access(overlay.nodeFile($0.name), R_OK) == 0 } }
            try overlay.waitForPeers(timeout: 15)

            // A client on node1, the Service's backend on node2 (a listener the test holds).
            let (node1, node2) = (cluster.nodes[0], cluster.nodes[1])
            let (clientNS, clientIP) = try overlay.addPod(node1, "c")
            let (webNS, webIP) = try overlay.addPod(node2, "web")
            try api.apply(APIObjects.pod("c", node: node1.name, ip: clientIP, labels: ["role": "allowed"]))
            try api.apply(APIObjects.pod("web", node: node2.name, ip: webIP, labels: ["app": "web"]))
            try api.apply(APIObjects.service)
            try api.apply(APIObjects.slice(backend: webIP, node: node2.name))
            try api.apply(APIObjects.policy)
            let listener = try HeldConnection.listen(in: webNS, address: webIP, port: 8080)
            defer { close(listener) }
            var held: HeldConnection?
            try waitFor("a connection through the Service", timeout: 15) {
                held = HeldConnection.open(from: clientNS, to: serviceIP, port: 80, listener: listener)
                return held != nil
            }
            let connection = try #require(held)
            defer { connection.close() }
            #expect(connection.exchange("before"), "the connection carries data both ways")
            try waitFor("keeld synced on every node", timeout: 10) {
                cluster.nodes.allSatisfy { n in ["proxy rules synced", "policy rules synced"].allSatisfy { agents[n.name]?.stderr.contains($0) == true } }
            }
            usleep(1_200_000)   // a resync (every second) had the chance to change anything still pending
            let before = try cluster.nodes.map { try rulesetLines($0) }
            #expect(before.allSatisfy { $0.contains { $0.contains("table ip keel-proxy") } }, "\(before)")

            // SIGKILL on every node: keeld leaves the kernel as it is, and the connection keeps working.
            for node in cluster.nodes { #expect(agents[node.name]?.stop(signal: SIGKILL) == 128 + SIGKILL) }
            #expect(connection.exchange("while-down"), "the established connection works with no keeld running")

            let restartedAt = ContinuousClock.now
            for node in cluster.nodes { try start(node) }
            try waitFor("first syncs after the restart", timeout: 15) {
                cluster.nodes.allSatisfy { n in ["proxy rules synced", "policy rules synced"].allSatisfy { agents[n.name]?.stderr.contains($0) == true } }
            }
            usleep(1_200_000)   // and a resync after that
            let after = try cluster.nodes.map { try rulesetLines($0) }
            for (i, node) in cluster.nodes.enumerated() {
                #expect(after[i] == before[i], "\(node.name): the ruleset after the restart differs: \(lineDifference(before[i], after[i]))")
            }
            #expect(connection.exchange("after"), "the established connection survived the restart")
            #expect(HeldConnection.open(from: clientNS, to: serviceIP, port: 80, listener: listener).map { c in
                defer { c.close() }
                return c.exchange("new")
            } == true, "a new connection through the Service after the restart")

            // The restarted keelds listed every kind afresh (two nodes: two LISTs each), then watched.
            let relisted = api.requests.filter { $0.at > restartedAt && $0.method == "GET" && !$0.isWatch }
            for path in ["/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices", "/api/v1/nodes",
                         "/apis/networking.k8s.io/v1/networkpolicies", "/api/v1/pods", "/api/v1/namespaces"] {
                #expect(relisted.filter { $0.path == path && $0.responseCode == 200 }.count == cluster.nodes.count, "LIST \(path)")
            }
            for node in cluster.nodes { #expect(agents[node.name]?.isRunning == true, "\(agents[node.name]?.stderr.suffix(2000) ?? "")") }
        }
    }
}

/// `nft --stateless list ruleset` of `node`, one line per statement, sorted: a rule or element added twice shows
/// as an extra line, while the kernel's order of set elements does not count.
private func rulesetLines(_ node: TestCluster.ClusterNode) throws -> [String] {
    let text = try node.namespace.check(["nft", "--stateless", "list", "ruleset"])   // no counter values
    return text.split(separator: "\n").flatMap { line in
        // Set elements print as one comma-separated list; split it so each element is a line.
        line.split(separator: ",", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: .whitespaces) }
    }.filter { !$0.isEmpty }.sorted()
}

/// The lines only one side has (counted: a line twice on one side and once on the other shows).
private func lineDifference(_ before: [String], _ after: [String]) -> String {
    var count: [String: Int] = [:]
    for line in after { count[line, default: 0] += 1 }
    for line in before { count[line, default: 0] -= 1 }
    let added = count.filter { $0.value > 0 }.map { "+\($0.value) \($0.key)" }
    let removed = count.filter { $0.value < 0 }.map { "\($0.value) \($0.key)" }
    return (added + removed).sorted().joined(separator: "\n")
}

