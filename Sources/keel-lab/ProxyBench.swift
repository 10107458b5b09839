import Glibc
import Logging
import NFTables
import NetAddress
import Netlink
import NetnsHarness
import ServiceProxy

/// `bench proxy`: the service proxy's sync against the kernel, side by side with `nft -f` loading
/// the same Keel layout (the floor: the kernel's share plus nft's parsing) and kube-proxy's layout
/// for the same objects (the reference), then first-connection latency to the first and the last
/// service. Every measurement starts in a fresh namespace.
struct ProxyBench {
    let lab: NetnsLab
    let sizes: [Int]
    let endpointsPerService: Int
    let runs: Int
    /// Seconds a kube-proxy layout load may take; larger sizes are skipped once one would exceed it.
    let referenceCap: Double
    let connects: Int

    /// The objects: `SyntheticServices` (shared with `bench ipvs`).
    static let clusterCIDR = SyntheticServices.clusterCIDR

    // MARK: - Run

    struct SizeResult {
        var size: Int
        var keelTotal: Double, keelRender: Double, keelDiff: Double, keelKernel: Double, ops: Int
        var floor: Double
        var reference: Double?          // nil: skipped
        var referenceEstimate: Double?  // when skipped: the quadratic extrapolation that exceeded the cap
    }

    func run() throws {
        var results: [SizeResult] = []
        var referenceLoaded: (size: Int, seconds: Double)?
        var referenceStopped = false
        for size in sizes {
            let state = SyntheticServices.state(count: size, endpoints: endpointsPerService, backend: SyntheticServices.backend)
            var r = try keelFullSync(state, label: "k\(size)")
            r.floor = try median((0..<runs).map { run in try nftLoad(KeelLayoutText.script(state), label: "f\(size)-\(run)") })
            if !referenceStopped, let last = referenceLoaded {
                let estimate = last.seconds * Double(size * size) / Double(last.size * last.size)
                if estimate > referenceCap { referenceStopped = true; r.referenceEstimate = estimate }
            }
            if !referenceStopped {
                let seconds = try nftLoad(KubeProxyLayoutText.script(state), label: "r\(size)")
                r.reference = seconds
                referenceLoaded = (size, seconds)
                if seconds > referenceCap { referenceStopped = true }
            }
            results.append(r)
            lab.removeAll()
            print("  \(size) services: Keel \(ms(r.keelTotal)), nft -f Keel layout \(ms(r.floor)), kube-proxy layout "
                  + (r.reference.map(ms) ?? "skipped"))
            fflush(nil)   // progress lines show while the larger sizes run
        }
        let largest = sizes.max()!
        let changes = try incremental(size: largest, referenceSize: referenceLoaded?.size)
        lab.removeAll()
        let latency = try latencies(size: largest, referenceSize: referenceLoaded?.size)
        lab.removeAll()
        print(rendered(results, changes, latency))
    }

    // MARK: - Full sync

    /// Rendering, diff against nothing and the kernel batch, in a fresh namespace; medians of `runs`.
    func keelFullSync(_ state: ProxyState, label: String) throws -> SizeResult {
        var render: [Double] = [], diff: [Double] = [], kernel: [Double] = [], ops = 0
        for run in 0..<runs {
            let ns = try lab.namespace("\(label)-\(run)")
            let nft = try ns.run { try NFTablesSocket() }
            var ruleset = Ruleset(), tx = Transaction()
            render.append(Stopwatch.measure { ruleset = ServiceRuleset.ruleset(state) })
            diff.append(Stopwatch.measure { tx = transaction(from: nil, to: ruleset) })
            kernel.append(try Stopwatch.measure { try nft.apply(tx) })
            ops = tx.operations.count
            if run == 0 { try verifyKeel(nft, state: state, expected: ruleset) }
            try? NetworkNamespace.delete(named: ns.name)   // frees the table now; removeAll() ignores it later
        }
        let totals = (0..<runs).map { render[$0] + diff[$0] + kernel[$0] }
        return SizeResult(size: state.services.count, keelTotal: median(totals), keelRender: median(render), keelDiff: median(diff),
                          keelKernel: median(kernel), ops: ops, floor: 0)
    }

