import ArgumentParser
import Glibc
import NetAddress
import Netlink
import NetnsHarness

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks, side by side with iproute2 and nft doing the same work in the same run.",
        discussion: "Every run happens in fresh namespaces named keel-bench-<pid>-*, removed afterwards.")

    @Argument(help: "Which benchmark: netlink (veth pairs, routes, nftables verdict map), cni (bridge + host-local against the reference plugins), overlay (route controller convergence; pod-to-pod throughput same node / host-gw / VXLAN), proxy (service proxy sync at 1K-10K services against nft -f and kube-proxy's layout; first-connection latency) or policy (policy enforcer apply over 1,000 pods at 100-1,000 NetworkPolicies, one-policy changes; first-packet latency with 0 vs 1,000 policies) or cluster (keeld against an API server with 10K Services / 100K endpoints / 5K Pods / 1K NetworkPolicies: first sync, memory, event-to-kernel latency) or ipvs (IPVS vs nftables data plane, full and one-endpoint syncs, on Debian's stock kernel in the VM lane; ipvs-guest is its half inside the VM).")
    var suite: String = "netlink"

    @Option(help: "Veth pairs to create and delete.")
    var vethPairs = 1000

    @Option(help: "Routes to add.")
    var routes = 10000

    @Option(help: "Verdict-map elements in the nftables transaction.")
    var elements = 10000

    @Option(help: "Runs of each measurement; the median is printed.")
    var runs = 3

    @Option(help: "cni: sequential ADD/CHECK/DEL rounds (and VERSION runs).")
    var pods = 50

    @Option(help: "cni: ADDs started at once.")
    var concurrent = 20

    @Option(help: "overlay: peer node counts for the route controller convergence runs, comma-separated.")
    var peerCounts = "10,100,1000"

    @Option(help: "overlay: seconds of each iperf3 run.")
    var iperfSeconds = 3

    @Option(help: "proxy: service counts for the full syncs, comma-separated; the changes and the latency run at the largest (default 1000,2000,5000,10000). ipvs: the sizes, each with full syncs and one-endpoint changes (default 1000,10000).")
    var serviceCounts: String?

    @Option(help: "ipvs: seconds the VM may run before the lane kills it.")
    var vmTimeout = 1800

    @Option(help: "ipvs: the VM's memory in MiB.")
    var vmMemory = 3072

    @Option(help: "proxy: endpoints per service.")
    var endpointsPerService = 10

    @Option(help: "proxy: seconds a kube-proxy layout load may take; larger sizes are skipped once one would exceed it (quadratic estimate).")
    var referenceCap = 60.0

    @Option(help: "proxy: TCP connects per service for the latency percentiles.")
    var connects = 200

    @Option(help: "policy: NetworkPolicy counts for the full applies over 1,000 pods, comma-separated; the changes and the latency run at the largest.")
    var policyCounts = "100,300,1000"

    @Option(help: "policy: TCP connects per ruleset for the latency percentiles.")
    var policyConnects = 300

    func validate() throws {
        guard ["netlink", "cni", "overlay", "proxy", "policy", "cluster", "ipvs", "ipvs-guest"].contains(suite) else {
            throw ValidationError("unknown benchmark '\(suite)' (known: netlink, cni, overlay, proxy, policy, cluster, ipvs)")
        }
        guard vmTimeout > 0, vmMemory >= 256 else { throw ValidationError("--vm-timeout must be positive, --vm-memory at least 256") }
        let policies = policyCounts.split(separator: ",").map { Int($0) }
        guard !policies.isEmpty, policies.allSatisfy({ ($0 ?? 0) > 0 && $0! <= 20_000 }), policyConnects > 0 else {
            throw ValidationError("--policy-counts must be positive numbers up to 20000, comma-separated; --policy-connects positive")
        }
        let services = (serviceCounts ?? "").split(separator: ",").map { Int($0) }
        guard serviceCounts == nil || !services.isEmpty, services.allSatisfy({ ($0 ?? 0) > 0 && $0! <= 60_000 }), (1...250).contains(endpointsPerService),
              referenceCap > 0, connects > 0 else {
            throw ValidationError("--service-counts must be positive numbers up to 60000, --endpoints-per-service 1-250, --reference-cap and --connects positive")
        }
        let counts = peerCounts.split(separator: ",").map { Int($0) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) > 0 && $0! <= 60_000 }) else {
            throw ValidationError("--peer-counts must be positive numbers up to 60000, comma-separated")
        }
        guard iperfSeconds > 0 else { throw ValidationError("--iperf-seconds must be positive") }
        guard vethPairs > 0, routes > 0, elements > 0, runs > 0 else { throw ValidationError("counts must be positive") }
    }

    /// `--service-counts`, or the suite's own sizes.
    func serviceSizes(default sizes: [Int]) -> [Int] { serviceCounts.map { $0.split(separator: ",").map { Int($0)! } } ?? sizes }

    func run() throws {
        // The VM is the isolation of these two: no lab namespaces on the host, none in the guest.
        if suite == "ipvs" {
            try IPVSBench(sizes: serviceSizes(default: [1000, 10_000]), endpointsPerService: endpointsPerService, runs: runs,
                          timeoutSeconds: vmTimeout, memoryMiB: vmMemory).run()
            return
        }
        if suite == "ipvs-guest" {
            try IPVSGuestBench(sizes: serviceSizes(default: [1000, 10_000]), endpointsPerService: endpointsPerService, runs: runs).run()
            return
        }
        try NetnsLab.with(prefix: "keel-bench") { lab in
            var table = BenchTable()
            if suite == "overlay" {
                try OverlayBench(lab: lab, runs: runs, peerCounts: peerCounts.split(separator: ",").map { Int($0)! },
                                 iperfSeconds: iperfSeconds).run()
                return
            }
            if suite == "proxy" {
                try ProxyBench(lab: lab, sizes: serviceSizes(default: [1000, 2000, 5000, 10_000]), endpointsPerService: endpointsPerService,
                               runs: runs, referenceCap: referenceCap, connects: connects).run()
                return
            }
            if suite == "policy" {
                try PolicyBench(lab: lab, sizes: policyCounts.split(separator: ",").map { Int($0)! }, runs: runs,
                                connects: policyConnects).run()
                return
            }
            if suite == "cluster" {
                try ClusterBench(lab: lab, services: 10_000, endpointsPerService: 10, pods: 5_000, policies: 1_000, changes: 200).run()
                return
            }
            if suite == "cni" {
                try CNIBench(lab: lab, sequential: pods, concurrent: concurrent).run(into: &table)
                print(table.renderedDistributions())
                return
            }
            let bench = NetlinkBench(lab: lab, runs: runs)
            try bench.veths(count: vethPairs, into: &table)
            try bench.routes(count: routes, into: &table)
            try bench.nftables(elements: elements, into: &table)
            print(table.rendered())
        }
    }
}

