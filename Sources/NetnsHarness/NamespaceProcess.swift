import Glibc
import Netlink

/// What a finished process left: its exit status and everything it wrote.
public struct ProcessResult: Sendable, CustomStringConvertible {
    public var exitStatus: Int32
    public var stdout: String
    public var stderr: String
    public var succeeded: Bool { exitStatus == 0 }
    public var description: String { "exit \(exitStatus)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

public struct ProcessError: Error, CustomStringConvertible {
    public var command: [String]
    public var reason: String
    public init(command: [String], reason: String) {
        self.command = command
        self.reason = reason
    }
    public var description: String { "\(command.joined(separator: " ")): \(reason)" }
}

/// Runs programs, optionally inside a network namespace. The child is spawned from a thread that has
/// entered the namespace, and a child inherits its creating thread's namespaces.
public enum NamespaceProcess {
    /// Runs `argv` (argv[0] searched in PATH) with `environment` added to ours, feeding `stdin`,
    /// and waits. Output goes through unlinked temp files so a chatty child can never block on a pipe.
    public static func run(_ argv: [String], in namespace: NetworkNamespace? = nil, environment: [String: String] = [:],
                           replaceEnvironment: Bool = false, stdin: [UInt8] = []) throws -> ProcessResult {
        let spawn = { () throws -> ProcessResult in try spawnAndWait(argv, environment: environment, replace: replaceEnvironment, stdin: stdin) }
        if let namespace { return try namespace.run(spawn) }
        return try spawn()
    }

    /// Runs and throws with the whole output if the exit status is not 0.
    @discardableResult
    public static func check(_ argv: [String], in namespace: NetworkNamespace? = nil, environment: [String: String] = [:]) throws -> String {
        let r = try run(argv, in: namespace, environment: environment)
        guard r.succeeded else { throw ProcessError(command: argv, reason: r.description) }
        return r.stdout
    }

    private static func tempFile(_ content: [UInt8]) throws -> Int32 {
        var template = Array("/tmp/keel-proc-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw ProcessError(command: [], reason: "mkstemp: errno \(errno)") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        if !content.isEmpty {
            _ = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            lseek(fd, 0, SEEK_SET)
        }
        return fd
    }

    static func readAll(_ fd: Int32) -> String {
        lseek(fd, 0, SEEK_SET)
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Starts `argv` (inside `namespace`, if given) without waiting: for daemons such as keeld.
    public static func start(_ argv: [String], in namespace: NetworkNamespace? = nil, environment: [String: String] = [:]) throws -> BackgroundProcess {
        func launch() throws -> BackgroundProcess {
            let inFD = try tempFile([]), outFD = try tempFile([]), errFD = try tempFile([])
            defer { close(inFD) }
            let pid = try Self.spawn(argv, environment: environment, replace: false, fds: (inFD, outFD, errFD))
            return BackgroundProcess(pid: pid, command: argv, stdoutFD: outFD, stderrFD: errFD)
        }
        if let namespace { return try namespace.run(launch) }
        return try launch()
    }

    private static func spawnAndWait(_ argv: [String], environment: [String: String], replace: Bool, stdin: [UInt8]) throws -> ProcessResult {
        let inFD = try tempFile(stdin), outFD = try tempFile([]), errFD = try tempFile([])
        defer { close(inFD); close(outFD); close(errFD) }
        let pid = try spawn(argv, environment: environment, replace: replace, fds: (inFD, outFD, errFD))
        let exit = waitForExit(pid)
        return ProcessResult(exitStatus: exit, stdout: readAll(outFD), stderr: readAll(errFD))
    }

    static func waitForExit(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS are macros; decode the status word by hand.
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    private static func spawn(_ argv: [String], environment: [String: String], replace: Bool,
                              fds: (Int32, Int32, Int32)) throws -> pid_t {
        let (inFD, outFD, errFD) = fds
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inFD, 0)
        posix_spawn_file_actions_adddup2(&actions, outFD, 1)
        posix_spawn_file_actions_adddup2(&actions, errFD, 2)

        var env: [String: String] = [:]
        if !replace {
            var p = environ
            while let entry = p.pointee {
                let s = String(cString: entry)
                if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
                p += 1
            }
        }
        for (k, v) in environment { env[k] = v }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cArgs.forEach { free($0) }; cEnv.forEach { free($0) } }

        // The child starts with no blocked and no ignored signal, whatever the spawning thread had:
        // test threads (and Dispatch's) block most signals, and an inherited mask made keeld and qemu
        // deaf to SIGTERM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        guard rc == 0 else { throw ProcessError(command: argv, reason: "posix_spawnp: \(String(cString: strerror(rc)))") }
        return pid
    }
}

/// A process started with `NamespaceProcess.start`. Ended only through this handle, by its PID.
public final class BackgroundProcess: @unchecked Sendable {
    public let pid: pid_t
    public let command: [String]
    private let stdoutFD: Int32, stderrFD: Int32
    private var exitStatus: Int32?

    init(pid: pid_t, command: [String], stdoutFD: Int32, stderrFD: Int32) {
        self.pid = pid
        self.command = command
        self.stdoutFD = stdoutFD
        self.stderrFD = stderrFD
    }

    /// What it wrote so far.
    public var stdout: String { NamespaceProcess.readAll(stdoutFD) }
    public var stderr: String { NamespaceProcess.readAll(stderrFD) }

    /// True while it runs (a finished child is reaped here).
    public var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f); return false }
        return r == 0
    }

    /// Sends `signal` (SIGTERM by default) and waits for the exit; returns the exit status
    /// (128 + signal if it died of one). Waits at most `timeoutSeconds`, then sends SIGKILL.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeoutSeconds: Double = 5) -> Int32 {
        if let exitStatus { return exitStatus }
        kill(pid, signal)
        let deadline = Double(time(nil)) + timeoutSeconds
        while isRunning {
            if Double(time(nil)) > deadline { kill(pid, SIGKILL) }
            usleep(10_000)
        }
        return exitStatus ?? -1
    }

    deinit {
        if exitStatus == nil { stop(signal: SIGKILL) }
        close(stdoutFD)
        close(stderrFD)
    }
}
