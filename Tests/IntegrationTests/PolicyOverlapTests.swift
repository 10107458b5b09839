import Cluster
import Foundation
import NFTables
import NetAddress
import Netlink
import NetnsHarness
import PolicyEnforcer
import Testing
import Logging

// Random NetworkPolicies whose peers and ports overlap in every way the API allows (a selected
// pod inside an ipBlock of the same rule, overlapping blocks, an except inside another peer's
// range, a port inside a port range, named ports), compiled for one node: the kernel must accept
// every sync, and what it enforces must be the pure evaluation. The pure suite checks the compiled
// elements and an element-level model of the datapath over many seeds; the privileged one applies
// the rulesets in a namespace and probes them with real connections.

// MARK: - The random cluster

/// A small deterministic generator (SplitMix64): a failing seed is printed and reproduces.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum OverlapWorld {
    static let node = "node1"
    /// Local pods (node1, on the lab's bridge) and two on another node (peers only).
    static let pods: [(ns: String, name: String, app: String, ip: String, node: String)] = [
        ("a", "web", "web", "10.244.1.10", "node1"), ("a", "db", "db", "10.244.1.11", "node1"),
        ("b", "web", "web", "10.244.1.12", "node1"), ("b", "db", "db", "10.244.1.13", "node1"),
        ("a", "api", "api", "10.244.2.10", "node2"), ("b", "api", "api", "10.244.2.11", "node2"),
    ]
    static let namespaces = [Namespace(name: "a", labels: ["team": "a", "env": "prod"]),
                             Namespace(name: "b", labels: ["team": "b", "env": "dev"])]
    static let blocks = ["10.244.0.0/16", "10.244.1.0/24", "10.244.1.8/29", "10.244.1.12/30", "10.244.1.10/31",
                         "10.0.0.0/8", "0.0.0.0/0", "10.244.2.0/24"]
    static let excepts = ["10.244.1.11/32", "10.244.1.12/31", "10.244.2.0/24", "10.244.1.8/30", "10.244.1.0/24"]

    /// `http` is TCP 80 on web pods and TCP 8080 on db pods.
    static func clusterPods() -> [Pod] {
        pods.map { p in
            Pod(metadata: ObjectMeta(name: p.name, namespace: p.ns, labels: ["app": p.app]), nodeName: p.node,
                containerPorts: [ContainerPort(name: "http", port: p.app == "db" ? 8080 : 80)],
                podIPs: [IPAddress(p.ip)!], phase: .running)
        }
    }

    static func randomPolicies(_ rng: inout SeededRandom) -> [NetworkPolicy] {
        func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }
        func count(_ max: Int) -> Int { Int(rng.next() % UInt64(max + 1)) }
        func peer() -> NetworkPolicyPeer {
            switch count(3) {
            case 0: return .selector(pods: LabelSelector(matchLabels: ["app": pick(["web", "db", "api"])]), namespaces: nil)
            case 1: return .selector(pods: nil, namespaces: pick([.everything, LabelSelector(matchLabels: ["team": pick(["a", "b"])])]))
            case 2: return .selector(pods: LabelSelector(matchLabels: ["app": pick(["web", "db"])]), namespaces: .everything)
            default:
                let cidr = CIDR(pick(blocks))!
                let holes = excepts.map { CIDR($0)! }.filter { cidr.contains($0.network) && $0.prefixLength > cidr.prefixLength }
                return .ipBlock(IPBlock(cidr: cidr, except: holes.filter { _ in rng.next() % 2 == 0 }))
            }
        }
        func port() -> NetworkPolicyPort {
            pick([NetworkPolicyPort(protocol: .tcp, port: .number(80)), NetworkPolicyPort(protocol: .tcp, port: .number(8080)),
                  NetworkPolicyPort(protocol: .tcp, port: .number(70), endPort: 90),
                  NetworkPolicyPort(protocol: .tcp, port: .number(8000), endPort: 8100),
                  NetworkPolicyPort(protocol: .tcp, port: nil), NetworkPolicyPort(protocol: .udp, port: nil),
                  NetworkPolicyPort(protocol: .tcp, port: .name("http"))])
        }
        func rules() -> [NetworkPolicyRule] {
            (0..<count(2)).map { _ in NetworkPolicyRule(peers: (0..<count(3)).map { _ in peer() }, ports: (0..<count(3)).map { _ in port() }) }
        }
        return (0..<(1 + count(4))).map { i in
            NetworkPolicy(metadata: ObjectMeta(name: "p\(i)", namespace: pick(["a", "b"])),
                          podSelector: pick([.everything, LabelSelector(matchLabels: ["app": pick(["web", "db"])])]),
                          policyTypes: pick([nil, [.ingress], [.egress], [.ingress, .egress]]), ingress: rules(), egress: rules())
        }
    }
}

