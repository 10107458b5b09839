import Foundation
import Glibc
import NFTables
import NetAddress
import NetnsHarness
import PolicyEnforcer
import ServiceProxy

/// `bench cluster`: keeld against an API server at cluster scale. FakeKubeAPI serves `services`
/// Services with `endpointsPerService` endpoints each (one EndpointSlice per Service), `pods` Pods and
/// `policies` NetworkPolicies over HTTPS in the underlay namespace of a one-node lab cluster; one release
/// keeld (`--kubeconfig --proxy --policy`) runs in the node namespace. Measured:
///
/// - first sync: keeld's start → every kind listed (paginated), decoded and synced, as the kernel
///   shows it (the proxy table holds every service address and endpoint, the policy table every
///   isolated local pod);
/// - keeld's resident memory (VmRSS, VmHWM) at that size;
/// - event-to-kernel latency of one EndpointSlice change: a Service's slice emptied and refilled in turns,
///   from the API server recording the change to its `no-endpoint-services` element appearing or
///   disappearing in the kernel (a small map, so that each poll is cheap).
struct ClusterBench {
    let lab: NetnsLab
    let services: Int
    let endpointsPerService: Int
    let pods: Int
    let policies: Int
    let changes: Int

    static let namespaceCount = 10
    static let appCount = 50
    /// Pods on the benchmarked node (the rest sit on nodes that do not run keeld): what the policy
    /// enforcer programs. At most its /24 holds.
    static let localPods = 200

