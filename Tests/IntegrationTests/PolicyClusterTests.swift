import Cluster
import Foundation
import NFTables
import NetAddress
import Netlink
import NetnsHarness
import PolicyEnforcer
import Testing

// NetworkPolicy with real connections in the namespace cluster: two nodes (TestCluster + host-gw
// pods, one test over VXLAN) running `keeld --routes --policy` over a manifest folder; three
// namespaces with two pods each (one per node), every pod answering on TCP and UDP 80 and 8080.
// For each scenario the policies are written as manifests, and the full pod-to-pod matrix (every
// ordered pair of distinct pods × TCP/UDP × 80/8080, 120 probes) is compared with the matrix of
// the pure evaluation (`evaluate(_:in:)`) over the same manifests decoded by `ManifestDecoder`:
// allowed = the pod answered with its banner, denied = silence until the timeout (a DROP).

// MARK: - The lab

/// One pod of the lab: its Kubernetes identity and where it runs.
private struct PolicyLabPod: Sendable {
    let namespace: String
    let name: String
    let app: String
    let node: TestCluster.ClusterNode
    let netns: LabNamespace
    let ip: IPAddress
    var endpoint: PolicyEnforcer.Endpoint { .pod(namespace: namespace, name: name, ip: ip) }
    var label: String { "\(namespace)/\(name)@\(node.name)" }
    func banner(_ port: UInt16) -> String { "\(namespace)/\(name):\(port)" }
}

/// One probe of the matrix: `from` → `to` (indices into the lab's pods) with `proto`/`port`.
private struct PolicyProbe: Hashable, Sendable, Comparable, CustomStringConvertible {
    let from: Int, to: Int
    let proto: PortProtocol
    let port: UInt16
    static func < (l: Self, r: Self) -> Bool { (l.from, l.to, l.proto.rawValue, l.port) < (r.from, r.to, r.proto.rawValue, r.port) }
    var description: String { "\(from)->\(to) \(proto)/\(port)" }
}

/// What a probe saw.
private enum ProbeResult: Hashable, Sendable, CustomStringConvertible {
    /// The destination pod answered with its own banner.
    case answered
    /// Nothing came back before the timeout: dropped.
    case silent
    /// Anything else (refused, an error, another pod's banner): never what a policy produces.
    case other(String)
    var description: String {
        switch self {
        case .answered: "answered"
        case .silent: "silent"
        case .other(let s): s
        }
    }
}

/// A 2-node cluster with keeld (`--routes --policy`) on each node and six pods in three
/// namespaces. Files of the manifest folder: one per namespace (the Namespace and its pods) and
/// one per policy (`policy-<namespace>-<name>.yaml`).
private final class PolicyLab: @unchecked Sendable {
    let overlay: OverlayLab
    private(set) var pods: [PolicyLabPod] = []
    private var servers: [BannerServer] = []
    /// The namespace files (Namespace + Pods), as written.
    private(set) var baseFiles: [String: String] = [:]
    /// The policy files currently in the folder.
    private(set) var policyFiles: [String: String] = [:]
    private var nft: [String: NFTablesSocket] = [:]
    private var nextSourcePort: UInt16 = 20000
    private let portLock = NSLock()
    let agentArgs = ["--policy"]

    static let ports: [UInt16] = [80, 8080]
    static let protos: [PortProtocol] = [.tcp, .udp]
    static let probeTimeout: Int32 = 700
    /// Namespaces and their labels: alpha and beta are `env: prod`, gamma is `env: dev`.
    static let namespaces: [(name: String, labels: [String: String])] = [
        ("alpha", ["team": "a", "env": "prod"]), ("beta", ["team": "b", "env": "prod"]), ("gamma", ["team": "c", "env": "dev"]),
    ]

    var nodes: [TestCluster.ClusterNode] { overlay.cluster.nodes }