    /// The kernel holds what Keel rendered: chain, rule and element counts read back.
    func verifyKeel(_ nft: NFTablesSocket, state: ProxyState, expected: Ruleset) throws {
        func shape(_ r: Ruleset) -> [String] {
            ["\(r.chains.count) chains", "\(r.rules.count) rules"] + r.sets.map { "\($0.name): \($0.elements.count)" }.sorted()
        }
        // A dump of a hash set right after a large insert can miss elements while the kernel's
        // rhashtable is still resizing (the walk restarts and the dump skips by count); read again
        // before calling the table wrong.
        var last: [String] = []
        for attempt in 0..<10 {
            guard let got = try nft.table(named: ServiceRuleset.table.name, family: .ip) else {
                throw ProcessError(command: ["bench proxy"], reason: "table keel-proxy missing after the full sync")
            }
            last = shape(got)
            if last == shape(expected) {
                if attempt > 0 { print("  (read-back complete after \(attempt + 1) dumps)") }
                return
            }
            usleep(300_000)
        }
        throw ProcessError(command: ["bench proxy"], reason: "kernel table differs: \(last) vs \(shape(expected))")
    }

    /// `nft -f` of `script` in a fresh namespace; the time includes nft's start and parsing.
    func nftLoad(_ script: String, label: String) throws -> Double {
        let ns = try lab.namespace(label)
        let path = try writeTemp(script, label)
        defer { unlink(path) }
        let t = try Stopwatch.measure { try ns.check(["nft", "-f", path]) }
        try? NetworkNamespace.delete(named: ns.name)
        return t
    }

    func writeTemp(_ text: String, _ label: String) throws -> String {
        let path = "/tmp/keel-bench-\(getpid())-\(label).nft"
        guard let f = fopen(path, "w") else { throw ProcessError(command: ["write \(path)"], reason: "fopen failed") }
        fputs(text, f)
        fclose(f)
        return path
    }

    // MARK: - Incremental changes at the largest size

    struct Change {
        var work: String
        var total: Double, render: Double, diff: Double, kernel: Double, ops: Int
        var nftCLI: Double
        var reference: Double?
        var referenceSize: Int?
    }