    func run() throws {
        let cluster = try TestCluster(lab: lab, nodeCount: 1, label: "c")
        let node = cluster.nodes[0]
        let directory = "/tmp/keel-bench-cluster-\(getpid())"
        mkdir(directory, 0o700)
        defer { _ = try? NamespaceProcess.run(["rm", "-rf", directory]) }   // best effort: a temp folder

        print("==> \(services) Services, \(services * endpointsPerService) endpoints, \(pods) Pods, \(policies) NetworkPolicies")
        let ca = try TestCertificateAuthority()
        let api = try FakeKubeAPI(in: cluster.underlay, address: cluster.gateway, port: 6443, certificateAuthority: ca,
                                  acceptedTokens: ["bench-token"])
        defer { api.stop() }
        let objects = objectDocuments(node: node)
        let loadStart = ContinuousClock.now
        try api.apply(contentsOf: objects)
        print("    API server loaded \(objects.count) objects in \(seconds(ContinuousClock.now - loadStart))")

        let kubeconfig = "\(directory)/kubeconfig"
        try writeFile(kubeconfig, """
            apiVersion: v1
            kind: Config
            current-context: bench
            clusters:
            - {name: bench, cluster: {server: "https://\(cluster.gateway):6443", certificate-authority: "\(ca.certificatePath)"}}
            users:
            - {name: keeld, user: {token: bench-token}}
            contexts:
            - {name: bench, context: {cluster: bench, user: keeld}}

            """)
        let nft = try node.namespace.run { try NFTablesSocket() }
        let keeldPath = Self.keeldBinary()
        let started = ContinuousClock.now
        let keeld = try NamespaceProcess.start(
            [keeldPath, "--kubeconfig", kubeconfig, "--proxy", "--policy", "--node-name", node.name,
             "--resync-seconds", "3600", "--log-level", "info"],
            in: node.namespace.namespace)
        defer { keeld.stop() }

        // First sync: each controller applies its whole table in one batch once its kinds are listed,
        // so the first read that has every element is the moment that sync landed.
        var proxyAt: ContinuousClock.Instant?, policyAt: ContinuousClock.Instant?
        let expectedIsolated = (0..<Self.localPods).filter(isolated).count
        while proxyAt == nil || policyAt == nil {
            guard keeld.isRunning else { throw ProcessError(command: [keeldPath], reason: "keeld exited:\n\(keeld.stderr.suffix(3000))") }
            guard ContinuousClock.now - started < .seconds(300) else {
                throw ProcessError(command: [keeldPath], reason: "no complete sync within 300 s:\n\(keeld.stderr.suffix(3000))")
            }
            // Listing the tables is cheap; then only the one set is read. (Reading the whole table
            // here dumped its 200K elements on every poll: the poll took seconds, competed with keeld
            // for the CPU and stamped the sync late by its own duration.)
            let tables = Set(try nft.tables().map(\.name))
            // (A table can exist before its sets: nil until the set is there.)
            if proxyAt == nil, tables.contains("keel-proxy"), (try? nft.elements(of: Self.serviceIPs))?.count == services {
                proxyAt = .now
            }
            if policyAt == nil, tables.contains("keel-policy"), (try? nft.elements(of: Self.ingressPods))?.count == expectedIsolated {
                policyAt = .now
            }
            usleep(20_000)
        }
        let firstSync = max(proxyAt!, policyAt!) - started
        let proxyTable = try nft.table(named: "keel-proxy", family: .ip)
        let endpointElements = try proxyTable?.sets.first { $0.name == "endpoints" }.map { try nft.elements(of: $0).count } ?? 0
        let (rss, peak) = Self.memory(of: keeld.pid)
        print("    first sync \(seconds(firstSync)) (proxy \(seconds(proxyAt! - started)), policy \(seconds(policyAt! - started))); "
              + "endpoints map \(endpointElements) elements; VmRSS \(rss / 1024) MiB, VmHWM \(peak / 1024) MiB")
        let lists = api.requests.filter { !$0.isWatch && $0.method == "GET" }
        let listed = lists.map(\.at).max().map { $0 - started }
        print("    \(lists.count) LIST pages, the last one asked for at \(listed.map(seconds) ?? "-") (the rest of the first sync is "
              + "decoding, the desired state and the kernel batch); \(api.requests.filter(\.isWatch).count) watches")

        // One EndpointSlice change at a time: emptied (the service appears in no-endpoint-services),
        // then refilled (it leaves it).
        guard let noEndpoints = try set("no-endpoint-services", table: "keel-proxy", nft) else {
            throw ProcessError(command: ["nft"], reason: "keel-proxy has no no-endpoint-services map")
        }
        var latencies: [Double] = []
        var timedOut = 0
        for k in 0..<changes {
            let i = (k / 2 * 7919) % services   // spread over the services, each emptied then refilled
            let emptied = k % 2 == 0
            let vip = Self.vip(i).description
            let document = Self.slice(i, endpoints: emptied ? 0 : endpointsPerService)
            let changed = ContinuousClock.now   // before the API server records it: its parse counts too
            try api.apply(document)
            var seen = false
            while ContinuousClock.now - changed < .seconds(5) {
                let present = try nft.elements(of: noEndpoints).contains { $0.description.hasPrefix(vip + " ") }
                if present == emptied { seen = true; break }
                usleep(300)   // two cores: leave keeld the CPU it needs between polls
            }
            if seen { latencies.append((ContinuousClock.now - changed).seconds) } else { timedOut += 1 }
        }
        let (rssAfter, peakAfter) = Self.memory(of: keeld.pid)
        guard keeld.isRunning else { throw ProcessError(command: [keeldPath], reason: "keeld exited:\n\(keeld.stderr.suffix(3000))") }

        let p50 = latencies.isEmpty ? .nan : percentile(latencies, 0.5), p99 = latencies.isEmpty ? .nan : percentile(latencies, 0.99)
        func ms(_ s: Double) -> String { format2(s * 1000) + " ms" }
        var out = "\n\(pad("measure", 52)) \(pad("measured", 22)) goal\n" + String(repeating: "-", count: 90) + "\n"
        out += "\(pad("first sync (start → everything in the kernel)", 52)) \(pad(seconds(firstSync), 22)) ≤ 5 s\n"
        out += "\(pad("  of which: until the last LIST page was asked for", 52)) \(pad(listed.map(seconds) ?? "-", 22))\n"
        out += "\(pad("one EndpointSlice change → kernel, p50", 52)) \(pad(ms(p50), 22)) ≤ 50 ms\n"
        out += "\(pad("one EndpointSlice change → kernel, p99", 52)) \(pad(ms(p99), 22)) ≤ 50 ms\n"
        out += "\(pad("keeld VmRSS after first sync", 52)) \(pad("\(rss / 1024) MiB", 22)) ≤ 300 MiB\n"
        out += "\(pad("keeld VmRSS / VmHWM after \(changes) changes", 52)) \(pad("\(rssAfter / 1024) / \(peakAfter / 1024) MiB", 22))\n"
        out += "\(latencies.count) changes measured\(timedOut > 0 ? ", \(timedOut) not seen within 5 s" : ""); "
            + "\(services) Services, \(services * endpointsPerService) endpoints, \(pods) Pods (\(Self.localPods) on this node), "
            + "\(policies) NetworkPolicies\n"
        print(out)
    }