    init(lab: NetnsLab, backend: String) throws {
        overlay = try OverlayLab(cluster: TestCluster(lab: lab, nodeCount: 2), backend: backend)
        try overlay.startAgents(extra: agentArgs)
        // In each namespace: `web` on node1, `db` on node2.
        for (ns, labels) in Self.namespaces {
            var docs = ["apiVersion: v1\nkind: Namespace\nmetadata:\n  name: \(ns)\n  labels:\n"
                        + labels.sorted { $0.key < $1.key }.map { "    \($0.key): \($0.value)\n" }.joined()]
            for (app, node) in [("web", nodes[0]), ("db", nodes[1])] {
                let (netns, ip) = try overlay.addPod(node, "\(ns)-\(app)")
                let pod = PolicyLabPod(namespace: ns, name: app, app: app, node: node, netns: netns, ip: ip)
                pods.append(pod)
                for port in Self.ports { servers.append(try BannerServer(in: netns, address: ip, port: port, banner: pod.banner(port))) }
                docs.append(Self.podManifest(pod))
            }
            let file = "ns-\(ns).yaml"
            baseFiles[file] = docs.joined(separator: "---\n")
            try overlay.writeManifest(file, baseFiles[file]!)
        }
        for node in nodes { nft[node.name] = try node.namespace.run { try NFTablesSocket() } }
        try overlay.waitForPeers()
    }

    deinit { servers.forEach { $0.stop() } }

    /// The named ports differ per app, so a named-port policy resolves to different numbers:
    /// web: `http` = TCP 80, `echo` = UDP 8080; db: `http` = TCP 8080, `echo` = UDP 80.
    static func podManifest(_ pod: PolicyLabPod) -> String {
        let (http, echo): (UInt16, UInt16) = pod.app == "web" ? (80, 8080) : (8080, 80)
        return """
        apiVersion: v1
        kind: Pod
        metadata:
          name: \(pod.name)
          namespace: \(pod.namespace)
          labels:
            app: \(pod.app)
        spec:
          nodeName: \(pod.node.name)
          containers:
          - name: main
            image: keel.test/banner
            ports:
            - name: http
              containerPort: \(http)
              protocol: TCP
            - name: echo
              containerPort: \(echo)
              protocol: UDP
        status:
          phase: Running
          podIP: \(pod.ip)

        """
    }

    func pod(_ namespace: String, _ name: String) -> PolicyLabPod { pods.first { $0.namespace == namespace && $0.name == name }! }

    // MARK: Manifests and the expected matrix

    /// Replaces the policy files with `policies` (file name → YAML): files not named are removed.
    func setPolicies(_ policies: [String: String]) throws {
        for name in policyFiles.keys where policies[name] == nil {
            guard unlink("\(overlay.manifests)/\(name)") == 0 else {
                throw ProcessError(command: ["unlink \(name)"], reason: String(cString: strerror(errno)))
            }
        }
        for (name, yaml) in policies where policyFiles[name] != yaml { try overlay.writeManifest(name, yaml) }
        policyFiles = policies
    }

    /// The folder's Pods, Namespaces and NetworkPolicies as keeld decodes them, and the problems.
    func decoded() -> (input: PolicyInput, problems: [ManifestProblem]) {
        let files = (baseFiles.merging(policyFiles) { a, _ in a }).map { (name: $0.key, text: $0.value) }
        let r = ManifestDecoder.decode(files: files)
        var pods: [Pod] = [], namespaces: [Namespace] = [], policies: [NetworkPolicy] = []
        for o in r.objects {
            switch o {
            case .pod(let p): pods.append(p)
            case .namespace(let n): namespaces.append(n)
            case .networkPolicy(let p): policies.append(p)
            default: break
            }
        }
        return (PolicyInput(pods: pods, namespaces: namespaces, policies: policies), r.problems)
    }

    var allProbes: [PolicyProbe] {
        var out: [PolicyProbe] = []
        for from in pods.indices {
            for to in pods.indices where to != from {
                for proto in Self.protos { for port in Self.ports { out.append(PolicyProbe(from: from, to: to, proto: proto, port: port)) } }
            }
        }
        return out
    }

    func flow(_ p: PolicyProbe) -> Flow { Flow(from: pods[p.from].endpoint, to: pods[p.to].endpoint, p.proto, port: p.port) }

    /// Whether each probe must be allowed, from the pure evaluation.
    func expectedMatrix(_ input: PolicyInput) -> [PolicyProbe: Bool] {
        Dictionary(uniqueKeysWithValues: allProbes.map { ($0, evaluate(flow($0), in: input).allowed) })
    }

    // MARK: Waiting for keeld