/// The forward chain of `ip keel-policy` evaluated on its elements, for a new connection: the
/// source's egress group, then the destination's ingress group; a group passes when one of its
/// rules finds its id with the remote address, protocol and port in the rule set.
func policyDatapathAllows(_ ruleset: Ruleset, from source: IPv4Address, to destination: IPv4Address, proto: UInt8, port: UInt16) -> Bool {
    let t = PolicyRuleset.table
    func passes(_ side: String, pod: IPv4Address, remote: IPv4Address) -> Bool {
        guard let element = ruleset.set("\(side)-pods", in: t)?.elements.first(where: { $0.key == [.ipv4(pod)] }) else { return true }
        guard case .verdict(.jump(let group))? = element.value else { return false }
        let elements = ruleset.set("\(side)-rules", in: t)?.elements ?? []
        let marks = ruleset.rules(of: group, in: t).flatMap(\.expressions).compactMap { e -> [UInt8]? in
            if case .immediate(let bytes, _) = e { bytes } else { nil }
        }
        let key = [DataValue.ipv4(remote).bytes, DataValue.proto(IPProtocol(rawValue: proto)).bytes, DataValue.port(port).bytes]
        return marks.contains { mark in
            elements.contains { e in
                guard e.key[0].bytes == mark else { return false }
                let low = e.key.dropFirst().map(\.bytes), high = (e.keyEnd ?? e.key).dropFirst().map(\.bytes)
                return key.indices.allSatisfy { !key[$0].lexicographicallyPrecedes(low[$0]) && !high[$0].lexicographicallyPrecedes(key[$0]) }
            }
        }
    }
    return passes("egress", pod: source, remote: destination) && passes("ingress", pod: destination, remote: source)
}


// MARK: - Pure

