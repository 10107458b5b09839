import Cluster
import Glibc
import Logging
import NFTables
import NetAddress
import Netlink
import NetnsHarness
import PolicyEnforcer

/// `bench policy`: the policy enforcer's whole pipeline (PolicyInput → isolation → compiledPods →
/// PolicyRuleset.ruleset → transaction → one netlink batch) over 1,000 synthetic pods at several
/// policy counts, one-policy changes through PolicySync, and first-packet latency through the
/// ruleset on a bridged node (br_netfilter) with 0 and the largest number of policies.
/// Every measurement runs in namespaces of `lab`; nothing touches the root namespace.
struct PolicyBench {
    let lab: NetnsLab
    let sizes: [Int]
    let runs: Int
    let connects: Int

    static let thisNode = "node-0"
    static let namespaceCount = 10
    static let podsPerNamespace = 100

    // MARK: - Objects

    /// 10 namespaces (labels team=t0..t2, env=prod|dev) × 100 pods; pod j has app=a<j%10>, sits on
    /// node-<(j + j/10) % 4> (so every app of every namespace has pods on this node, ≈1/4 of all),
    /// and has container ports http (8080 for a0-a4, 8000 for a5-a9: a named port that resolves
    /// differently per pod), metrics 9090/TCP and dns 53/UDP.
    struct SyntheticCluster {
        var namespaces: [Namespace]
        var pods: [Pod]
        var policies: [NetworkPolicy]
        var input: PolicyInput { PolicyInput(pods: pods, namespaces: namespaces, policies: policies) }
    }

    static func address(namespace n: Int, pod j: Int) -> IPv4Address {
        let k = n * podsPerNamespace + j
        return IPv4Address(10, 244, UInt8(k / 200), UInt8(k % 200 + 10))
    }

    static func cluster(policies count: Int) -> SyntheticCluster {
        let namespaces = (0..<namespaceCount).map { n in
            Namespace(name: "ns-\(n)", labels: ["team": "t\(n % 3)", "env": n < 5 ? "prod" : "dev"])
        }
        var pods: [Pod] = []
        for n in 0..<namespaceCount {
            for j in 0..<podsPerNamespace {
                pods.append(Pod(metadata: ObjectMeta(name: "pod-\(j)", namespace: "ns-\(n)", labels: ["app": "a\(j % 10)"]),
                                nodeName: "node-\((j + j / 10) % 4)",
                                containerPorts: [ContainerPort(container: "main", name: "http", port: j % 10 < 5 ? 8080 : 8000),
                                                 ContainerPort(container: "main", name: "metrics", port: 9090),
                                                 ContainerPort(container: "main", name: "dns", port: 53, protocol: .udp)],
                                podIPs: [.v4(address(namespace: n, pod: j))], phase: .running))
            }
        }
        return SyntheticCluster(namespaces: namespaces, pods: pods, policies: (0..<count).map(policy))
    }