    /// Waits until `ip keel-policy` on every node is the ruleset that `input` compiles to for that
    /// node: keeld has applied the scenario. (The matrix that follows is the independent check.)
    func waitForRules(_ input: PolicyInput, timeout: Double = 15) throws {
        let isolated = isolation(input)
        let desired = Dictionary(uniqueKeysWithValues: nodes.map {
            ($0.name, PolicyRuleset.ruleset(compiledPods(isolated, nodeName: $0.name)))
        })
        try waitFor("keeld to apply the policies on every node", timeout: timeout) {
            try nodes.allSatisfy { try nft[$0.name]!.table(named: PolicyRuleset.table.name, family: .ip) == desired[$0.name] }
        }
    }

    // MARK: Probes

    /// A fresh UDP source port per probe for the whole run: a datagram never reuses the 5-tuple of
    /// an earlier exchange, whose conntrack entry (established, allowed under an earlier scenario)
    /// would let it through.
    func sourcePort() -> UInt16 {
        portLock.withLock {
            nextSourcePort += 1
            return nextSourcePort
        }
    }

    func probe(_ p: PolicyProbe, timeout: Int32 = PolicyLab.probeTimeout) -> ProbeResult {
        let (from, to) = (pods[p.from], pods[p.to])
        do {
            switch p.proto {
            case .udp:
                guard let reply = try udpExchange(from: from.netns, to: to.ip, port: p.port, sourcePort: sourcePort(), timeout: timeout) else {
                    return .silent
                }
                return reply == to.banner(p.port) ? .answered : .other("udp reply \(reply)")
            default:
                let outcome = try TrafficProbe.tcpConnect(from: from.netns, to: to.ip, port: p.port, timeoutMilliseconds: timeout)
                switch outcome {
                case .timedOut: return .silent
                case .connected(let reply) where reply == to.banner(p.port): return .answered
                default: return .other("tcp \(outcome)")
                }
            }
        } catch {
            return .other("probe error: \(error)")
        }
    }

    /// Every probe at once, one thread each (denied probes cost their whole timeout).
    func probeMatrix(_ probes: [PolicyProbe]? = nil) -> [PolicyProbe: ProbeResult] {
        let probes = probes ?? allProbes
        let results = inParallel(probes.count) { self.probe(probes[$0]) }
        return Dictionary(uniqueKeysWithValues: zip(probes, results).map { ($0, $1) })
    }

    /// Writes the policies, waits for keeld, probes the full matrix and compares it with the
    /// evaluation. Returns the expected matrix's allowed/denied counts.
    @discardableResult
    func check(_ scenario: String, _ policies: [String: String], nonTrivial: Bool = true,
               sourceLocation: SourceLocation = #_sourceLocation) throws -> (allowed: Int, denied: Int) {
        try setPolicies(policies)
        let (input, problems) = decoded()
        #expect(problems.isEmpty, "\(scenario): the manifests decode cleanly: \(problems)", sourceLocation: sourceLocation)
        try waitForRules(input)
        return compare(scenario, input, nonTrivial: nonTrivial, sourceLocation: sourceLocation)
    }

    /// Probes the matrix and compares it with the evaluation over `input`.
    @discardableResult
    func compare(_ scenario: String, _ input: PolicyInput, nonTrivial: Bool = true,
                 sourceLocation: SourceLocation = #_sourceLocation) -> (allowed: Int, denied: Int) {
        let expected = expectedMatrix(input)
        let seen = probeMatrix()
        var mismatches: [String] = []
        for p in expected.keys.sorted() {
            let allowed = expected[p]!, got = seen[p]!
            if got != (allowed ? .answered : .silent) {
                mismatches.append("\(pods[p.from].label) -> \(pods[p.to].label) \(p.proto)/\(p.port): expected "
                                  + "\(allowed ? "allowed" : "denied"), got \(got) — \(evaluate(flow(p), in: input))")
            }
        }
        let allowed = expected.values.filter { $0 }.count, denied = expected.count - allowed
        let report = "\(scenario): \(mismatches.count) of \(expected.count) probes differ from the evaluation:\n"
            + mismatches.joined(separator: "\n")
        #expect(mismatches.count == 0, Comment(rawValue: report), sourceLocation: sourceLocation)
        if nonTrivial {
            #expect(allowed > 0 && denied > 0, "\(scenario): the matrix has both outcomes (\(allowed) allowed, \(denied) denied)",
                    sourceLocation: sourceLocation)
        }
        print("policy scenario \(scenario): \(expected.count) probes, \(allowed) allowed, \(denied) denied, \(mismatches.count) mismatches")
        return (allowed, denied)
    }
}