@Suite struct PolicyOverlapPropertyTests {
    @Test func randomOverlappingPoliciesCompileToElementsTheKernelAccepts() {
        let pods = OverlapWorld.clusterPods()
        let endpoints: [(Endpoint, IPv4Address)] = pods.map { (Endpoint.pod($0)!, IPv4Address($0.podIPs[0].description)!) }
            + ["10.0.0.5", "10.244.1.200", "192.0.2.1"].map { (Endpoint.external(IPAddress($0)!), IPv4Address($0)!) }
        let checks: [(PortProtocol, UInt16)] = [(.tcp, 80), (.tcp, 85), (.tcp, 8080), (.tcp, 8050), (.tcp, 9000), (.udp, 53)]
        var seedsWithOverlaps = 0
        for seed in UInt64(1)...150 {
            var rng = SeededRandom(seed: seed)
            let input = PolicyInput(pods: pods, namespaces: OverlapWorld.namespaces, policies: OverlapWorld.randomPolicies(&rng))
            let isolated = isolation(input)
            let compiled = compiledPods(isolated, nodeName: OverlapWorld.node)
            let ruleset = PolicyRuleset.ruleset(compiled)
            #expect(PolicyRuleset.problems(compiled).isEmpty, "seed \(seed): \(PolicyRuleset.problems(compiled))")
            #expect(transaction(from: nil, to: ruleset).validationError == nil, "seed \(seed)")
            // The input does overlap (else this test proves nothing): peers of one rule that share addresses.
            let rawOverlap = isolated.flatMap { $0.ingressRules + $0.egressRules }.contains { rule in
                let ranges = rule.peers.flatMap { p -> [AddressRange] in
                    switch p {
                    case .any: [.all]
                    case .address(let a): [AddressRange(IPv4Address(a.description)!, IPv4Address(a.description)!)]
                    case .block(let c, let except): AddressRange.ranges(of: c, except: except)
                    }
                }.sorted()
                return zip(ranges, ranges.dropFirst()).contains { $1.low <= $0.high }
            }
            if rawOverlap { seedsWithOverlaps += 1 }
            var mismatches: [String] = []
            for (from, fromIP) in endpoints {
                for (to, toIP) in endpoints where fromIP != toIP {
                    let fromLocal = pods.contains { Endpoint.pod($0) == from && $0.nodeName == OverlapWorld.node }
                    let toLocal = pods.contains { Endpoint.pod($0) == to && $0.nodeName == OverlapWorld.node }
                    guard fromLocal || toLocal else { continue }   // only this node's pods are programmed here
                    for (proto, port) in checks {
                        let verdict = evaluate(Flow(from: from, to: to, proto, port: port), in: input)
                        // A remote pod's own side is enforced on its node: compare this node's side(s).
                        let want = (!fromLocal || verdict.egress.allows) && (!toLocal || verdict.ingress.allows)
                        let got = policyDatapathAllows(ruleset, from: fromIP, to: toIP, proto: proto.number, port: port)
                        if got != want { mismatches.append("\(from) -> \(to) \(proto)/\(port): datapath \(got), evaluation \(want)") }
                    }
                }
            }
            #expect(mismatches.isEmpty, "seed \(seed): \(mismatches.prefix(5).joined(separator: "\n"))")
        }
        #expect(seedsWithOverlaps >= 50, "the generator produces overlapping peers (\(seedsWithOverlaps) of 150 seeds)")
    }
}

/// The policy sync's incremental transactions against the in-memory kernel: over random sequences
/// of policy sets, every sync is accepted, the kernel's table equals a full render of that state,
/// and after the first sync no transaction re-creates the table.
@Suite struct PolicySyncInMemoryTests {
    @Test func incrementalSyncsEqualFullRenders() throws {
        let pods = OverlapWorld.clusterPods()
        for sequence in UInt64(1)...20 {
            let kernel = InMemoryNFTablesKernel()
            let sync = PolicySync(nft: kernel, logger: Logger(label: "test"))
            var rng = SeededRandom(seed: 7_000 + sequence)
            for step in 0..<8 {
                let input = PolicyInput(pods: pods, namespaces: OverlapWorld.namespaces, policies: OverlapWorld.randomPolicies(&rng))
                let compiled = compiledPods(isolation(input), nodeName: OverlapWorld.node)
                let refused = try sync.apply(compiled)
                #expect(refused.isEmpty, "sequence \(sequence) step \(step): \(refused)")
                #expect(try kernel.table(named: "keel-policy", family: .ip) == PolicyRuleset.ruleset(compiled),
                        "sequence \(sequence) step \(step): the kernel holds the full render")
            }
            let recreations = kernel.applied.dropFirst().filter { $0.operations.contains { if case .deleteTable = $0 { true } else { false } } }
            #expect(recreations.isEmpty, "sequence \(sequence): later syncs are incremental")
        }
    }
}

// MARK: - Real kernel, real connections