    /// Policy i lives in ns-<i%10> and selects app=a<(i/10)%10>: the first 100 cover every
    /// (namespace, app) once, 1,000 select each pod 10 times. Eight shapes, mixed by index.
    static func policy(_ i: Int) -> NetworkPolicy {
        let x = (i / 10) % 10
        func app(_ k: Int) -> LabelSelector { LabelSelector(matchLabels: ["app": "a\((x + k) % 10)"]) }
        func tcp(_ p: UInt16, to end: UInt16? = nil) -> NetworkPolicyPort { NetworkPolicyPort(port: .number(p), endPort: end) }
        let named = { (name: String) in NetworkPolicyPort(port: .name(name)) }
        var ingress: [NetworkPolicyRule] = [], egress: [NetworkPolicyRule] = [], types: [PolicyType]? = nil
        switch (i &* 7 + i / 10) % 8 {
        case 0:   // same-namespace peers, numeric port
            ingress = [NetworkPolicyRule(peers: [.selector(pods: app(1), namespaces: nil)], ports: [tcp(8080)])]
        case 1:   // namespaceSelector + podSelector, named port
            ingress = [NetworkPolicyRule(peers: [.selector(pods: app(2), namespaces: LabelSelector(matchLabels: ["team": "t\(i % 3)"]))],
                                         ports: [named("http")])]
        case 2:   // a whole other namespace, named metrics port
            ingress = [NetworkPolicyRule(peers: [.selector(pods: nil, namespaces: LabelSelector(
                matchLabels: [Namespace.nameLabel: "ns-\((i + 1) % namespaceCount)"]))], ports: [named("metrics")])]
        case 3:   // ipBlocks with except, a port and a port range
            ingress = [NetworkPolicyRule(peers: [
                .ipBlock(IPBlock(cidr: CIDR("10.0.0.0/8")!, except: [CIDR("10.244.0.0/16")!, CIDR("10.96.0.0/12")!])),
                .ipBlock(IPBlock(cidr: CIDR("192.168.\(i % 256).0/24")!)),
            ], ports: [tcp(443), tcp(30000, to: 30100)])]
        case 4:   // matchExpressions, endPort, UDP
            ingress = [NetworkPolicyRule(peers: [.selector(pods: LabelSelector(matchExpressions: [
                LabelSelectorRequirement(key: "app", .in, ["a\((x + 3) % 10)", "a\((x + 4) % 10)"])]), namespaces: nil)],
                ports: [tcp(8080, to: 8090), NetworkPolicyPort(protocol: .udp, port: .number(53))])]
        case 5:   // egress only: named port per destination pod, and DNS
            types = [.egress]
            egress = [NetworkPolicyRule(peers: [.selector(pods: app(1), namespaces: nil)], ports: [named("http")]),
                      NetworkPolicyRule(peers: [.selector(pods: LabelSelector(matchLabels: ["app": "a9"]),
                                                          namespaces: LabelSelector(matchLabels: [Namespace.nameLabel: "ns-0"]))],
                                        ports: [NetworkPolicyPort(protocol: .udp, port: .name("dns"))])]
        case 6:   // both directions: the namespace in, the internet out
            ingress = [NetworkPolicyRule(peers: [.selector(pods: .everything, namespaces: nil)], ports: [tcp(8080)])]
            egress = [NetworkPolicyRule(peers: [.ipBlock(IPBlock(cidr: CIDR("0.0.0.0/0")!, except: [CIDR("10.0.0.0/8")!]))],
                                        ports: [tcp(443)])]
        default:  // default deny for the selected pods
            break
        }
        return NetworkPolicy(metadata: ObjectMeta(name: "pol-\(i)", namespace: "ns-\(i % namespaceCount)"),
                             podSelector: app(0), policyTypes: types, ingress: ingress, egress: egress)
    }

    // MARK: - Run

    struct Shape: Equatable {
        var sets: Int, chains: Int, rules: Int, elements: Int
        init(_ r: Ruleset) {
            sets = r.sets.count
            chains = r.chains.count
            rules = r.rules.count
            elements = r.sets.reduce(0) { $0 + $1.elements.count }
        }
    }

    struct SizeResult {
        var policies: Int
        var isolated: Int
        var semantics: Double, compile: Double, render: Double, diff: Double, kernel: Double
        var shape: Shape
        var ops: Int
        var total: Double { semantics + compile + render + diff + kernel }
    }

    func run() throws {
        print("policy: 1,000 pods (10 namespaces × 100), ≈1/4 on this node; medians of \(runs) runs; fresh namespace per run")
        var results: [SizeResult] = []
        for size in sizes {
            let r = try fullApply(Self.cluster(policies: size), label: "f\(size)")
            results.append(r)
            lab.removeAll()
            print("  \(size) policies: \(ms(r.total)) (semantics \(ms(r.semantics + r.compile)), render \(ms(r.render)), "
                  + "diff \(ms(r.diff)), kernel \(ms(r.kernel))); \(r.shape.sets) sets, \(r.shape.elements) elements")
            fflush(nil)
        }
        let largest = sizes.max()!
        let changes = try incremental(size: largest)
        lab.removeAll()
        let latency = try latencies(size: largest)
        lab.removeAll()
        print(rendered(results, changes, latency))
    }

    // MARK: - Full apply