    func incremental(size: Int, referenceSize: Int?) throws -> [Change] {
        let base = SyntheticServices.state(count: size, endpoints: endpointsPerService, backend: SyntheticServices.backend)
        // The states, before any clock runs: the controller hands the data plane a finished ProxyState.
        var states = [base] + SyntheticServices.endpointMoves(from: base, count: runs, endpoints: endpointsPerService)
        for r in 0..<runs {
            var s = states.last!
            let added = SyntheticServices.service(size + r, endpoints: endpointsPerService, backend: SyntheticServices.backend)
            s = ProxyState(services: s.services + [added], clusterCIDR: Self.clusterCIDR)
            states.append(s)
        }

        // Keel through its data plane (what keeld runs), in one namespace.
        let dpNS = try lab.namespace("inc-dp")
        let dataplane = NFTablesServiceDataplane(nft: try dpNS.run { try NFTablesSocket() }, conntrack: nil,
                                                 logger: Logger(label: "bench.proxy"))
        try dataplane.apply(base)
        var dpTimes: [Double] = [], dpOps: [Int] = []
        for s in states.dropFirst() {
            dpTimes.append(try Stopwatch.measure { try dataplane.apply(s) })
            dpOps.append(dataplane.lastTransaction?.operations.count ?? 0)
        }
        // The same steps one by one, to see where the time goes.
        let pNS = try lab.namespace("inc-profile")
        let pnft = try pNS.run { try NFTablesSocket() }
        var applied = ServiceRuleset.ruleset(base)
        try pnft.apply(transaction(from: nil, to: applied))
        var render: [Double] = [], diff: [Double] = [], kernel: [Double] = []
        for s in states.dropFirst() {
            var desired = Ruleset(), tx = Transaction()
            render.append(Stopwatch.measure { desired = ServiceRuleset.ruleset(s) })
            diff.append(Stopwatch.measure { tx = transaction(from: applied, to: desired) })
            kernel.append(try Stopwatch.measure { try pnft.apply(tx) })
            applied = desired
        }

        // The nft CLI making the same changes in a table it loaded.
        let fNS = try lab.namespace("inc-nft")
        let loadPath = try writeTemp(KeelLayoutText.script(base), "inc-floor")
        defer { unlink(loadPath) }
        try fNS.check(["nft", "-f", loadPath])
        var cli: [Double] = []
        for (n, pair) in zip(states, states.dropFirst()).enumerated() {
            let script = KeelLayoutText.changeScript(from: pair.0, to: pair.1)
            let path = try writeTemp(script, "inc-cli-\(n)")
            defer { unlink(path) }
            cli.append(try Stopwatch.measure { try fNS.check(["nft", "-f", path]) })
        }
        try verifyFloor(fNS, expected: applied)

        // kube-proxy's layout, at the largest size it loaded within the cap.
        var reference: [Double] = []
        var referenceStates: [ProxyState] = []
        if let rs = referenceSize {
            let rNS = try lab.namespace("inc-ref")
            let rbase = SyntheticServices.state(count: rs, endpoints: endpointsPerService, backend: SyntheticServices.backend)
            let path = try writeTemp(KubeProxyLayoutText.script(rbase), "inc-ref")
            defer { unlink(path) }
            try rNS.check(["nft", "-f", path])
            referenceStates = [rbase] + SyntheticServices.endpointMoves(from: rbase, count: runs, endpoints: endpointsPerService)
            for r in 0..<runs {
                let added = SyntheticServices.service(rs + r, endpoints: endpointsPerService, backend: SyntheticServices.backend)
                referenceStates.append(ProxyState(services: referenceStates.last!.services + [added], clusterCIDR: Self.clusterCIDR))
            }
            for (n, pair) in zip(referenceStates, referenceStates.dropFirst()).enumerated() {
                let path = try writeTemp(KubeProxyLayoutText.changeScript(from: pair.0, to: pair.1), "inc-ref-\(n)")
                defer { unlink(path) }
                reference.append(try Stopwatch.measure { try rNS.check(["nft", "-f", path]) })
            }
        }

        func change(_ work: String, _ range: Range<Int>) -> Change {
            Change(work: work, total: median(Array(dpTimes[range])), render: median(Array(render[range])), diff: median(Array(diff[range])),
                   kernel: median(Array(kernel[range])), ops: dpOps[range].max()!, nftCLI: median(Array(cli[range])),
                   reference: reference.isEmpty ? nil : median(Array(reference[range])), referenceSize: referenceSize)
        }
        return [change("one endpoint changed at \(size)", 0..<runs), change("one service added at \(size)", runs..<(2 * runs))]
    }

    /// The nft-loaded table, after the CLI changes, holds the same elements as Keel's final ruleset.
    func verifyFloor(_ ns: LabNamespace, expected: Ruleset) throws {
        let nft = try ns.run { try NFTablesSocket() }
        guard let got = try nft.table(named: ServiceRuleset.table.name, family: .ip) else {
            throw ProcessError(command: ["bench proxy"], reason: "nft-loaded table missing")
        }
        func counts(_ r: Ruleset) -> [String] {
            ["\(r.chains.count) chains", "\(r.rules.count) rules"] + r.sets.map { "\($0.name): \($0.elements.count)" }.sorted()
        }
        guard counts(got) == counts(expected) else {
            throw ProcessError(command: ["bench proxy"], reason: "nft-loaded table differs from Keel's: \(counts(got)) vs \(counts(expected))")
        }
    }

    // MARK: - First-connection latency

    struct Latency { var layout: String; var size: Int; var first: [Double]; var last: [Double] }

