import Foundation
import Glibc

/// Runs a guest shell script in a VM booted from Debian 12's stock kernel (qemu, software emulation):
/// the lane for what this machine's kernel lacks, such as IPVS. A thin wrapper over `scripts/vm/lane run`,
/// which stages the initramfs (busybox, ip/nft/socat/ipvsadm, the binaries and files given here, the
/// modules with their dependencies) and boots it with no network device; the serial console is the only
/// channel back. Guests report results as `KEEL-RESULT <key> <value...>` lines.
public struct VirtualMachineLane: Sendable {
    /// The `scripts/vm/lane` executable.
    public var lanePath: String

    public init(lanePath: String) {
        self.lanePath = lanePath
    }

    /// The lane of the repository these tests were built from: `KEEL_VM_LANE` if set, else the first
    /// `scripts/vm/lane` above the running executable (build products live in `<repo>/.build*/`), else
    /// the one next to this source file.
    public static func located(sourceFile: String = #filePath) throws -> VirtualMachineLane {
        if let path = getenv("KEEL_VM_LANE").map({ String(cString: $0) }) {
            guard access(path, X_OK) == 0 else { throw VirtualMachineLaneError.laneMissing(path) }
            return VirtualMachineLane(lanePath: path)
        }
        var candidates: [String] = []
        var dir = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        while let slash = dir.lastIndex(of: "/"), slash != dir.startIndex {
            dir = String(dir[..<slash])
            candidates.append(dir + "/scripts/vm/lane")
        }
        // Sources/NetnsHarness/VirtualMachineLane.swift -> <repo>/scripts/vm/lane
        let sourceRoot = URL(fileURLWithPath: sourceFile).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(sourceRoot.appendingPathComponent("scripts/vm/lane").path)
        guard let found = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw VirtualMachineLaneError.laneMissing(candidates.last ?? "scripts/vm/lane")
        }
        return VirtualMachineLane(lanePath: found)
    }

    /// What the IPVS data plane's tests load: IPVS and its schedulers, conntrack and NAT, the nftables
    /// expressions Keel's rules use, and the links (scripts/vm/lane lists them by purpose).
    public static let ipvsDataPlaneModules = [
        "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_sh", "ip_vs_mh",
        "nf_conntrack", "nf_conntrack_netlink", "nf_nat",
        "nf_tables", "nft_ct", "nft_nat", "nft_masq", "nft_chain_nat", "nft_reject_inet", "nft_reject_ipv4", "nft_fib_inet", "nft_fib_ipv4", "nft_numgen",
        "veth", "dummy", "bridge", "br_netfilter",
    ]

    /// What keeld's nftables data planes (service proxy and policy enforcer) load: conntrack and NAT,
    /// the nftables expressions their rules use, and the links of a node with pods on a bridge.
    public static let nftablesDataPlaneModules = [
        "nf_conntrack", "nf_conntrack_netlink", "nf_nat",
        "nf_tables", "nft_ct", "nft_nat", "nft_masq", "nft_chain_nat", "nft_reject_inet", "nft_reject_ipv4", "nft_fib_inet", "nft_fib_ipv4", "nft_numgen",
        "veth", "bridge", "br_netfilter",
    ]

    /// SCTP sockets. Conntrack and NAT of SCTP are built into Debian's nf_conntrack (CONFIG_NF_CT_PROTO_SCTP=y);
    /// crc32c_generic is the CRC32c that libcrc32c (sctp's and nf_nat's checksums) asks the crypto API for,
    /// loaded here rather than left to a request_module from inside the guest.
    public static let sctpModules = ["crc32c_generic", "sctp"]

    /// A Keel executable from the build these tests run from (debug unless KEEL_PLUGIN_DIR says otherwise).
    public static func keelBinary(_ name: String) -> String { CNIRunner.keelPluginDirectory + "/" + name }

    /// Boots the VM, runs `script` with /bin/sh (dash; busybox provides the other commands) and returns
    /// what the guest reported.
    /// - Parameters:
    ///   - binaries: host executables copied to the same path with their shared libraries (and put in PATH).
    ///   - files: host files or folders copied into the guest.
    ///   - modules: kernel module names, loaded with their dependencies before the script; a word with
    ///     `=` is an option of the module before it (`["dummy", "numdummies=2"]`).
    ///   - timeout: for the VM from power-on to power-off (staging the initramfs comes before it).
    /// - Throws: `VirtualMachineLaneError` when the guest did not report a status: timeout, boot
    ///   failure, or a lane that could not start the VM. A guest script that fails is a `VMRun` with
    ///   its exit status, not an error.
    public func run(script: String, binaries: [String] = [], files: [VMFile] = [], modules: [String] = [],
                    timeout: Duration = .seconds(60), memoryMiB: Int = 1024, cpus: Int = 1) throws -> VMRun {
        let scriptPath = NSTemporaryDirectory() + "keel-vm-\(getpid())-\(UUID().uuidString).sh"
        guard FileManager.default.createFile(atPath: scriptPath, contents: Data(script.utf8)) else {
            throw VirtualMachineLaneError.laneFailed(status: -1, stderr: "cannot write the guest script to \(scriptPath)")
        }
        defer { unlink(scriptPath) }

        let seconds = max(1, Int((Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18).rounded(.up)))
        var argv = [lanePath, "run", "--script", scriptPath, "--timeout", "\(seconds)", "--memory", "\(memoryMiB)", "--cpus", "\(cpus)"]
        for binary in binaries { argv += ["--binary", binary] }
        for file in files { argv += ["--file", "\(file.host):\(file.guest)"] }
        if !modules.isEmpty { argv += ["--modules", modules.joined(separator: " ")] }

        let started = ContinuousClock.now
        let process = try NamespaceProcess.run(argv)
        let console = process.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            .map { String($0.filter { $0 != "\r" }) }
        return try VMRun.interpreting(console: console, laneStatus: process.exitStatus, laneStderr: process.stderr,
                                      timeoutSeconds: seconds, duration: ContinuousClock.now - started)
    }

    /// `run` on the located lane.
    public static func run(script: String, binaries: [String] = [], files: [VMFile] = [], modules: [String] = [],
                           timeout: Duration = .seconds(60), memoryMiB: Int = 1024, cpus: Int = 1) throws -> VMRun {
        try located().run(script: script, binaries: binaries, files: files, modules: modules,
                          timeout: timeout, memoryMiB: memoryMiB, cpus: cpus)
    }
}