    func fullApply(_ c: SyntheticCluster, label: String) throws -> SizeResult {
        var semantics: [Double] = [], compile: [Double] = [], render: [Double] = [], diff: [Double] = [], kernel: [Double] = []
        var shape: Shape?, ops = 0, isolatedHere = 0
        for run in 0..<runs {
            let ns = try lab.namespace("\(label)-\(run)")
            let nft = try ns.run { try NFTablesSocket() }
            var isolated: [IsolatedPod] = [], pods: [CompiledPod] = [], ruleset = Ruleset(), tx = Transaction()
            semantics.append(Stopwatch.measure { isolated = isolation(c.input) })
            compile.append(Stopwatch.measure { pods = compiledPods(isolated, nodeName: Self.thisNode) })
            render.append(Stopwatch.measure { ruleset = PolicyRuleset.ruleset(pods) })
            diff.append(Stopwatch.measure { tx = transaction(from: nil, to: ruleset) })
            kernel.append(try Stopwatch.measure { try nft.apply(tx) })
            ops = tx.operations.count
            isolatedHere = pods.count
            if run == 0 {
                shape = Shape(ruleset)
                guard let got = try nft.table(named: PolicyRuleset.table.name, family: PolicyRuleset.table.family), Shape(got) == shape else {
                    throw ProcessError(command: ["bench policy"], reason: "kernel table keel-policy differs from the rendered ruleset")
                }
            }
            try? NetworkNamespace.delete(named: ns.name)   // frees the table now; removeAll() ignores it later
        }
        return SizeResult(policies: c.policies.count, isolated: isolatedHere, semantics: median(semantics), compile: median(compile),
                          render: median(render), diff: median(diff), kernel: median(kernel), shape: shape!, ops: ops)
    }

    // MARK: - One-policy changes

    struct Change {
        var work: String
        var total: Double, semantics: Double, sync: Double, render: Double, diff: Double, kernel: Double, ops: Int
    }

    /// The first policy at or after `start` that has an ingress rule (a default-deny policy has no
    /// ports or peers to change).
    static func changeable(_ policies: [NetworkPolicy], from start: Int) -> Int {
        (0..<policies.count).map { (start + $0) % policies.count }.first { !policies[$0].ingress.isEmpty }!
    }

    /// `runs` port changes, then `runs` peer changes, then one resync with nothing changed, each
    /// through PolicySync (what keeld runs: the whole semantics, render, diff, one batch), and the
    /// same steps one by one in a second namespace to see where the time goes.
    func incremental(size: Int) throws -> [Change] {
        let base = Self.cluster(policies: size)
        var states = [base]
        for r in 0..<runs {
            var s = states.last!
            let i = Self.changeable(s.policies, from: (r * 97 + size / 2) % size)
            s.policies[i].ingress[0].ports = [NetworkPolicyPort(port: .number(UInt16(8443 + r)))]
            states.append(s)
        }
        for r in 0..<runs {
            var s = states.last!
            let i = Self.changeable(s.policies, from: (r * 89 + size / 3) % size)
            s.policies[i].ingress[0].peers = [.selector(pods: LabelSelector(matchLabels: ["app": "a\((r + 5) % 10)"]), namespaces: nil)]
            states.append(s)
        }
        states.append(states.last!)

        let compiled = { (s: SyntheticCluster) in compiledPods(isolation(s.input), nodeName: Self.thisNode) }
        let syncNS = try lab.namespace("chg-sync")
        let sync = PolicySync(nft: try syncNS.run { try NFTablesSocket() }, logger: Logger(label: "bench.policy"))
        try sync.apply(compiled(base))
        var semantics: [Double] = [], syncTimes: [Double] = [], ops: [Int] = []
        for s in states.dropFirst() {
            var pods: [CompiledPod] = []
            semantics.append(Stopwatch.measure { pods = compiled(s) })
            syncTimes.append(try Stopwatch.measure { try sync.apply(pods) })
            ops.append(sync.lastTransaction?.operations.count ?? 0)
        }

        let profileNS = try lab.namespace("chg-profile")
        let nft = try profileNS.run { try NFTablesSocket() }
        var applied = PolicyRuleset.ruleset(compiled(base))
        try nft.apply(transaction(from: nil, to: applied))
        var render: [Double] = [], diff: [Double] = [], kernel: [Double] = []
        for s in states.dropFirst() {
            let pods = compiled(s)
            var desired = Ruleset(), tx = Transaction()
            render.append(Stopwatch.measure { desired = PolicyRuleset.ruleset(pods) })
            diff.append(Stopwatch.measure { tx = transaction(from: applied, to: desired) })
            kernel.append(try Stopwatch.measure { if !tx.isEmpty { try nft.apply(tx) } })
            applied = desired
        }
        guard let got = try syncNS.run({ try NFTablesSocket() }).table(named: PolicyRuleset.table.name, family: .ip), Shape(got) == Shape(applied) else {
            throw ProcessError(command: ["bench policy"], reason: "after the changes PolicySync's table differs from the final ruleset")
        }

        func change(_ work: String, _ range: Range<Int>) -> Change {
            let totals = range.map { semantics[$0] + syncTimes[$0] }
            return Change(work: work, total: median(totals), semantics: median(Array(semantics[range])), sync: median(Array(syncTimes[range])),
                          render: median(Array(render[range])), diff: median(Array(diff[range])), kernel: median(Array(kernel[range])),
                          ops: ops[range].max()!)
        }
        return [change("one policy's ports changed at \(size)", 0..<runs),
                change("one policy's peers changed at \(size)", runs..<(2 * runs)),
                change("resync, nothing changed at \(size)", (2 * runs)..<(2 * runs + 1))]
    }