    /// client — node (the proxy's ruleset) — backends; every service's 10 endpoints are the 10 real
    /// banner servers, so each connect crosses the ruleset, a DNAT and a real TCP handshake.
    func latencies(size: Int, referenceSize: Int?) throws -> [Latency] {
        let client = try lab.namespace("lat-client"), node = try lab.namespace("lat-node")
        try connect(client, "eth0", CIDR("192.168.99.2/24"), to: node, "c0", CIDR("192.168.99.1/24"))
        try client.route.addRoute(Route(destination: CIDR("0.0.0.0/0")!, gateway: IPAddress("192.168.99.1")))
        try node.sysctl("net.ipv4.ip_forward", "1")
        var servers: [BannerServer] = []
        defer { servers.forEach { $0.stop() } }
        var real: [IPAddress] = []
        for k in 1...min(endpointsPerService, 10) {
            let ns = try lab.namespace("lat-b\(k)")
            let ip = IPAddress("10.244.\(k).2")!
            try connect(node, InterfaceName("b\(k)")!, CIDR("10.244.\(k).1/24"), to: ns, "eth0", CIDR(ip, prefixLength: 24))
            try ns.route.addRoute(Route(destination: CIDR("0.0.0.0/0")!, gateway: IPAddress("10.244.\(k).1")))
            servers.append(try BannerServer(in: ns, address: ip, port: 8080, banner: "\(ip)"))
            real.append(ip)
        }
        try node.route.addRoute(Route(destination: CIDR("10.96.0.0/12")!, device: try node.route.link("b1").index))
        let realBackend = { (_: Int, j: Int) in Backend(real[j % real.count], 8080) }

        var out: [Latency] = []
        let nft = try node.run { try NFTablesSocket() }
        let keelState = SyntheticServices.state(count: size, endpoints: endpointsPerService, backend: realBackend)
        try nft.apply(transaction(from: nil, to: ServiceRuleset.ruleset(keelState)))
        out.append(try measureConnects(client, layout: "Keel", size: size))
        var tx = Transaction()
        tx.delete(ServiceRuleset.table)
        try nft.apply(tx)

        if let rs = referenceSize {
            let path = try writeTemp(KubeProxyLayoutText.script(SyntheticServices.state(count: rs, endpoints: endpointsPerService, backend: realBackend)), "lat-ref")
            defer { unlink(path) }
            try node.check(["nft", "-f", path])
            out.append(try measureConnects(client, layout: "kube-proxy", size: rs))
        }
        return out
    }

    /// `connects` handshakes each to the first and the last service, interleaved; the first few are
    /// warm-up (neighbour resolution on the node). Each connect is a new conntrack entry, so every
    /// one walks the NAT rules: first-packet latency, not a cached flow.
    func measureConnects(_ client: LabNamespace, layout: String, size: Int) throws -> Latency {
        let first = SyntheticServices.vip(0), last = SyntheticServices.vip(size - 1)
        for vip in [first, last] {
            let outcome = try TrafficProbe.tcpConnect(from: client, to: vip, port: 80)
            guard outcome.reply?.hasPrefix("10.244.") == true else {
                throw ProcessError(command: ["bench proxy latency"], reason: "\(layout): \(vip):80 → \(outcome)")
            }
        }
        let samples = try client.run { () throws -> ([Double], [Double]) in
            var a: [Double] = [], b: [Double] = []
            for n in 0..<(connects + 10) {
                let ta = try handshake(first), tb = try handshake(last)
                if n >= 10 { a.append(ta); b.append(tb) }
            }
            return (a, b)
        }
        return Latency(layout: layout, size: size, first: samples.0, last: samples.1)
    }

    /// Seconds from connect() to the socket being writable (SYN, DNAT, SYN-ACK); on the calling
    /// thread, which is inside the client namespace.
    func handshake(_ address: IPAddress) throws -> Double {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ProcessError(command: ["socket"], reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        guard case .v4(let a) = address else { throw ProcessError(command: ["connect"], reason: "IPv4 only") }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = UInt16(80).bigEndian
        sin.sin_addr.s_addr = a.value.bigEndian
        let w = Stopwatch()
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 && errno != EINPROGRESS { throw ProcessError(command: ["connect \(address)"], reason: String(cString: strerror(errno))) }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&p, 1, 2000) == 1 else { throw ProcessError(command: ["connect \(address)"], reason: "timed out") }
        let t = w.elapsed
        var soError: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
        guard soError == 0 else { throw ProcessError(command: ["connect \(address)"], reason: String(cString: strerror(soError))) }
        return t
    }

