#if canImport(Glibc)
import Glibc
#endif
import CNI

// The raw file calls of the disk store, each turning a failure into `IPAMError.io` with its errno.

private func retryingEINTR(_ call: () -> Int32) -> Int32 {
    while true {
        let r = call()
        if r >= 0 || errno != EINTR { return r }
    }
}

private func ioError(_ operation: String, _ path: String, _ code: Int32 = errno) -> IPAMError {
    .io(operation: operation, path: path, errno: code)
}

/// `mkdir -p` with mode 0755, as the reference's `os.MkdirAll(dir, 0o755)`.
func makeDirectories(_ path: String) throws {
    var prefix = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        prefix += "/" + component
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw ioError("mkdir", prefix) }
    }
    var info = stat()
    guard stat(path, &info) == 0 else { throw ioError("stat", path) }
    guard info.st_mode & S_IFMT == S_IFDIR else { throw ioError("mkdir", path, ENOTDIR) }
}

/// The whole file as text, or nil when it does not exist.
func readTextFile(_ path: String) throws -> String? {
    let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC) }
    if fd < 0 {
        if errno == ENOENT { return nil }
        throw ioError("open", path)
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw ioError("read", path)
        }
        if n == 0 { break }
        bytes += buffer[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

private func writeAll(_ fd: Int32, _ text: String, _ path: String) throws {
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw ioError("write", path)
        }
        offset += n
    }
}

/// Creates `path` with `text` unless it exists (then returns false): the exclusive create is what
/// makes a reservation file the claim on its address. The content is written to an unnamed file in
/// the same directory that is then linked at `path` (EEXIST: taken), so the file appears complete or
/// not at all, also when the plugin is killed half-way: a killed `O_CREAT | O_EXCL` + write would
/// leave an empty reservation that no DEL releases. Not fsynced, as the reference does not: a
/// reservation only matters while its pod lives, and a crash that could lose the file takes the
/// pod's network namespace with it (a file that survives is released by GC). fsync cost ~2 ms per ADD.
func createExclusiveFile(_ path: String, _ text: String) throws -> Bool {
    let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
    let unnamed: Int32?
    do { unnamed = try UnnamedFile.open(in: directory.isEmpty ? "/" : directory) } catch { throw ioError("open(O_TMPFILE)", directory, error.code) }
    if let fd = unnamed {
        defer { close(fd) }   // the link, if made, keeps the inode; otherwise this frees it
        try writeAll(fd, text, path)
        do { return try UnnamedFile.link(fd, to: path) } catch { throw ioError("linkat", path, error.code) }
    }
    // No O_TMPFILE on this file system: create, then write; removed again on a failure we see.
    let fd = retryingEINTR { open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
    if fd < 0 {
        if errno == EEXIST { return false }
        throw ioError("open", path)
    }
    do {
        try writeAll(fd, text, path)
        guard close(fd) == 0 else { throw ioError("close", path) }
        return true
    } catch {
        _ = close(fd)          // may already be closed when close() itself failed; EBADF is harmless then
        unlink(path)           // best effort: the error being thrown is the one that matters
        throw error
    }
}

/// Replaces the content of `path` in place (created with 0600), as the reference's `os.WriteFile`.
/// No temporary name, so nothing to leave behind: a kill between the truncate and the write leaves
/// `last_reserved_ip.N` empty or short, which only restarts the round robin once (it is a hint;
/// the reservation files are the truth).
func replaceFile(_ path: String, _ text: String) throws {
    let fd = retryingEINTR { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
    guard fd >= 0 else { throw ioError("open", path) }
    do {
        try writeAll(fd, text, path)
    } catch {
        close(fd)
        throw error
    }
    guard close(fd) == 0 else { throw ioError("close", path) }
}

/// Removes `path`; a file that is already gone counts as removed.
func removeFile(_ path: String) throws {
    if unlink(path) != 0 && errno != ENOENT { throw ioError("unlink", path) }
}

/// Names of the regular files in `path` (not recursive).
func listFiles(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw ioError("opendir", path) }
    defer { closedir(dir) }
    var names: [String] = []
    while true {
        errno = 0
        guard let entry = readdir(dir) else {
            if errno != 0 { throw ioError("readdir", path) }
            break
        }
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name == "." || name == ".." { continue }
        let type = entry.pointee.d_type
        if type == UInt8(DT_REG) { names.append(name); continue }
        if type != UInt8(DT_UNKNOWN) { continue }
        var info = stat()
        if stat(path + "/" + name, &info) == 0 && info.st_mode & S_IFMT == S_IFREG { names.append(name) }
    }
    return names
}

/// An open lock file holding an exclusive `flock`. Closing the descriptor (in `deinit`) releases the
/// lock; `unlock()` releases it first so that a failure is seen.
struct FileLock: ~Copyable {
    private let fd: Int32
    let path: String

    /// Opens (creating, 0600) and locks `path`, waiting for other holders. `flock(2)` locks belong to
    /// the open file description, so two stores in one process exclude each other as two processes do.
    init(path: String) throws {
        let fd = retryingEINTR { open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { throw ioError("open", path) }
        guard retryingEINTR({ flock(fd, LOCK_EX) }) == 0 else {
            let code = errno
            close(fd)
            throw ioError("flock", path, code)
        }
        self.fd = fd
        self.path = path
    }

    consuming func unlock() throws {
        let failed = flock(fd, LOCK_UN) != 0
        let code = errno
        // deinit closes fd, which drops the lock even when LOCK_UN failed.
        if failed { throw ioError("flock(LOCK_UN)", path, code) }
    }

    deinit { close(fd) }
}