/// Rows of "work | Keel | reference | ratio".
struct BenchTable {
    struct Row { var work: String; var keel: Double; var reference: Double; var referenceName: String }
    var rows: [Row] = []
    var distributions: [(work: String, keel: [Double], reference: [Double], referenceName: String)] = []

    mutating func add(_ work: String, keel: Double, reference: Double, referenceName: String) {
        rows.append(Row(work: work, keel: keel, reference: reference, referenceName: referenceName))
    }

    func rendered() -> String {
        func ms(_ s: Double) -> String { pad(String(format2(s * 1000)) + " ms", 11) }
        var out = "\(pad("work", 52)) \(pad("Keel", 11)) \(pad("reference", 11)) \(pad("ref. tool", 14)) speed-up\n"
        out += String(repeating: "-", count: 100) + "\n"
        for r in rows {
            out += "\(pad(r.work, 52)) \(ms(r.keel)) \(ms(r.reference)) \(pad(r.referenceName, 14)) \(format2(r.reference / r.keel))x\n"
        }
        return out
    }
}

extension BenchTable {
    /// Median and p90 per side, and the Keel/reference ratio of the medians (lower is better).
    func renderedDistributions() -> String {
        func ms(_ s: Double) -> String { pad(format2(s * 1000) + " ms", 11) }
        var out = "\(pad("operation", 30)) \(pad("Keel p50", 11)) \(pad("Keel p90", 11)) \(pad("ref p50", 11)) \(pad("ref p90", 11)) Keel/ref\n"
        out += String(repeating: "-", count: 95) + "\n"
        for d in distributions {
            let k50 = percentile(d.keel, 0.5), r50 = percentile(d.reference, 0.5)
            out += "\(pad(d.work, 30)) \(ms(k50)) \(ms(percentile(d.keel, 0.9))) \(ms(r50)) \(ms(percentile(d.reference, 0.9))) \(format2(k50 / r50))x\n"
        }
        if let name = distributions.first?.referenceName { out += "reference: \(name) (Debian), same config, same run\n" }
        return out
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
func format2(_ v: Double) -> String {
    let scaled = (v * 100).rounded() / 100
    let whole = Int(scaled), frac = Int(((scaled - Double(whole)) * 100).rounded())
    return "\(whole).\(frac < 10 ? "0" : "")\(frac)"
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

struct NetlinkBench {
    let lab: NetnsLab
    let runs: Int

    /// A fresh namespace per measurement so that neither side inherits the other's leftovers.
    func fresh(_ label: String, _ n: Int) throws -> LabNamespace { try lab.namespace("\(label)\(n)") }

    func writeBatch(_ lines: [String]) throws -> String {
        let path = "/tmp/keel-bench-\(getpid())-\(lines.count)-\(Int(Stopwatch.now() * 1000)).batch"
        guard let f = fopen(path, "w") else { throw ProcessError(command: ["write \(path)"], reason: "fopen failed") }
        for l in lines { fputs(l + "\n", f) }
        fclose(f)
        return path
    }

    func veths(count: Int, into table: inout BenchTable) throws {
        var keel: [Double] = [], ip: [Double] = []
        for run in 0..<runs {
            let ns = try fresh("veth-k", run)
            keel.append(try Stopwatch.measure {
                for i in 0..<count {
                    try ns.route.createLink(LinkSpec(name: InterfaceName("kb\(i)")!, kind: .veth(peerName: "kb\(i)p")))
                }
                for i in 0..<count { try ns.route.deleteLink(.name(InterfaceName("kb\(i)")!)) }
            })
            let other = try fresh("veth-i", run)
            let path = try writeBatch((0..<count).map { "link add kb\($0) type veth peer name kb\($0)p" }
                                      + (0..<count).map { "link del kb\($0)" })
            defer { unlink(path) }
            ip.append(try Stopwatch.measure { try other.check(["ip", "-batch", path]) })
            lab.removeAll()
        }
        table.add("create+delete \(count) veth pairs (one request each)", keel: median(keel), reference: median(ip), referenceName: "ip -batch")
    }

    func routes(count: Int, into table: inout BenchTable) throws {
        var single: [Double] = [], batch: [Double] = [], ip: [Double] = []
        func prepared(_ label: String, _ run: Int) throws -> (LabNamespace, Int32) {
            let ns = try fresh(label, run)
            let l = try ns.route.createLink(LinkSpec(name: "kr0", kind: .veth(peerName: "kr0p"), up: true))
            try ns.route.setUp("kr0p")
            try ns.route.addAddress(InterfaceAddress(linkIndex: l.index, cidr: CIDR("10.50.0.1/24")!))
            return (ns, l.index)
        }
        let destinations = (0..<count).map { CIDR(.v4(IPv4Address(UInt32(0x0A00_0000) + UInt32($0) << 8)), prefixLength: 24)! }
        let gateway = IPAddress("10.50.0.2")!
        for run in 0..<runs {
            let (a, ai) = try prepared("rt-one", run)
            let rs = destinations.map { Route(destination: $0, gateway: gateway, device: ai, proto: .keel) }
            single.append(try Stopwatch.measure { for r in rs { try a.route.addRoute(r) } })
            let (b, bi) = try prepared("rt-batch", run)
            let rb = destinations.map { RouteChange.add(Route(destination: $0, gateway: gateway, device: bi, proto: .keel)) }
            batch.append(try Stopwatch.measure { try b.route.apply(rb) })
            guard try b.route.routes().filter({ $0.proto == .keel }).count == count else {
                throw ProcessError(command: ["bench routes"], reason: "batched routes missing after apply")
            }
            let (c, _) = try prepared("rt-ip", run)
            let path = try writeBatch(destinations.map { "route add \($0) via 10.50.0.2 dev kr0 proto 75" })
            defer { unlink(path) }
            ip.append(try Stopwatch.measure { try c.check(["ip", "-batch", path]) })
            lab.removeAll()
        }
        table.add("add \(count) routes, one message each", keel: median(single), reference: median(ip), referenceName: "ip -batch")
        table.add("add \(count) routes, one pipelined batch", keel: median(batch), reference: median(ip), referenceName: "ip -batch")
    }
}

import NFTables

extension NetlinkBench {
    /// One transaction holding a table, a verdict map of `elements` entries keyed by
    /// `ipv4_addr . inet_proto . inet_service`, and the chain that uses it.
    func nftables(elements: Int, into table: inout BenchTable) throws {
        let t = Table(.ip, "keel-bench")
        let chain = Chain(t, "services", type: .filter, hook: .prerouting, priority: .filter)
        let target = Chain(t, "backend")
        let entries = (0..<elements).map { i in
            SetElement([.ip(.v4(IPv4Address(UInt32(0x0A60_0000) + UInt32(i)))), .proto(.tcp), .port(80)], verdict: .jump("backend"))
        }
        let map = NFTSet(t, "service-ips", key: [.ipv4Address, .inetProto, .inetService], mapping: .verdict, elements: Set(entries))
        let ruleset = Ruleset(tables: [t], chains: [chain, target], sets: [map],
                              rules: [Rule(chain, [.vmap("service-ips", key: [.ipv4.daddr, .l4proto, .th.dport])])])
        let tx = transaction(from: nil, to: ruleset)
        var script = "table ip keel-bench {\n  chain backend {\n  }\n  map service-ips {\n    type ipv4_addr . inet_proto . inet_service : verdict\n    elements = {\n"
        for i in 0..<elements {
            let a = IPv4Address(UInt32(0x0A60_0000) + UInt32(i))
            script += "      \(a) . tcp . 80 : jump backend,\n"
        }
        script += "    }\n  }\n  chain services {\n    type filter hook prerouting priority filter; policy accept;\n    ip daddr . meta l4proto . th dport vmap @service-ips\n  }\n}\n"
        var keel: [Double] = [], nft: [Double] = []
        for run in 0..<runs {
            let a = try fresh("nft-k", run)
            let socket = try a.run { try NFTablesSocket() }
            keel.append(try Stopwatch.measure { try socket.apply(tx) })
            guard try socket.elements(of: map.definition).count == elements else {
                throw ProcessError(command: ["bench nftables"], reason: "map read back with the wrong element count")
            }
            let b = try fresh("nft-n", run)
            let path = try writeBatch([script])
            defer { unlink(path) }
            nft.append(try Stopwatch.measure { try b.check(["nft", "-f", path]) })
            lab.removeAll()
        }
        table.add("nftables: one transaction, \(elements)-element verdict map", keel: median(keel), reference: median(nft), referenceName: "nft -f")
    }
}