    // MARK: - Table

    func ms(_ s: Double) -> String { s >= 10 ? "\(format2(s)) s" : "\(format2(s * 1000)) ms" }

    func rendered(_ sizes: [SizeResult], _ changes: [Change], _ latency: [Latency]) -> String {
        var out = "\nproxy: ClusterIP TCP services × \(endpointsPerService) endpoints; Keel = render + diff + one netlink batch; medians of \(runs) runs\n"
        out += "\(pad("work", 34)) \(pad("Keel sync", 11)) \(pad("kernel", 11)) \(pad("ops", 8)) \(pad("nft -f Keel", 13)) \(pad("nft -f kube-proxy", 19)) kube-proxy/Keel\n"
        out += String(repeating: "-", count: 115) + "\n"
        for r in sizes {
            let ref = r.reference.map(ms) ?? "> cap (skipped)"
            let ratio = r.reference.map { "\(format2($0 / r.keelTotal))x" } ?? (r.referenceEstimate.map { "est. \(format2($0)) s" } ?? "")
            out += "\(pad("full sync \(r.size) services", 34)) \(pad(ms(r.keelTotal), 11)) \(pad(ms(r.keelKernel), 11)) \(pad("\(r.ops)", 8)) "
                + "\(pad(ms(r.floor), 13)) \(pad(ref, 19)) \(ratio)\n"
        }
        if let a = sizes.first, let b = sizes.last, b.size > a.size {
            let f = Double(b.size) / Double(a.size)
            out += "\(pad("growth \(a.size) → \(b.size) (×\(format2(f)))", 34)) \(pad("×\(format2(b.keelTotal / a.keelTotal))", 11)) "
                + "\(pad("×\(format2(b.keelKernel / a.keelKernel))", 11)) \(pad("", 8)) \(pad("×\(format2(b.floor / a.floor))", 13)) "
                + (b.reference.flatMap { r in a.reference.map { "×\(format2(r / $0))" } } ?? "") + "\n"
        }
        for c in changes {
            let ref = c.reference.map { "\(ms($0)) (at \(c.referenceSize!))" } ?? "not loaded"
            out += "\(pad(c.work, 34)) \(pad(ms(c.total), 11)) \(pad(ms(c.kernel), 11)) \(pad("\(c.ops)", 8)) \(pad(ms(c.nftCLI), 13)) \(ref)\n"
        }
        out += "\nwhere Keel's time goes (medians): render / diff / kernel batch\n"
        for r in sizes { out += "  full sync \(r.size): \(ms(r.keelRender)) / \(ms(r.keelDiff)) / \(ms(r.keelKernel))\n" }
        for c in changes { out += "  \(c.work): \(ms(c.render)) / \(ms(c.diff)) / \(ms(c.kernel)) (data plane total \(ms(c.total)))\n" }
        out += "\nfirst-connection latency: TCP handshake through the node's ruleset, \(connects) connects per service\n"
        out += "\(pad("layout", 26)) \(pad("1st p50", 10)) \(pad("1st p99", 10)) \(pad("last p50", 10)) \(pad("last p99", 10))\n"
        for l in latency {
            func us(_ v: Double) -> String { pad("\(Int((v * 1e6).rounded())) µs", 10) }
            out += "\(pad("\(l.layout) (\(l.size) services)", 26)) \(us(percentile(l.first, 0.5))) \(us(percentile(l.first, 0.99))) "
                + "\(us(percentile(l.last, 0.5))) \(us(percentile(l.last, 0.99)))\n"
        }
        out += "goals: 10K full sync ≤ 2 s, linear growth; one endpoint change at 10K ≤ 20 ms; latency flat across the service count\n"
        return out
    }
}

// MARK: - nft text of the two layouts

