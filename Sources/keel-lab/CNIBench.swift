import Dispatch
import Glibc
import NetAddress
import NetnsHarness

/// `bench cni`: Keel's bridge + host-local against the reference plugins, same config, same run.
struct CNIBench {
    let lab: NetnsLab
    let sequential: Int
    let concurrent: Int

    struct Side {
        var name: String
        var path: [String]
        var label: String
    }

    func config(_ side: Side, dataDir: String) -> String {
        """
        {"cniVersion":"1.0.0","name":"bench-\(side.label)","type":"bridge","bridge":"br-\(side.label)","isGateway":true,"ipMasq":true,
         "ipam":{"type":"host-local","subnet":"10.\(side.label == "keel" ? 60 : 70).0.0/16","dataDir":"\(dataDir)","routes":[{"dst":"0.0.0.0/0"}]}}
        """
    }

    func run(into table: inout BenchTable) throws {
        let keel = Side(name: "Keel", path: [CNIRunner.keelPluginDirectory], label: "keel")
        let reference = Side(name: "reference", path: [CNIRunner.referencePluginDirectory], label: "ref")
        var results: [String: [String: [Double]]] = [:]
        for side in [keel, reference] {
            results[side.label] = try measure(side)
            lab.removeAll()
        }
        for op in ["ADD", "CHECK", "DEL", "ADD x\(concurrent) concurrent (wall)", "VERSION (start-up floor)"] {
            let k = results["keel"]![op]!, r = results["ref"]![op]!
            table.addDistribution("\(op)", keel: k, reference: r, referenceName: "containernetworking 1.1.1")
        }
    }

    func measure(_ side: Side) throws -> [String: [Double]] {
        let node = try lab.namespace("cni-\(side.label)")
        let runner = CNIRunner(node: node, path: side.path)
        let dataDir = "/tmp/keel-bench-ipam-\(getpid())-\(side.label)"
        defer { _ = try? NamespaceProcess.run(["rm", "-rf", dataDir]) }
        let conf = config(side, dataDir: dataDir)
        var out: [String: [Double]] = [:]
        let pods = try (0..<sequential).map { try lab.namespace("\(side.label)-p\($0)") }
        var results: [String] = []
        out["ADD"] = try pods.enumerated().map { i, pod in
            var r: CNIInvocationResult?
            let t = try Stopwatch.measure { r = try runner.add("bridge", pod: pod, containerID: "bench\(i)", config: conf) }
            guard let r, r.succeeded else { throw ProcessError(command: ["\(side.name) bridge ADD"], reason: r?.description ?? "") }
            results.append(r.stdout)
            return t
        }
        out["CHECK"] = try pods.enumerated().map { i, pod in
            let withPrev = conf.addingField("prevResult", json: results[i])
            var r: CNIInvocationResult?
            let t = try Stopwatch.measure { r = try runner.check("bridge", pod: pod, containerID: "bench\(i)", config: withPrev) }
            guard let r, r.succeeded else { throw ProcessError(command: ["\(side.name) bridge CHECK"], reason: r?.description ?? "") }
            return t
        }
        out["DEL"] = try pods.enumerated().map { i, pod in
            var r: CNIInvocationResult?
            let t = try Stopwatch.measure { r = try runner.del("bridge", pod: pod, containerID: "bench\(i)", config: conf) }
            guard let r, r.succeeded else { throw ProcessError(command: ["\(side.name) bridge DEL"], reason: r?.description ?? "") }
            return t
        }
        let burst = try (0..<concurrent).map { try lab.namespace("\(side.label)-c\($0)") }
        let failures = Counter()
        let wall = Stopwatch.measure {
            DispatchQueue.concurrentPerform(iterations: concurrent) { i in
                let r = try? runner.add("bridge", pod: burst[i], containerID: "burst\(i)", config: conf)
                if r?.succeeded != true { failures.increment() }
            }
        }
        guard failures.value == 0 else { throw ProcessError(command: ["\(side.name) concurrent ADD"], reason: "\(failures.value) failed") }
        out["ADD x\(concurrent) concurrent (wall)"] = [wall]
        for (i, pod) in burst.enumerated() { _ = try runner.del("bridge", pod: pod, containerID: "burst\(i)", config: conf) }
        out["VERSION (start-up floor)"] = try (0..<sequential).map { _ in
            try Stopwatch.measure { _ = try runner.run("bridge", "VERSION", config: "") }
        }
        return out
    }
}

final class Counter: @unchecked Sendable {
    private var count = 0
    private var lock = pthread_mutex_t()
    init() { pthread_mutex_init(&lock, nil) }
    func increment() { pthread_mutex_lock(&lock); count += 1; pthread_mutex_unlock(&lock) }
    var value: Int { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return count }
}

extension String {
    /// This JSON object text with one more field (as libcni inserts prevResult).
    func addingField(_ name: String, json: String) -> String {
        var s = Substring(self)
        while let c = s.last, c == " " || c == "\n" { s = s.dropLast() }
        precondition(s.last == "}", "not a JSON object")
        return String(s.dropLast()) + ",\"\(name)\":\(json)}"
    }
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

extension BenchTable {
    mutating func addDistribution(_ work: String, keel: [Double], reference: [Double], referenceName: String) {
        distributions.append((work, keel, reference, referenceName))
    }
}
