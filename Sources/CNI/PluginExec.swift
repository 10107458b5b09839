import Glibc

/// Starts a plugin executable and collects what it wrote. posix_spawn rather than Foundation.Process:
/// plugins link FoundationEssentials only.
struct PluginExec {
    struct Output {
        var status: Int32
        var stdout: [UInt8]
        var stderr: [UInt8]
    }

    /// The first regular, executable `name` in `directories`, as libcni's FindInPath.
    static func find(_ name: String, in directories: [String]) -> String? {
        for dir in directories where !dir.isEmpty {
            let candidate = dir.hasSuffix("/") ? dir + name : dir + "/" + name
            var st = stat()
            guard stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 else { continue }
            return candidate
        }
        return nil
    }

    /// Runs `executable` with `environment`, `stdin` as its standard input, and waits for it.
    ///
    /// stdin comes from an unlinked temporary file, not a pipe: a plugin that exits without reading
    /// would otherwise raise SIGPIPE in this process. stdout and stderr are pipes drained together
    /// with poll(2), so a child filling one of them never blocks while we wait on the other.
    static func run(_ executable: String, environment: [String: String], stdin: [UInt8]) throws -> Output {
        let input = try inputFile(stdin)
        defer { close(input) }
        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        guard pipe(&outPipe) == 0 else { throw ioError("pipe", errno) }
        guard pipe(&errPipe) == 0 else {
            let e = errno
            close(outPipe[0]); close(outPipe[1])
            throw ioError("pipe", e)
        }

        // pipe2/mkostemp are not visible without _GNU_SOURCE; close-on-exec keeps the parent's ends
        // (and the write ends, once dup2'd) out of the child.
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input, STDIN_FILENO)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], STDERR_FILENO)

        let argv = [strdup(executable)] + [UnsafeMutablePointer<CChar>?.none]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }

        var pid: pid_t = 0
        var spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        // ETXTBSY: a process forked elsewhere in this program (or another) still holds a write fd of
        // a plugin binary that was just installed; it goes away when that child execs. Retry briefly,
        // as Go's os/exec users (containerd) do.
        for _ in 0..<20 where spawned == ETXTBSY {
            usleep(10_000)
            spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        }
        close(outPipe[1]); close(errPipe[1])
        defer { close(outPipe[0]); close(errPipe[0]) }
        guard spawned == 0 else { throw ioError("posix_spawn \(executable)", spawned) }

        var stdout: [UInt8] = [], stderr: [UInt8] = []
        drain(outPipe[0], into: &stdout, errPipe[0], into: &stderr)

        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw ioError("waitpid \(executable)", errno) }
        }
        // WIFEXITED / WEXITSTATUS are macros; a signal death is reported as 128 + signal, like a shell.
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Output(status: exitStatus, stdout: stdout, stderr: stderr)
    }

    /// The delegate's stdin: an unnamed file, so that nothing is left in /tmp if this process is
    /// killed while it waits for the delegate.
    private static func inputFile(_ bytes: [UInt8]) throws -> Int32 {
        var fd: Int32
        do {
            fd = try UnnamedFile.open(in: "/tmp") ?? -1
        } catch {
            throw ioError("temporary stdin file", error.code)
        }
        if fd < 0 {
            // No O_TMPFILE on this file system: a named file, unlinked at once (a kill between the
            // two calls would leave it).
            var template = Array("/tmp/keel-cni-stdin-XXXXXX".utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            guard fd >= 0 else { throw ioError("temporary stdin file", errno) }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n > 0 { offset += n } else if n < 0, errno == EINTR { continue } else {
                let e = errno
                close(fd)
                throw ioError("writing temporary stdin file", e)
            }
        }
        lseek(fd, 0, SEEK_SET)
        return fd
    }

    private static func drain(_ a: Int32, into bufA: inout [UInt8], _ b: Int32, into bufB: inout [UInt8]) {
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        var chunk = [UInt8](repeating: 0, count: 65536)
        while fds.contains(where: { $0.fd >= 0 }) {
            let ready = poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 { if errno == EINTR { continue } else { return } }
            for i in fds.indices where fds[i].fd >= 0 && fds[i].revents != 0 {
                let n = chunk.withUnsafeMutableBytes { read(fds[i].fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    if i == 0 { bufA += chunk[0..<n] } else { bufB += chunk[0..<n] }
                } else if n == 0 || errno != EINTR {
                    fds[i].fd = -1   // EOF (or a read error): poll ignores negative descriptors
                }
            }
        }
    }

    private static func ioError(_ what: String, _ code: Int32) -> CNIError {
        CNIError(.ioFailure, "\(what): \(String(cString: strerror(code)))")
    }
}