/// Keel's layout (ServiceRuleset, ClusterIP services with a cluster CIDR) as `nft -f` commands.
///
/// Forced differences, same kernel objects otherwise: nft needs `meta l4proto tcp` before a dnat
/// with a port, and `reject` is a keyword it will not take as a chain name.
enum KeelLayoutText {
    static let t = "ip keel-proxy"
    static let rejectChain = "no-endpoint-reject"

    /// The shared selector chain of a ClusterIP service (`svc-<backends>`).
    static func chain(_ s: ServicePortState) -> String { "svc-\(s.internalBackends.count)" }

    static func script(_ state: ProxyState) -> String {
        let key3 = "ip daddr . meta l4proto . th dport"
        var l = ["add table \(t)"]
        for (name, spec) in [("prerouting", "nat hook prerouting priority dstnat"), ("output", "nat hook output priority -100"),
                             ("postrouting", "nat hook postrouting priority srcnat"), ("firewall", "filter hook prerouting priority -110"),
                             ("filter-input", "filter hook input priority -10"), ("filter-forward", "filter hook forward priority -10"),
                             ("filter-output", "filter hook output priority -10")] {
            l.append("add chain \(t) \(name) { type \(spec) ; policy accept ; }")
        }
        l += ["add chain \(t) services", "add chain \(t) \(rejectChain)"]
        let counts = Set(state.services.map(\.internalBackends.count).filter { $0 > 0 }).sorted()
        for n in counts { l.append("add chain \(t) svc-\(n)") }
        l += [
            "add map \(t) service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }",
            "add map \(t) service-nodeports { type inet_proto . inet_service : verdict ; }",
            "add set \(t) nodeport-ips { type ipv4_addr ; }",
            "add map \(t) no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; }",
            "add map \(t) no-endpoint-nodeports { type inet_proto . inet_service : verdict ; }",
            "add map \(t) endpoints { typeof ip daddr . meta l4proto . th dport . numgen random mod 2 : ip daddr . th dport ; }",
            "add map \(t) nodeport-endpoints { typeof meta l4proto . th dport . numgen random mod 2 : ip daddr . th dport ; }",
            "add map \(t) affinity { type ipv4_addr . ipv4_addr . inet_proto . inet_service : mark ; flags dynamic,timeout ; size 65535 ; }",
            "add set \(t) hairpin { type ipv4_addr . ipv4_addr ; }",
            "add set \(t) lb-restricted { type ipv4_addr . inet_proto . inet_service ; }",
            "add set \(t) lb-allowed { type ipv4_addr . inet_proto . inet_service . ipv4_addr ; flags interval ; }",
        ]
        // One `add element` per set: nft evaluates each command on its own, and thousands of small
        // ones cost it O(n²) in user space, which is nft's problem, not the kernel's.
        var bySet: [String: [String]] = [:]
        var hairpin = Set<String>()
        for s in state.services {
            for e in entries(s) { bySet[e.set, default: []].append(e.entry) }
            for b in s.internalBackends { hairpin.insert("\(b.address) . \(b.address)") }
        }
        bySet["hairpin"] = hairpin.sorted()
        for (set, list) in bySet.sorted(by: { $0.key < $1.key }) where !list.isEmpty {
            l.append("add element \(t) \(set) { \(list.joined(separator: ", ")) }")
        }
        l += [
            "add rule \(t) prerouting jump services",
            "add rule \(t) output jump services",
            "add rule \(t) services \(key3) vmap @service-ips",
            "add rule \(t) services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
            "add rule \(t) firewall \(key3) @lb-restricted \(key3) . ip saddr != @lb-allowed drop",
            "add rule \(t) postrouting ip saddr . ip daddr @hairpin masquerade",
            "add rule \(t) postrouting meta mark & 0x00004000 != 0 masquerade",
            "add rule \(t) \(rejectChain) reject with icmp type port-unreachable",
        ]
        for c in ["filter-input", "filter-forward", "filter-output"] { l.append("add rule \(t) \(c) ct state new \(key3) vmap @no-endpoint-services") }
        l.append("add rule \(t) filter-input ct state new ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports")
        for n in counts { l += rules(count: n) }
        return l.joined(separator: "\n") + "\n"
    }