/// The node of `OverlapWorld` in a namespace: its four local pods on one bridge (br_netfilter on),
/// each answering TCP 80 and 8080 with its name.
private final class OverlapLab: @unchecked Sendable {
    let node: LabNamespace
    let nft: NFTablesSocket
    var pods: [(pod: Pod, netns: LabNamespace, ip: IPv4Address)] = []
    private var servers: [BannerServer] = []

    init(_ lab: NetnsLab) throws {
        node = try lab.namespace("ovl-node")
        let bridge = try node.route.createLink(LinkSpec(name: "kbr0", kind: .bridge, up: true))
        try node.route.addAddress(.withBroadcast(linkIndex: bridge.index, cidr: CIDR("10.244.1.1/24")!))
        try node.sysctl("net.bridge.bridge-nf-call-iptables", "1")
        for (i, pod) in OverlapWorld.clusterPods().enumerated() where pod.nodeName == OverlapWorld.node {
            let netns = try lab.namespace("ovl-p\(i)")
            let ip = IPv4Address(pod.podIPs[0].description)!
            let (host, _) = try connect(node, InterfaceName("kp\(i)")!, nil, to: netns, "eth0", CIDR(.v4(ip), prefixLength: 24))
            try node.route.setMaster(.index(host.index), bridge.index)
            for port: UInt16 in [80, 8080] { servers.append(try BannerServer(in: netns, address: .v4(ip), port: port, banner: "\(pod.name)@\(pod.namespace):\(port)")) }
            pods.append((pod, netns, ip))
        }
        nft = try node.run { try NFTablesSocket() }
    }

    deinit { servers.forEach { $0.stop() } }

    /// Every ordered pair of local pods on TCP 80 and 8080, probed at once: what differs from `expected`.
    func mismatches(_ expected: (Pod, Pod, UInt16) -> Bool) -> [String] {
        var cases: [(from: Int, to: Int, port: UInt16, want: Bool)] = []
        for a in pods.indices {
            for b in pods.indices where a != b {
                for port: UInt16 in [80, 8080] { cases.append((a, b, port, expected(pods[a].pod, pods[b].pod, port))) }
            }
        }
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var lines: [String] = []
        }
        let seen = Seen(), group = DispatchGroup()
        for c in cases {
            group.enter()
            Thread { [self] in
                let (from, to) = (pods[c.from], pods[c.to])
                let outcome = try? TrafficProbe.tcpConnect(from: from.netns, to: .v4(to.ip), port: c.port, timeoutMilliseconds: 600)
                let ok = c.want ? outcome?.reply == "\(to.pod.name)@\(to.pod.namespace):\(c.port)" : outcome == .timedOut
                if !ok {
                    seen.lock.withLock { seen.lines.append("\(from.pod.namespace)/\(from.pod.name) -> \(to.pod.namespace)/\(to.pod.name):\(c.port): "
                                                          + "expected \(c.want ? "answer" : "silence"), got \(String(describing: outcome))") }
                }
                group.leave()
            }.start()
        }
        group.wait()
        return seen.lines.sorted()
    }
}

/// Refuses, like the kernel refusing overlapping elements (EEXIST), every transaction that adds an
/// element of a rule whose id is in `refused`; everything else goes to the real kernel.
private final class RefusingKernel: NFTablesKernel, @unchecked Sendable {
    let real: NFTablesSocket
    let lock = NSLock()
    var refused: Set<[UInt8]> = []
    /// Whether the refusal names the operation (as an element the kernel refuses does), or not (as
    /// a refusal at commit time would not).
    let namesOperation: Bool
    init(_ real: NFTablesSocket, namesOperation: Bool) {
        self.real = real
        self.namesOperation = namesOperation
    }

