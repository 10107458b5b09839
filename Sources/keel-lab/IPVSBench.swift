import Glibc
import NetnsHarness

/// `bench ipvs`: the IPVS data plane against the nftables data plane on the same kernel — Debian 12's
/// stock kernel in the VM lane, since this machine's kernel has no IPVS. Boots the VM with this very
/// keel-lab binary (scripts/bench builds it in release with the static Swift stdlib, so the guest gets
/// a small library closure) and the IPVS data plane's modules, runs `bench ipvs-guest` there (the
/// VM's own namespace is the node; nothing runs on the host's network) and prints its results as one
/// table. qemu runs without KVM (software emulation): both planes slow down alike, so the ratio is
/// the number to read, not the milliseconds.
struct IPVSBench {
    let sizes: [Int]
    let endpointsPerService: Int
    let runs: Int
    let timeoutSeconds: Int
    let memoryMiB: Int

    func run() throws {
        let binary = try Self.runningExecutable()
        let script = """
            \(binary) bench ipvs-guest --service-counts \(sizes.map(String.init).joined(separator: ",")) \
            --endpoints-per-service \(endpointsPerService) --runs \(runs)

            """
        print("==> VM lane: \(sizes.map(String.init).joined(separator: ", ")) services × \(endpointsPerService) endpoints, "
              + "\(runs) runs each, IPVS then nftables (qemu software emulation; the console comes at the end; timeout \(timeoutSeconds) s)")
        fflush(nil)
        let vm = try VirtualMachineLane.run(script: script, binaries: [binary], modules: VirtualMachineLane.ipvsDataPlaneModules,
                                            timeout: .seconds(timeoutSeconds), memoryMiB: memoryMiB, cpus: 1)
        for line in vm.consoleLines where line.hasPrefix("guest: ") { print("    " + line.dropFirst("guest: ".count)) }
        let results = vm.results
        guard vm.succeeded, results["done"] == "yes" else {
            throw ProcessError(command: ["bench ipvs-guest"], reason: "the guest failed (exit \(vm.exitStatus)): "
                               + (results["error"] ?? "no error reported") + "\n--- console tail\n"
                               + vm.consoleLines.suffix(40).joined(separator: "\n"))
        }
        print(try IPVSBenchReport(results: results, sizes: sizes, endpointsPerService: endpointsPerService, runs: runs,
                                  vmSeconds: Double(vm.duration.components.seconds)).rendered())
    }

    /// This process's executable (what the VM gets and runs as the guest half).
    static func runningExecutable() throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw ProcessError(command: ["readlink /proc/self/exe"], reason: "errno \(errno)") }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The guest's `KEEL-RESULT` lines as the table of `bench ipvs`.
struct IPVSBenchReport {
    struct Row {
        var size: Int
        var ipvsFull: Double, nftFull: Double, ipvsChange: Double, nftChange: Double
    }
    var kernel: String
    var rows: [Row] = []
    var details: [String] = []
    var endpointsPerService: Int
    var runs: Int
    var vmSeconds: Double

    init(results: [String: String], sizes: [Int], endpointsPerService: Int, runs: Int, vmSeconds: Double) throws {
        kernel = results["kernel"] ?? "?"
        self.endpointsPerService = endpointsPerService
        self.runs = runs
        self.vmSeconds = vmSeconds
        func value(_ key: String) throws -> String {
            guard let v = results[key] else { throw ProcessError(command: ["bench ipvs"], reason: "the guest reported no \(key)") }
            return v
        }
        /// Median of the per-run milliseconds the guest reported, in seconds.
        func medianSeconds(_ key: String) throws -> Double {
            let values = try value(key).split(separator: " ").map { Double($0) }
            guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
                throw ProcessError(command: ["bench ipvs"], reason: "\(key): unreadable times '\(results[key] ?? "")'")
            }
            return median(values.map { $0! / 1000 })
        }
        for size in sizes {
            rows.append(Row(size: size, ipvsFull: try medianSeconds("ipvs-full-\(size)"), nftFull: try medianSeconds("nftables-full-\(size)"),
                            ipvsChange: try medianSeconds("ipvs-change-\(size)"), nftChange: try medianSeconds("nftables-change-\(size)")))
            if let parts = results["ipvs-parts-\(size)"] { details.append("  \(size) ipvs: full sync by parts (run apart, once): \(parts)") }
            for plane in ["ipvs", "nftables"] {
                details.append("  \(size) \(plane): full sync sent \(try value("\(plane)-full-ops-\(size)"))")
                details.append("  \(size) \(plane): one change sent \(try value("\(plane)-change-ops-\(size)"))")
                details.append("  \(size) \(plane): kernel after full sync \(try value("\(plane)-check-full-\(size)")); "
                               + "after the changes \(try value("\(plane)-check-change-\(size)"))")
            }
        }
    }

    func rendered() -> String {
        func ms(_ s: Double) -> String { format2(s * 1000) + " ms" }
        let columns: [(String, Int)] = [("services", 16), ("IPVS full", 12), ("nftables full", 14), ("IPVS/nft", 9),
                                        ("IPVS one change", 16), ("nft one change", 15), ("IPVS/nft", 8)]
        var out = "\nIPVS vs nftables data plane, kernel \(kernel) (Debian 12 stock) in the VM lane\n"
        out += columns.map { pad($0.0, $0.1) }.joined(separator: " ") + "\n"
        out += String(repeating: "-", count: columns.reduce(0) { $0 + $1.1 + 1 }) + "\n"
        for r in rows {
            let cells = ["\(r.size) × \(endpointsPerService)", ms(r.ipvsFull), ms(r.nftFull), "×" + format2(r.ipvsFull / r.nftFull),
                         ms(r.ipvsChange), ms(r.nftChange), "×" + format2(r.ipvsChange / r.nftChange)]
            out += zip(cells, columns).map { pad($0, $1.1) }.joined(separator: " ") + "\n"
        }
        out += "medians of \(runs) runs. Full: a fresh data plane syncing an empty kernel (render, diff, kernel); one change: one\n"
        out += "endpoint of one service moved, on the data plane of the last full sync. Ratio: IPVS time / nftables time.\n"
        out += "Times are under qemu software emulation (TCG, 1 vCPU, no KVM), several times slower than on hardware;\n"
        out += "both planes pay it alike, so compare the ratios. VM run \(Int(vmSeconds)) s from staging to power-off.\n"
        out += "\nwhat each sync sent, and the kernel read back (netlink, /proc/net/ip_vs, nftables diff):\n"
        out += details.joined(separator: "\n") + "\n"
        return out
    }
}