    /// The keeld built with this keel-lab (same folder), else the one of the plugin folder.
    static func keeldBinary() -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        let sibling = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("keeld").path
        return access(sibling, X_OK) == 0 ? sibling : "\(CNIRunner.keelPluginDirectory)/keeld"
    }

    /// The sets the first-sync poll counts, as their layouts define them (no table read needed).
    static let serviceIPs = ServiceRuleset.sets.first { $0.name == "service-ips" }!
    static let ingressPods = PolicyRuleset.ruleset([]).sets.first { $0.name == "ingress-pods" }!

    private func set(_ name: String, table: String, _ nft: NFTablesSocket) throws -> NFTSet? {
        try nft.table(named: table, family: .ip)?.sets.first { $0.name == name }
    }

    private func seconds(_ d: Duration) -> String { format2(d.seconds) + " s" }

    /// VmRSS and VmHWM of `pid` in KiB.
    static func memory(of pid: pid_t) -> (rss: Int, peak: Int) {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        func field(_ name: String) -> Int {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    // MARK: - Objects (API JSON)

    /// 10.96.0.0/12 from 10.96.0.1 on.
    static func vip(_ i: Int) -> IPAddress { .v4(IPv4Address(0x0A60_0000 + UInt32(i) + 1)) }
    /// Endpoint addresses in 10.128.0.0/9, off the node's pod CIDR.
    static func endpoint(_ i: Int, _ j: Int, of perService: Int) -> IPAddress {
        .v4(IPv4Address(0x0A80_0000 + UInt32(i * perService + j) + 1))
    }
    static func namespace(_ i: Int) -> String { "ns-\(i % namespaceCount)" }

    static func service(_ i: Int) -> String {
        """
        {"kind":"Service","apiVersion":"v1","metadata":{"name":"svc-\(i)","namespace":"\(namespace(i))"},\
        "spec":{"type":"ClusterIP","clusterIP":"\(vip(i))","clusterIPs":["\(vip(i))"],\
        "ports":[{"name":"http","port":80,"targetPort":8080,"protocol":"TCP"}]}}
        """
    }

    func sliceDocument(_ i: Int) -> String { Self.slice(i, endpoints: endpointsPerService, perService: endpointsPerService) }

    static func slice(_ i: Int, endpoints: Int, perService: Int? = nil) -> String {
        let per = perService ?? endpoints
        let list = (0..<endpoints).map { j in
            "{\"addresses\":[\"\(endpoint(i, j, of: max(per, 1)))\"],\"conditions\":{\"ready\":true},\"nodeName\":\"node-\(j % 20)\"}"
        }
        return """
            {"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"svc-\(i)-1","namespace":"\(namespace(i))",\
            "labels":{"kubernetes.io/service-name":"svc-\(i)"}},"addressType":"IPv4","endpoints":[\(list.joined(separator: ","))],\
            "ports":[{"name":"http","port":8080,"protocol":"TCP"}]}
            """
    }

    /// Pod `i`: app=app-<i%50> in ns-<i%10>; the first `localPods` on this node (addresses in its pod
    /// CIDR), the others on nodes without keeld.
    static func pod(_ i: Int, node: TestCluster.ClusterNode) -> String {
        let local = i < localPods
        let ip: IPAddress = local ? node.podCIDR.network.advanced(by: Int64(i + 2))! : .v4(IPv4Address(0x0AF5_0000 + UInt32(i)))
        return """
            {"kind":"Pod","apiVersion":"v1","metadata":{"name":"pod-\(i)","namespace":"\(namespace(i))","labels":{"app":"app-\(i % appCount)"}},\
            "spec":{"nodeName":"\(local ? node.name : "node-\(i % 20)")","containers":[{"name":"main","image":"keel.test/app",\
            "ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}]}]},\
            "status":{"phase":"Running","podIP":"\(ip)","podIPs":[{"ip":"\(ip)"}]}}
            """
    }

    /// Policy `i` in ns-<i%10> selects app-<(i/10)%50> (every namespace's every app is selected, so
    /// every local pod is isolated) and allows TCP 8080 from app-<(i+1)%50>.
    static func policy(_ i: Int) -> String {
        """
        {"kind":"NetworkPolicy","apiVersion":"networking.k8s.io/v1","metadata":{"name":"np-\(i)","namespace":"\(namespace(i))"},\
        "spec":{"podSelector":{"matchLabels":{"app":"app-\((i / namespaceCount) % appCount)"}},"policyTypes":["Ingress"],\
        "ingress":[{"from":[{"podSelector":{"matchLabels":{"app":"app-\((i + 1) % appCount)"}}}],"ports":[{"protocol":"TCP","port":8080}]}]}}
        """
    }

    /// Whether local pod `i` is selected by one of the policies (then it has an `ingress-pods` element).
    func isolated(_ i: Int) -> Bool {
        (0..<policies).contains { p in p % Self.namespaceCount == i % Self.namespaceCount && (p / Self.namespaceCount) % Self.appCount == i % Self.appCount }
    }

    func objectDocuments(node: TestCluster.ClusterNode) -> [String] {
        var docs = (0..<Self.namespaceCount).map { n in
            "{\"kind\":\"Namespace\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"ns-\(n)\",\"labels\":{\"kubernetes.io/metadata.name\":\"ns-\(n)\"}}}"
        }
        docs.append("""
            {"kind":"Node","apiVersion":"v1","metadata":{"name":"\(node.name)"},"spec":{"podCIDR":"\(node.podCIDR)","podCIDRs":["\(node.podCIDR)"]},\
            "status":{"addresses":[{"type":"InternalIP","address":"\(node.ip)"},{"type":"Hostname","address":"\(node.name)"}]}}
            """)
        docs += (0..<services).map(Self.service)
        docs += (0..<services).map(sliceDocument)
        docs += (0..<pods).map { Self.pod($0, node: node) }
        docs += (0..<policies).map(Self.policy)
        return docs
    }
}

private extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