    // MARK: - First-packet latency

    struct Latency { var setup: String; var chainRules: Int; var samples: [Double] }

    struct Pair { var server: Pod; var client: Pod; var port: UInt16; var serverRules: Int; var clientEgressIsolated: Bool }

    static func ipv4(_ pod: Pod) -> IPv4Address {
        guard case .v4(let a)? = pod.podIP else { fatalError("synthetic pods are IPv4") }
        return a
    }

    static func admits(_ rules: [CompiledRule]?, _ remote: IPv4Address, _ port: UInt16) -> Bool {
        guard let rules else { return true }
        return rules.contains { $0.admits(remote, proto: 6, port: port) }
    }

    /// A client and a server of this node that the policies let talk over TCP: the server isolated
    /// for ingress with the most rules (the longest chain walk), then an egress-isolated client.
    static func measuredPair(_ c: SyntheticCluster, _ compiled: [CompiledPod]) -> Pair? {
        let byName = Dictionary(compiled.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let local = c.pods.filter { $0.nodeName == thisNode }
        var best: Pair?
        for server in local {
            guard let s = byName["\(server.namespace)/\(server.name)"], let ingress = s.ingress, !ingress.isEmpty else { continue }
            for port in [server.port(named: "http")!, 9090] {
                for client in local where client != server {
                    let cp = byName["\(client.namespace)/\(client.name)"]
                    guard admits(ingress, ipv4(client), port), admits(cp?.egress, ipv4(server), port) else { continue }
                    let candidate = Pair(server: server, client: client, port: port, serverRules: Set(ingress).count,
                                         clientEgressIsolated: cp?.egress != nil)
                    if let b = best, (b.serverRules, b.clientEgressIsolated ? 1 : 0) >= (candidate.serverRules, candidate.clientEgressIsolated ? 1 : 0) { continue }
                    best = candidate
                }
            }
        }
        return best
    }

    /// A node namespace with a bridge (br_netfilter on, so bridged pod-to-pod traffic crosses the
    /// ip forward hook) and the measured client and server pods on it, with the synthetic pods'
    /// addresses. No table, the ruleset of 0 policies, then of `size`: TCP handshakes each time.
    func latencies(size: Int) throws -> (pair: Pair, rows: [Latency]) {
        let big = Self.cluster(policies: size)
        let bigPods = compiledPods(isolation(big.input), nodeName: Self.thisNode)
        guard let pair = Self.measuredPair(big, bigPods) else {
            throw ProcessError(command: ["bench policy"], reason: "no allowed client/server pair on this node at \(size) policies")
        }
        let node = try lab.namespace("lat-node")
        let bridge = try node.route.createLink(LinkSpec(name: "kbr0", kind: .bridge, up: true))
        try node.route.addAddress(.withBroadcast(linkIndex: bridge.index, cidr: CIDR("10.244.255.254/16")!))
        try node.sysctl("net.bridge.bridge-nf-call-iptables", "1")
        var ends: [LabNamespace] = []
        for (k, pod) in [pair.client, pair.server].enumerated() {
            let ns = try lab.namespace("lat-p\(k)")
            let (host, _) = try connect(node, InterfaceName("kp\(k)")!, nil, to: ns, "eth0", CIDR(.v4(Self.ipv4(pod)), prefixLength: 16))
            try node.route.setMaster(.index(host.index), bridge.index)
            ends.append(ns)
        }
        let (client, serverNS) = (ends[0], ends[1])
        let serverIP = Self.ipv4(pair.server)
        let deniedPort: UInt16 = 7777   // no policy names it: open without rules, dropped once the server is isolated
        let servers = try [pair.port, deniedPort].map { try BannerServer(in: serverNS, address: .v4(serverIP), port: $0, banner: "\($0)") }
        defer { servers.forEach { $0.stop() } }
        let nft = try node.run { try NFTablesSocket() }

        func probe(_ port: UInt16) throws -> Bool {
            try TrafficProbe.tcpConnect(from: client, to: .v4(serverIP), port: port, timeoutMilliseconds: 700).reply == "\(port)"
        }
        func measure(_ setup: String, chainRules: Int, deniedExpected: Bool) throws -> Latency {
            guard try probe(pair.port) else { throw ProcessError(command: ["bench policy"], reason: "\(setup): allowed connection failed") }
            guard try probe(deniedPort) == !deniedExpected else {
                throw ProcessError(command: ["bench policy"], reason: "\(setup): port \(deniedPort) \(deniedExpected ? "open" : "closed"), expected the opposite")
            }
            let samples = try client.run { () throws -> [Double] in
                var out: [Double] = []
                for n in 0..<(connects + 10) {
                    let t = try Self.handshake(serverIP, port: pair.port)
                    if n >= 10 { out.append(t) }
                }
                return out
            }
            return Latency(setup: setup, chainRules: chainRules, samples: samples)
        }

        var rows = [try measure("no policy table", chainRules: 0, deniedExpected: false)]
        var applied = PolicyRuleset.ruleset([])
        try nft.apply(transaction(from: nil, to: applied))
        rows.append(try measure("0 policies (empty table)", chainRules: 0, deniedExpected: false))
        let desired = PolicyRuleset.ruleset(bigPods)
        try nft.apply(transaction(from: applied, to: desired))
        applied = desired
        let serverGroup = bigPods.first { $0.name == "\(pair.server.namespace)/\(pair.server.name)" }!
        rows.append(try measure("\(size) policies", chainRules: Set(serverGroup.ingress!).count, deniedExpected: true))
        return (pair, rows)
    }

    /// Seconds from connect() to the socket being writable (SYN through the forward hook, SYN-ACK);
    /// on the calling thread, which is inside the client namespace. A new connection each time:
    /// only the first packet of a flow walks the policy rules.
    static func handshake(_ address: IPv4Address, port: UInt16) throws -> Double {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ProcessError(command: ["socket"], reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = address.value.bigEndian
        let w = Stopwatch()
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 && errno != EINPROGRESS { throw ProcessError(command: ["connect \(address):\(port)"], reason: String(cString: strerror(errno))) }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&p, 1, 2000) == 1 else { throw ProcessError(command: ["connect \(address):\(port)"], reason: "timed out") }
        let t = w.elapsed
        var soError: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
        guard soError == 0 else { throw ProcessError(command: ["connect \(address):\(port)"], reason: String(cString: strerror(soError))) }
        return t
    }

    // MARK: - Table

    func ms(_ s: Double) -> String { s >= 10 ? "\(format2(s)) s" : "\(format2(s * 1000)) ms" }

    func rendered(_ sizes: [SizeResult], _ changes: [Change], _ latency: (pair: Pair, rows: [Latency])) -> String {
        var out = "\npolicy: 1,000 pods, ≈1/4 on this node; Keel = semantics + render + diff + one netlink batch; medians of \(runs) runs\n"
        out += "\(pad("work", 38)) \(pad("Keel total", 11)) \(pad("kernel", 11)) \(pad("per policy", 11)) \(pad("ops", 8)) "
            + "\(pad("sets", 5)) \(pad("chains", 7)) \(pad("rules", 6)) elements\n"
        out += String(repeating: "-", count: 115) + "\n"
        for r in sizes {
            out += "\(pad("full apply \(r.policies) policies (\(r.isolated) pods)", 38)) \(pad(ms(r.total), 11)) \(pad(ms(r.kernel), 11)) "
                + "\(pad(format2(r.total / Double(r.policies) * 1e6) + " µs", 11)) \(pad("\(r.ops)", 8)) \(pad("\(r.shape.sets)", 5)) "
                + "\(pad("\(r.shape.chains)", 7)) \(pad("\(r.shape.rules)", 6)) \(r.shape.elements)\n"
        }
        if let a = sizes.first, let b = sizes.last, b.policies > a.policies {
            let f = Double(b.policies) / Double(a.policies)
            out += "\(pad("growth \(a.policies) → \(b.policies) (×\(format2(f)))", 38)) \(pad("×\(format2(b.total / a.total))", 11)) "
                + "\(pad("×\(format2(b.kernel / a.kernel))", 11)) \(pad("×\(format2((b.total / Double(b.policies)) / (a.total / Double(a.policies))))", 11)) "
                + "\(pad("", 8)) \(pad("×\(format2(Double(b.shape.sets) / Double(a.shape.sets)))", 5)) \(pad("", 7)) \(pad("", 6)) "
                + "×\(format2(Double(b.shape.elements) / Double(a.shape.elements)))\n"
        }
        for c in changes {
            out += "\(pad(c.work, 38)) \(pad(ms(c.total), 11)) \(pad(ms(c.kernel), 11)) \(pad("", 11)) \(c.ops)\n"
        }
        out += "\nwhere Keel's time goes (medians): isolation / compile / render / diff / kernel batch\n"
        for r in sizes {
            out += "  full apply \(r.policies): \(ms(r.semantics)) / \(ms(r.compile)) / \(ms(r.render)) / \(ms(r.diff)) / \(ms(r.kernel))\n"
        }
        for c in changes {
            out += "  \(c.work): semantics \(ms(c.semantics)) + PolicySync.apply \(ms(c.sync)) "
                + "(profiled: render \(ms(c.render)) / diff \(ms(c.diff)) / kernel \(ms(c.kernel)))\n"
        }
        let p = latency.pair
        out += "\nfirst-packet latency: TCP handshake \(p.client.namespace)/\(p.client.name) → \(p.server.namespace)/\(p.server.name):\(p.port) "
            + "across the node's bridge (br_netfilter), \(connects) new connections each\n"
        out += "  (server ingress-isolated by \(p.serverRules) rules; client \(p.clientEgressIsolated ? "egress-isolated" : "not egress-isolated"); "
            + "a second port on the server is checked open without rules and dropped with them)\n"
        out += "\(pad("ruleset", 28)) \(pad("p50", 10)) \(pad("p90", 10)) \(pad("p99", 10)) server chain rules\n"
        func us(_ v: Double) -> String { pad("\(Int((v * 1e6).rounded())) µs", 10) }
        for l in latency.rows {
            out += "\(pad(l.setup, 28)) \(us(percentile(l.samples, 0.5))) \(us(percentile(l.samples, 0.9))) \(us(percentile(l.samples, 0.99))) \(l.chainRules)\n"
        }
        out += "goals: 1,000 policies × 1,000 pods applied ≤ 2 s, sets constant, linear growth; no userspace hop, latency flat in the policy count\n"
        out += "for scale: kube-network-policies queues each first packet to userspace (≈75–290 µs per packet, ≈8k packets/s peak published)\n"
        return out
    }
}