/// Runs `body(0..<count)` on `count` threads at once and returns the results in order.
private func inParallel<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
    let box = ParallelResults<T>(count), group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let thread = Thread {
            let r = body(i)
            box.lock.withLock { box.items[i] = r }
            group.leave()
        }
        thread.stackSize = 256 * 1024
        thread.start()
    }
    group.wait()
    return box.items.map { $0! }
}

private final class ParallelResults<T>: @unchecked Sendable {
    var items: [T?]
    let lock = NSLock()
    init(_ n: Int) { items = Array(repeating: nil, count: n) }
}

/// One UDP datagram from `sourcePort` inside `namespace` to `address`:`port`; the reply, or nil
/// after `timeout` ms.
private func udpExchange(from namespace: LabNamespace, to address: IPAddress, port: UInt16, sourcePort: UInt16,
                 timeout: Int32) throws -> String? {
    guard case .v4(let destination) = address else { return nil }
    return try namespace.run { () throws -> String? in
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw ProcessError(command: ["socket"], reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        guard withIPv4(IPv4Address(0), sourcePort, { bind(fd, $0, $1) }) == 0 else {
            throw ProcessError(command: ["bind :\(sourcePort)"], reason: String(cString: strerror(errno)))
        }
        guard withIPv4(destination, port, { connect(fd, $0, $1) }) == 0 else { return nil }
        _ = send(fd, "ping", 4, 0)
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, timeout) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n >= 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }
}

private func withIPv4<R>(_ address: IPv4Address, _ port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_port = port.bigEndian
    sin.sin_addr.s_addr = address.value.bigEndian
    return withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
}

/// A NetworkPolicy manifest: `spec` is the YAML under `spec:`, unindented.
private func policyYAML(_ name: String, _ namespace: String, _ spec: String) -> String {
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: \(name)\n  namespace: \(namespace)\nspec:\n"
        + spec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
}

/// `[policy-<namespace>-<name>.yaml: manifest]` for (name, namespace, spec) triples.
private func policyFiles(_ policies: [(String, String, String)]) -> [String: String] {
    Dictionary(uniqueKeysWithValues: policies.map { ("policy-\($0.1)-\($0.0).yaml", policyYAML($0.0, $0.1, $0.2)) })
}

// MARK: - Long-lived connections