    static func entries(_ s: ServicePortState) -> [(set: String, entry: String)] {
        guard !s.internalBackends.isEmpty else {
            return s.clusterIPs.map { ("no-endpoint-services", "\($0) . tcp . \(s.port) : goto \(rejectChain)") }
        }
        return s.clusterIPs.map { ("service-ips", "\($0) . tcp . \(s.port) : goto \(chain(s))") }
            + s.clusterIPs.flatMap { vip in s.internalBackends.enumerated().map {
                ("endpoints", "\(vip) . tcp . \(s.port) . \($0.offset) : \($0.element.address) . \($0.element.port)") } }
    }

    /// The rules of the shared selector chain for services with `count` backends (nft needs
    /// `meta l4proto tcp` before a dnat with a port).
    static func rules(count n: Int) -> [String] {
        ["add rule \(t) svc-\(n) ip saddr != \(ProxyBench.clusterCIDR) meta mark set meta mark | 0x00004000",
         "add rule \(t) svc-\(n) meta l4proto tcp dnat ip to ip daddr . meta l4proto . th dport . numgen random mod \(n) map @endpoints"]
    }

    /// What an nft user would write for the same change: element deletes and adds (and a shared
    /// chain for a backend count not seen before).
    static func changeScript(from old: ProxyState, to new: ProxyState) -> String {
        let before = Dictionary(old.services.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var l: [String] = []
        let oldCounts = Set(old.services.map(\.internalBackends.count))
        for n in Set(new.services.map(\.internalBackends.count)).subtracting(oldCounts).sorted() where n > 0 {
            l.append("add chain \(t) svc-\(n)")
            l += rules(count: n)
        }
        let oldHairpin = Set(old.services.flatMap(\.internalBackends).map(\.address))
        var newHairpin = Set<IPAddress>()
        for s in new.services {
            newHairpin.formUnion(s.internalBackends.map(\.address))
            guard let o = before[s.name] else {
                l += entries(s).map { "add element \(t) \($0.set) { \($0.entry) }" }
                continue
            }
            guard o.internalBackends != s.internalBackends else { continue }
            for vip in s.clusterIPs {
                for (i, pair) in zip(o.internalBackends, s.internalBackends).enumerated() where pair.0 != pair.1 {
                    l.append("delete element \(t) endpoints { \(vip) . tcp . \(s.port) . \(i) }")
                    l.append("add element \(t) endpoints { \(vip) . tcp . \(s.port) . \(i) : \(pair.1.address) . \(pair.1.port) }")
                }
            }
        }
        for a in oldHairpin.subtracting(newHairpin).sorted() { l.append("delete element \(t) hairpin { \(a) . \(a) }") }
        for a in newHairpin.subtracting(oldHairpin).sorted() { l.append("add element \(t) hairpin { \(a) . \(a) }") }
        return l.joined(separator: "\n") + "\n"
    }
}

/// kube-proxy's nftables layout (pkg/proxy/nftables/proxier.go) for ClusterIP services: a
/// `service-ips` vmap to one chain per service, whose `numgen random mod N vmap { … }` (an
/// anonymous map per service) jumps to one chain per endpoint that DNATs.
enum KubeProxyLayoutText {
    static let t = "ip kube-proxy"

    static func hash(_ s: String) -> String {
        var h: UInt64 = 14_695_981_039_346_656_037
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 1_099_511_628_211 }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        return String((0..<8).map { alphabet[Int((h >> (5 * UInt64($0))) & 31)] })
    }
    static func base(_ s: ServicePortState) -> String { "\(s.name.namespace)/\(s.name.name)/tcp/\(s.name.port)" }
    static func serviceChain(_ s: ServicePortState) -> String { "service-\(hash(base(s)))-\(base(s))" }
    static func endpointChain(_ s: ServicePortState, _ b: Backend) -> String {
        let id = "\(base(s))__\(b.address)/\(b.port)"
        return "endpoint-\(hash(id))-\(id)"
    }