    private func refusal(_ tx: Transaction) -> NFTablesError? {
        let refused = lock.withLock { self.refused }
        for (i, op) in tx.operations.enumerated() {
            let elements: [SetElement] = switch op {
            case .addElements(_, let e): e
            case .addSet(let set): Array(set.elements)
            default: []
            }
            if elements.contains(where: { refused.contains($0.key[0].bytes) }) {
                return NFTablesError(operation: "\(op)", operationIndex: namesOperation ? i : nil, errno: .fileExists, kernelMessage: "injected")
            }
        }
        return nil
    }
    func apply(_ tx: Transaction) throws(NFTablesError) {
        if let e = refusal(tx) { throw e }
        try real.apply(tx)
    }
    func check(_ tx: Transaction) throws(NFTablesError) {
        if let e = refusal(tx) { throw e }
        try real.check(tx)
    }
    func table(named name: String, family: TableFamily) throws(NFTablesError) -> Ruleset? { try real.table(named: name, family: family) }
}

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct PolicyOverlapKernelTests {
    /// Random overlapping policies, one sync after another (incremental transactions): the kernel
    /// takes every sync, holds exactly the rendered table, and real connections follow the evaluation.
    @Test func randomOverlappingPoliciesAreAcceptedAndEnforced() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let l = try OverlapLab(lab)
            let sync = PolicySync(nft: l.nft, logger: Logger(label: "test"))
            let clusterPods = OverlapWorld.clusterPods()
            var nonTrivial = 0
            for seed in UInt64(1001)...1010 {
                var rng = SeededRandom(seed: seed)
                let input = PolicyInput(pods: clusterPods, namespaces: OverlapWorld.namespaces, policies: OverlapWorld.randomPolicies(&rng))
                let compiled = compiledPods(isolation(input), nodeName: OverlapWorld.node)
                let refused = try sync.apply(compiled)
                #expect(refused.isEmpty, "seed \(seed): the kernel accepted every policy: \(refused)")
                #expect(try l.nft.table(named: "keel-policy", family: .ip) == PolicyRuleset.ruleset(compiled), "seed \(seed)")
                var allowed = 0, denied = 0
                let wrong = l.mismatches { from, to, port in
                    let ok = evaluate(Flow(from: Endpoint.pod(from)!, to: Endpoint.pod(to)!, .tcp, port: port), in: input).allowed
                    if ok { allowed += 1 } else { denied += 1 }
                    return ok
                }
                if allowed > 0 && denied > 0 { nonTrivial += 1 }
                #expect(wrong.isEmpty, "seed \(seed): \(wrong.count) of 24 connections differ:\n\(wrong.joined(separator: "\n"))")
            }
            #expect(nonTrivial >= 3, "some rounds both allow and deny (\(nonTrivial) of 10)")
        }
    }

    /// `check` (a batch without its END message) reports what the kernel refuses and changes nothing.
    @Test func checkReportsARefusalAndChangesNothing() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let l = try OverlapLab(lab)
            let pods = [CompiledPod(name: "a/web", address: IPv4Address(10, 244, 1, 10), ingress: [], egress: nil)]
            let desired = PolicyRuleset.ruleset(pods)
            try l.nft.check(transaction(from: nil, to: desired))
            #expect(try l.nft.table(named: "keel-policy", family: .ip) == nil, "a check creates nothing")
            try l.nft.apply(transaction(from: nil, to: desired))
            // Two overlapping elements of one id, written by hand: the kernel refuses the second.
            let set = desired.set("ingress-rules", in: PolicyRuleset.table)!
            func element(_ lo: IPv4Address, _ hi: IPv4Address) -> SetElement {
                SetElement([.mark(7), .ipv4(lo), .proto(IPProtocol(rawValue: 6)), .port(80)], to: [.mark(7), .ipv4(hi), .proto(IPProtocol(rawValue: 6)), .port(80)])
            }
            var bad = Transaction()
            bad.add(elements: [element(IPv4Address(10, 0, 0, 0), IPv4Address(10, 0, 255, 255))], to: set)
            bad.add(elements: [element(IPv4Address(10, 0, 1, 7), IPv4Address(10, 0, 1, 7))], to: set)
            #expect(throws: NFTablesError.self) { try l.nft.check(bad) }
            do { try l.nft.check(bad) } catch let error as NFTablesError { #expect(error.operationIndex == 1 && error.isAlreadyExists, "\(error)") }
            #expect(try l.nft.table(named: "keel-policy", family: .ip) == desired, "a refused check changes nothing")
            var good = Transaction()
            good.add(elements: [element(IPv4Address(10, 0, 0, 0), IPv4Address(10, 0, 255, 255))], to: set)
            try l.nft.check(good)
            #expect(try l.nft.table(named: "keel-policy", family: .ip) == desired, "an accepted check changes nothing either")
        }
    }

    /// One policy the kernel refuses: everything else is programmed (a default deny added in the
    /// same sync included), the pods it selects allow nothing on its side, and once the kernel takes
    /// it again the next sync programs it. The culprit is found from the operation the kernel names,
    /// or, when it names none, by bisection.
    @Test(arguments: [true, false])
    func aRefusedPolicyIsContainedAndItsPodsFailClosed(namesOperation: Bool) throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let l = try OverlapLab(lab)
            let kernel = RefusingKernel(l.nft, namesOperation: namesOperation)
            let sync = PolicySync(nft: kernel, logger: Logger(label: "test"))
            func policy(_ ns: String, _ name: String, _ app: String, ingress: [NetworkPolicyRule]) -> NetworkPolicy {
                NetworkPolicy(metadata: ObjectMeta(name: name, namespace: ns), podSelector: LabelSelector(matchLabels: ["app": app]),
                              policyTypes: [.ingress], ingress: ingress)
            }
            let everyone = NetworkPolicyRule(peers: [.ipBlock(IPBlock(cidr: CIDR("10.244.0.0/16")!))])
            let fromADB = NetworkPolicyRule(peers: [.selector(pods: LabelSelector(matchLabels: ["app": "db"]), namespaces: LabelSelector(matchLabels: ["team": "a"]))])
            let policies = [policy("a", "bad", "web", ingress: [everyone]),        // a/web open to everyone, refused
                            policy("b", "good", "web", ingress: [fromADB]),        // b/web admits a/db
                            policy("b", "deny", "db", ingress: [])]                // b/db: default deny
            let input = PolicyInput(pods: OverlapWorld.clusterPods(), namespaces: OverlapWorld.namespaces, policies: policies)
            let compiled = compiledPods(isolation(input), nodeName: OverlapWorld.node)
            let bad = ObjectKey(kind: .networkPolicy, namespace: "a", name: "bad")
            kernel.lock.withLock {
                kernel.refused = Set(compiled.flatMap { $0.ingress ?? [] }.filter { $0.policy == bad }.map { DataValue.mark($0.id).bytes })
            }
            #expect(!kernel.refused.isEmpty)

            let refused = try sync.apply(compiled)
            #expect(refused.map(\.policy) == [bad], "\(refused)")
            #expect(refused.first?.reason.contains("File exists") ?? false || refused.first?.reason.contains("injected") ?? false, "\(refused)")
            let contained = { (from: Pod, to: Pod, port: UInt16) -> Bool in
                if to.namespace == "a" && to.name == "web" { return false }               // fails closed
                return evaluate(Flow(from: Endpoint.pod(from)!, to: Endpoint.pod(to)!, .tcp, port: port), in: input).allowed
            }
            let wrong = l.mismatches(contained)
            #expect(wrong.isEmpty, "contained: \(wrong.joined(separator: "\n"))")

            // The kernel takes it again: the next sync programs it.
            kernel.lock.withLock { kernel.refused = [] }
            #expect(try sync.apply(compiled).isEmpty)
            let healed = l.mismatches { from, to, port in evaluate(Flow(from: Endpoint.pod(from)!, to: Endpoint.pod(to)!, .tcp, port: port), in: input).allowed }
            #expect(healed.isEmpty, "after the retry: \(healed.joined(separator: "\n"))")
        }
    }
}