/// A host file or folder and where it goes in the guest.
public struct VMFile: Sendable, Hashable {
    public var host: String
    public var guest: String
    public init(host: String, guest: String) {
        self.host = host
        self.guest = guest
    }
}

/// One `KEEL-RESULT <key> <value...>` line.
public struct VMResult: Sendable, Hashable {
    public var key: String
    public var value: String
}

/// What a guest that ran to the end reported.
public struct VMRun: Sendable, CustomStringConvertible {
    /// The serial console, line by line (kernel messages, the script's output, the lane's markers).
    public var consoleLines: [String]
    /// The guest script's exit status.
    public var exitStatus: Int32
    /// The guest's `uname -r`.
    public var kernelRelease: String
    /// Every `KEEL-RESULT` line, in order.
    public var resultLines: [VMResult]
    /// From staging to power-off.
    public var duration: Duration

    public var succeeded: Bool { exitStatus == 0 }
    /// The last value reported for each key.
    public var results: [String: String] {
        Dictionary(resultLines.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }
    public var description: String {
        "guest exit \(exitStatus) on \(kernelRelease) in \(duration)\n--- console\n\(consoleLines.joined(separator: "\n"))"
    }

    static let resultMarker = "KEEL-RESULT "
    static let readyMarker = "KEEL-VM-READY "
    static let exitMarker = "KEEL-VM-EXIT "
    static let bootFailedMarker = "KEEL-VM-BOOT-FAILED "

    /// Reads the lane's console and status. The console's own `KEEL-VM-EXIT` line decides: the lane's
    /// exit status alone cannot tell a guest that exited 124 from a timeout.
    static func interpreting(console: [String], laneStatus: Int32, laneStderr: String, timeoutSeconds: Int,
                             duration: Duration) throws(VirtualMachineLaneError) -> VMRun {
        let tail = Array(console.suffix(40))
        if let exitLine = console.last(where: { $0.hasPrefix(exitMarker) }) {
            guard let status = Int32(exitLine.dropFirst(exitMarker.count)) else {
                throw .bootFailure(reason: "unreadable status line: \(exitLine)", consoleTail: tail)
            }
            let ready = console.last(where: { $0.hasPrefix(readyMarker) })?.dropFirst(readyMarker.count)
            let results = console.compactMap { line -> VMResult? in
                guard line.hasPrefix(resultMarker) else { return nil }
                let fields = line.dropFirst(resultMarker.count)
                let key = fields.prefix { $0 != " " }
                guard !key.isEmpty else { return nil }
                return VMResult(key: String(key), value: String(fields.dropFirst(key.count).drop { $0 == " " }))
            }
            return VMRun(consoleLines: console, exitStatus: status, kernelRelease: ready.map(String.init) ?? "",
                         resultLines: results, duration: duration)
        }
        switch laneStatus {
        case 124:
            throw .timeout(seconds: timeoutSeconds, consoleTail: tail)
        case 125:
            let reason = console.last(where: { $0.hasPrefix(bootFailedMarker) }).map { String($0.dropFirst(bootFailedMarker.count)) }
                ?? laneStderr.split(separator: "\n").last.map(String.init) ?? "no status reported"
            throw .bootFailure(reason: reason, consoleTail: tail)
        default:
            throw .laneFailed(status: laneStatus, stderr: laneStderr)
        }
    }
}

public enum VirtualMachineLaneError: Error, CustomStringConvertible, Equatable {
    /// The VM was still running when its time was up; the lane killed it.
    case timeout(seconds: Int, consoleTail: [String])
    /// The VM stopped without a status from the guest script: kernel panic, a module that did not
    /// load, an init that could not mount.
    case bootFailure(reason: String, consoleTail: [String])
    /// The lane did not start the VM (bad arguments, a download that failed, a missing binary).
    case laneFailed(status: Int32, stderr: String)
    /// No `scripts/vm/lane` where it was looked for.
    case laneMissing(String)

    public var description: String {
        switch self {
        case let .timeout(seconds, tail):
            "VM lane: timeout: the VM did not finish within \(seconds) s; console tail:\n\(tail.joined(separator: "\n"))"
        case let .bootFailure(reason, tail):
            "VM lane: boot failure: \(reason); console tail:\n\(tail.joined(separator: "\n"))"
        case let .laneFailed(status, stderr):
            "VM lane: scripts/vm/lane exited \(status) before the VM ran: \(stderr)"
        case let .laneMissing(path):
            "VM lane: no executable scripts/vm/lane (looked up to \(path); set KEEL_VM_LANE)"
        }
    }
}