// MARK: - Tests

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct PolicyClusterTests {
    /// Every policy feature as its own scenario over host-gw: same-node flows are bridged (through
    /// br_netfilter), cross-node flows are routed. Each scenario replaces the previous policies.
    @Test func matricesMatchTheEvaluationOverHostGW() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let c = try PolicyLab(lab: lab, backend: "host-gw")
            let alphaWeb = c.pod("alpha", "web"), betaWeb = c.pod("beta", "web")

            let open = try c.check("no policies", [:], nonTrivial: false)
            #expect(open.denied == 0, "without policies everything is allowed")

            try c.check("default-deny ingress (alpha)", policyFiles([
                ("deny-in", "alpha", "podSelector: {}\npolicyTypes: [Ingress]"),
            ]))

            // The node's own connections to its isolated pods (kubelet probes) stay open; another
            // node's are denied like any other source outside the rules.
            for pod in [alphaWeb, c.pod("alpha", "db")] {
                let local = try TrafficProbe.tcpConnect(from: pod.node.namespace, to: pod.ip, port: 80, timeoutMilliseconds: 700)
                #expect(local.reply == pod.banner(80), "node \(pod.node.name) -> its pod \(pod.label): \(local)")
                #expect(evaluate(Flow(from: .node(pod.node.ip), to: pod.endpoint, port: 80), in: c.decoded().input).allowed)
                let other = c.nodes.first { $0.name != pod.node.name }!
                let remote = try TrafficProbe.tcpConnect(from: other.namespace, to: pod.ip, port: 80, timeoutMilliseconds: 700)
                #expect(remote == .timedOut, "node \(other.name) -> \(pod.label) (not its node): \(remote)")
                #expect(!evaluate(Flow(from: .external(other.ip), to: pod.endpoint, port: 80), in: c.decoded().input).allowed)
            }

            try c.check("default-deny egress (beta)", policyFiles([
                ("deny-out", "beta", "podSelector: {}\npolicyTypes: [Egress]"),
            ]))

            try c.check("namespace isolation (every namespace admits only itself; gamma also env=prod)", policyFiles([
                ("same-ns", "alpha", "podSelector: {}\ningress:\n- from:\n  - podSelector: {}"),
                ("same-ns", "beta", "podSelector: {}\ningress:\n- from:\n  - podSelector: {}"),
                ("same-ns-g", "gamma", "podSelector: {}\ningress:\n- from:\n  - podSelector: {}\n  - namespaceSelector:\n      matchLabels: {env: prod}\n    podSelector:\n      matchLabels: {app: db}"),
            ]))

            // alpha/web admits the cluster CIDR except node2's pod CIDR and beta/web's address;
            // gamma/db may send only to node1's pod CIDR except alpha/web, TCP 8080.
            try c.check("ipBlock with except", policyFiles([
                ("block-in", "alpha", """
                 podSelector: {matchLabels: {app: web}}
                 ingress:
                 - from:
                   - ipBlock:
                       cidr: 10.244.0.0/16
                       except: [\(c.nodes[1].podCIDR), \(betaWeb.ip)/32]
                 """),
                ("block-out", "gamma", """
                 podSelector: {matchLabels: {app: db}}
                 policyTypes: [Egress]
                 egress:
                 - to:
                   - ipBlock: {cidr: \(c.nodes[0].podCIDR), except: [\(alphaWeb.ip)/32]}
                   ports:
                   - {protocol: TCP, port: 8080}
                 """),
            ]))

            // `http` is TCP 80 on web pods and 8080 on db pods, `echo` UDP 8080 on web and 80 on db.
            try c.check("named ports", policyFiles([
                ("named-in", "alpha", "podSelector: {}\ningress:\n- ports:\n  - port: http\n  - {protocol: UDP, port: echo}"),
                ("named-out", "beta", "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\negress:\n- to:\n  - namespaceSelector: {}\n  ports:\n  - port: http"),
            ]))

            try c.check("endPort", policyFiles([
                ("range-in", "gamma", """
                 podSelector: {}
                 ingress:
                 - from:
                   - namespaceSelector: {matchLabels: {env: prod}}
                   ports:
                   - {protocol: TCP, port: 8000, endPort: 8100}
                   - {protocol: UDP, port: 1, endPort: 80}
                 """),
                ("range-out", "alpha", "podSelector: {matchLabels: {app: db}}\npolicyTypes: [Egress]\negress:\n- ports:\n  - {protocol: TCP, port: 79, endPort: 81}\n  - {protocol: UDP, port: 8080, endPort: 8080}"),
            ]))

            // Three policies select beta/db: their rules are a union; two egress policies in gamma.
            try c.check("multiple policies", policyFiles([
                ("db-from-alpha", "beta", "podSelector: {matchLabels: {app: db}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {team: a}}\n  ports:\n  - {port: 80}"),
                ("db-from-gamma", "beta", "podSelector: {matchLabels: {app: db}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {team: c}}\n  ports:\n  - {protocol: UDP, port: 8080}"),
                ("all-from-web", "beta", "podSelector: {}\ningress:\n- from:\n  - namespaceSelector: {}\n    podSelector: {matchLabels: {app: web}}"),
                ("out-a", "gamma", "podSelector: {}\npolicyTypes: [Egress]\negress:\n- to:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: team, operator: In, values: [a]}"),
                ("out-b", "gamma", "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\negress:\n- to:\n  - namespaceSelector: {matchLabels: {team: b}}\n  ports:\n  - {protocol: UDP}"),
            ]))
        }
    }

    /// Policies change while connections are open: established connections keep working (Keel
    /// accepts established flows before any policy chain, see `PolicyRuleset`), new ones follow the
    /// new rules, and after each change the whole matrix matches the evaluation.
    @Test func updatesWhileConnectionsAreOpen() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let c = try PolicyLab(lab: lab, backend: "host-gw")
            let (alphaWeb, alphaDB, betaWeb, gammaWeb) = (c.pod("alpha", "web"), c.pod("alpha", "db"), c.pod("beta", "web"), c.pod("gamma", "web"))
            try c.check("updates: start, alpha/db admits beta on TCP 80", policyFiles([
                ("db-in", "alpha", "podSelector: {matchLabels: {app: db}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {team: b}}\n  ports:\n  - {port: 80}\n  - {port: 9000}"),
            ]))
            // Open: beta/web -> alpha/db (cross-node, allowed on 9000), gamma/web -> alpha/web
            // (same node, bridged; alpha/web not isolated yet).
            let held = [
                ("beta/web -> alpha/db:9000", try #require(try HeldConnection.open(from: betaWeb.netns, to: alphaDB.netns, address: alphaDB.ip, port: 9000))),
                ("gamma/web -> alpha/web:9000", try #require(try HeldConnection.open(from: gammaWeb.netns, to: alphaWeb.netns, address: alphaWeb.ip, port: 9000))),
            ]
            defer { held.forEach { $0.1.close() } }
            for (name, conn) in held { #expect(conn.exchange("before"), "\(name) works before the update") }

            // Update in place (db-in now admits TCP 8080 only, from everyone in prod) and add a
            // default deny for alpha: neither open connection would be admitted as a new one.
            try c.check("updates: policy changed in place + default deny added", policyFiles([
                ("db-in", "alpha", "podSelector: {matchLabels: {app: db}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {env: prod}}\n  ports:\n  - {port: 8080}"),
                ("deny-in", "alpha", "podSelector: {}\npolicyTypes: [Ingress]"),
            ]))
            for (name, conn) in held { #expect(conn.exchange("after-deny"), "\(name): an established connection survives the update") }
            let input = c.decoded().input
            for (from, to) in [(betaWeb, alphaDB), (gammaWeb, alphaWeb)] {
                #expect(!evaluate(Flow(from: from.endpoint, to: to.endpoint, port: 9000), in: input).allowed)
                let fresh = try TrafficProbe.tcpConnect(from: from.netns, to: to.ip, port: 9000, timeoutMilliseconds: 700)
                #expect(fresh == .timedOut, "a new connection \(from.label) -> \(to.label):9000 is denied: \(fresh)")
            }

            // Remove everything: the matrix is open again and the held connections still work.
            try c.check("updates: policies removed", [:], nonTrivial: false)
            for (name, conn) in held { #expect(conn.exchange("after-removal"), "\(name) still works") }
        }
    }

    /// Fail closed: probes run without pause while keeld restarts on both nodes, and no denied
    /// probe ever gets through (nor does an allowed one fail); the table is the same afterwards.
    /// A bad policy manifest is logged with its object and field and skipped; the others stay enforced.
    @Test func failsClosedAcrossRestartsAndSkipsABadManifest() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let c = try PolicyLab(lab: lab, backend: "host-gw")
            let (alphaWeb, betaWeb, betaDB, gammaWeb) = (c.pod("alpha", "web"), c.pod("beta", "web"), c.pod("beta", "db"), c.pod("gamma", "web"))
            let policies = policyFiles([
                ("deny-in", "alpha", "podSelector: {}\npolicyTypes: [Ingress]"),
                ("web-from-beta", "alpha", "podSelector: {matchLabels: {app: web}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {team: b}}\n    podSelector: {matchLabels: {app: web}}"),
            ])
            try c.check("restart: before", policies)
            let before = try c.nodes.map { n in try n.namespace.run { try NFTablesSocket().table(named: "keel-policy", family: .ip) } }

            // Denied: same node (bridged) TCP and UDP, cross-node TCP; allowed: beta/web -> alpha/web.
            let probes: [(PolicyProbe, Bool)] = [
                (PolicyProbe(from: c.pods.firstIndex { $0.label == gammaWeb.label }!, to: 0, proto: .tcp, port: 80), false),
                (PolicyProbe(from: c.pods.firstIndex { $0.label == gammaWeb.label }!, to: 0, proto: .udp, port: 8080), false),
                (PolicyProbe(from: c.pods.firstIndex { $0.label == betaDB.label }!, to: 0, proto: .tcp, port: 8080), false),
                (PolicyProbe(from: c.pods.firstIndex { $0.label == betaWeb.label }!, to: 0, proto: .tcp, port: 80), true),
            ]
            #expect(c.pods[0].label == alphaWeb.label)
            let input = c.decoded().input
            for (p, allowed) in probes { #expect(evaluate(c.flow(p), in: input).allowed == allowed, "\(p)") }

            final class Tally: @unchecked Sendable {
                let lock = NSLock()
                var rounds = 0, wrong: [String] = [], stop = false
            }
            let tally = Tally()
            // One thread per probe, each probing back to back (a denied probe takes its 300 ms).
            let done = DispatchSemaphore(value: 0)
            for (probe, allowed) in probes {
                Thread {
                    while !tally.lock.withLock({ tally.stop }) {
                        let r = c.probe(probe, timeout: 300)
                        tally.lock.withLock {
                            tally.rounds += 1
                            if r != (allowed ? .answered : .silent) { tally.wrong.append("probe \(tally.rounds): \(probe) \(r)") }
                        }
                    }
                    done.signal()
                }.start()
            }
            usleep(500_000)
            for n in c.nodes { c.overlay.stopAgent(n) }      // SIGTERM: keeld leaves the datapath as it is
            usleep(1_000_000)                                // no keeld at all for a second
            // Debug level: keeld logs each policy sync with its number of nftables operations.
            for n in c.nodes { try c.overlay.startAgent(n, logLevel: "debug", extra: c.agentArgs) }
            try waitFor("keeld's first policy sync after the restart", timeout: 15) {
                c.nodes.allSatisfy { c.overlay.agentLog($0.name).contains("policy rules synced") }
            }
            usleep(1_000_000)
            tally.lock.withLock { tally.stop = true }
            for _ in probes { done.wait() }
            print("policy restart: \(tally.rounds) probes (\(probes.count) flows back to back) during the restart, \(tally.wrong.count) wrong")
            #expect(tally.rounds >= 40, "probed continuously: \(tally.rounds) probes")
            #expect(tally.wrong.isEmpty, "probes that differed during the restart:\n\(tally.wrong.joined(separator: "\n"))")
            let after = try c.nodes.map { n in try n.namespace.run { try NFTablesSocket().table(named: "keel-policy", family: .ip) } }
            #expect(after == before, "a restart converges to the same table (no duplicates)")
            for n in c.nodes {
                let synced = c.overlay.agentLog(n.name).split(separator: "\n").first { $0.contains("policy rules synced") } ?? ""
                #expect(synced.contains("operations=0"), "\(n.name): the first sync after the restart changed nothing: \(synced)")
            }
            c.compare("restart: after", input)

            // A bad manifest next to good ones: logged with object and field, skipped; the others
            // are enforced (the expected matrix is the evaluation of what decodes: without it).
            var withBad = policies
            withBad["policy-beta-bad-range.yaml"] = policyYAML("bad-range", "beta",
                "podSelector: {}\ningress:\n- ports:\n  - {protocol: TCP, port: 8080, endPort: 80}")
            withBad["policy-gamma-gamma-deny.yaml"] = policyYAML("gamma-deny", "gamma", "podSelector: {}\npolicyTypes: [Ingress, Egress]")
            try c.setPolicies(withBad)
            let (badInput, problems) = c.decoded()
            #expect(problems.map(\.field) == ["spec.ingress[0].ports[0].endPort"], "\(problems)")
            #expect(badInput.policies.map(\.name).sorted() == ["deny-in", "gamma-deny", "web-from-beta"])
            try c.waitForRules(badInput)
            c.compare("bad manifest skipped, others enforced", badInput)
            for n in c.nodes {
                let log = c.overlay.agentLog(n.name)
                #expect(log.contains("NetworkPolicy \"bad-range\"") && log.contains("spec.ingress[0].ports[0].endPort"),
                        "\(n.name)'s keeld names the object and the field:\n\(log)")
            }
            for n in c.nodes {
                let metrics = try TrafficProbe.httpGet(from: n.namespace, to: n.ip, port: 10249, path: "/metrics").reply ?? ""
                #expect(metrics.contains("keel_policy_syncs_total ") && metrics.contains("keel_policy_sync_failures_total 0")
                        && metrics.contains("# TYPE keel_policy_unprogrammable gauge") && !metrics.contains("keel_policy_unprogrammable{"),
                        "\(n.name): the policy series, no policy refused: \(metrics.prefix(600))")
            }
            let running = c.overlay.agents.values.allSatisfy(\.isRunning)
            #expect(running, "keeld keeps running")
        }
    }

    /// One scenario over VXLAN: cross-node flows are encapsulated, and enforced the same way.
    @Test func matrixMatchesTheEvaluationOverVXLAN() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let c = try PolicyLab(lab: lab, backend: "vxlan")
            try c.check("vxlan: no policies", [:], nonTrivial: false)
            try c.check("vxlan: namespace isolation + default-deny egress + named port", policyFiles([
                ("same-ns", "alpha", "podSelector: {}\ningress:\n- from:\n  - podSelector: {}"),
                ("deny-out", "beta", "podSelector: {matchLabels: {app: db}}\npolicyTypes: [Egress]"),
                ("named-in", "gamma", "podSelector: {}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {env: prod}}\n  ports:\n  - port: http"),
            ]))
        }
    }
}