    static func script(_ state: ProxyState) -> String {
        let key3 = "ip daddr . meta l4proto . th dport"
        var l = ["add table \(t) { comment \"rules for kube-proxy\" ; }"]
        for (name, spec) in [("nat-prerouting", "nat hook prerouting priority dstnat"), ("nat-output", "nat hook output priority -100"),
                             ("nat-postrouting", "nat hook postrouting priority srcnat"), ("filter-input", "filter hook input priority -110"),
                             ("filter-forward", "filter hook forward priority -110"), ("filter-output", "filter hook output priority -110")] {
            l.append("add chain \(t) \(name) { type \(spec) ; policy accept ; }")
        }
        l += [
            "add chain \(t) mark-for-masquerade", "add chain \(t) masquerading", "add chain \(t) services",
            "add chain \(t) reject-chain", "add chain \(t) cluster-ips-check",
            "add map \(t) service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }",
            "add map \(t) service-nodeports { type inet_proto . inet_service : verdict ; }",
            "add set \(t) nodeport-ips { type ipv4_addr ; }",
            "add map \(t) no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; }",
            "add rule \(t) mark-for-masquerade meta mark set meta mark or 0x4000",
            "add rule \(t) masquerading meta mark & 0x4000 == 0 return",
            "add rule \(t) masquerading meta mark set meta mark xor 0x4000",
            "add rule \(t) masquerading masquerade fully-random",
            "add rule \(t) nat-prerouting jump services",
            "add rule \(t) nat-output jump services",
            "add rule \(t) nat-postrouting jump masquerading",
            "add rule \(t) services \(key3) vmap @service-ips",
            "add rule \(t) services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
            "add rule \(t) reject-chain reject",
        ]
        for c in ["filter-input", "filter-forward", "filter-output"] { l.append("add rule \(t) \(c) ct state new \(key3) vmap @no-endpoint-services") }
        for s in state.services { l += service(s) }
        return l.joined(separator: "\n") + "\n"
    }

    /// Endpoint chains, the service chain and its service-ips element, in the order kube-proxy adds them.
    static func service(_ s: ServicePortState) -> [String] {
        var l: [String] = []
        for b in s.internalBackends { l += endpoint(s, b) }
        l.append("add chain \(t) \(serviceChain(s))")
        l += serviceRules(s)
        l += s.clusterIPs.map { "add element \(t) service-ips { \($0) . tcp . \(s.port) : goto \(serviceChain(s)) }" }
        return l
    }
    static func endpoint(_ s: ServicePortState, _ b: Backend) -> [String] {
        let c = endpointChain(s, b)
        return ["add chain \(t) \(c)",
                "add rule \(t) \(c) ip saddr \(b.address) jump mark-for-masquerade",
                "add rule \(t) \(c) meta l4proto tcp dnat to \(b.address):\(b.port)"]
    }
    static func serviceRules(_ s: ServicePortState) -> [String] {
        let vmap = s.internalBackends.enumerated().map { "\($0.offset) : goto \(endpointChain(s, $0.element))" }.joined(separator: ", ")
        return s.clusterIPs.map { "add rule \(t) \(serviceChain(s)) ip daddr \($0) tcp dport \(s.port) ip saddr != \(ProxyBench.clusterCIDR) jump mark-for-masquerade" }
            + ["add rule \(t) \(serviceChain(s)) numgen random mod \(s.internalBackends.count) vmap { \(vmap) }"]
    }

    /// kube-proxy's partial sync for the change: new endpoint chains, the service chain flushed and
    /// refilled, stale endpoint chains flushed (it deletes them a sync later); a new service in full.
    static func changeScript(from old: ProxyState, to new: ProxyState) -> String {
        let before = Dictionary(old.services.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var l: [String] = []
        for s in new.services {
            guard let o = before[s.name] else { l += service(s); continue }
            guard o.internalBackends != s.internalBackends else { continue }
            for b in s.internalBackends where !o.internalBackends.contains(b) { l += endpoint(s, b) }
            l.append("flush chain \(t) \(serviceChain(s))")
            l += serviceRules(s)
            for b in o.internalBackends where !s.internalBackends.contains(b) { l.append("flush chain \(t) \(endpointChain(s, b))") }
        }
        return l.joined(separator: "\n") + "\n"
    }
}
