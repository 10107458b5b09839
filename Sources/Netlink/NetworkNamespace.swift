import CMnl
import Glibc
import SystemPackage

/// An open network namespace (an fd on `/run/netns/<name>` or `/proc/<pid>/ns/net`).
///
/// `setns(2)` moves only the calling OS thread, and Swift tasks hop threads, so namespace work runs
/// on a fresh thread that enters, runs a synchronous body and ends (`run`). Better still, open a
/// socket inside once (`run { try NetlinkSocket(.route) }`): it stays in that namespace for good.
public final class NetworkNamespace: @unchecked Sendable {
    public let fileDescriptor: Int32
    /// Where it was opened from, for error messages.
    public let path: String

    /// Directory where named namespaces live, shared with `ip netns`.
    public static let namedDirectory = "/run/netns"

    /// Opens the namespace at `path` (a bind mount or a `/proc/.../ns/net` file).
    public init(path: String) throws(NetlinkError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .fromErrno(.enterNamespace, "open \(path)") }
        fileDescriptor = fd
        self.path = path
    }
    /// Opens the named namespace `/run/netns/<name>`, as `ip netns exec <name>` does.
    public convenience init(named name: String) throws(NetlinkError) {
        try self.init(path: "\(Self.namedDirectory)/\(name)")
    }
    /// The namespace of the calling thread.
    public static func current() throws(NetlinkError) -> NetworkNamespace {
        try NetworkNamespace(path: "/proc/thread-self/ns/net")
    }

    deinit { close(fileDescriptor) }

    /// Runs `body` on a new OS thread that has entered this namespace, and returns its result.
    /// The thread ends afterwards, so the namespace cannot leak into unrelated work.
    /// Processes spawned from `body` inherit the namespace; async work started there does not.
    public func run<R>(_ body: () throws -> R) throws -> R {
        let fd = fileDescriptor, p = path
        return try withoutActuallyEscaping(body) { body in
            try onFreshThread {
                guard keel_setns_net(fd) == 0 else { throw NetlinkError.fromErrno(.enterNamespace, p) }
                return try body()
            }
        }
    }

    /// Same as `run` for bodies that throw `NetlinkError` only.
    public func runTyped<R>(_ body: () throws(NetlinkError) -> R) throws(NetlinkError) -> R {
        do { return try run { () throws -> R in try body() } } catch let e as NetlinkError { throw e } catch {
            throw NetlinkError(.enterNamespace, "\(path): \(error)", errno: .ioError)
        }
    }

    // MARK: - Named namespaces (what `ip netns add/del` does)

    /// Creates `/run/netns/<name>` bound to a new network namespace. Fails with EEXIST if taken.
    /// Kernel: unshare(CLONE_NEWNET) on a throwaway thread, then a bind mount of its ns file.
    @discardableResult
    public static func create(named name: String) throws(NetlinkError) -> NetworkNamespace {
        let path = "\(namedDirectory)/\(name)"
        mkdir(namedDirectory, 0o755)
        let fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0)
        guard fd >= 0 else { throw .fromErrno(.createNamespace, name) }
        close(fd)
        do {
            try onFreshThreadTyped { () throws(NetlinkError) in
                guard keel_unshare_net() == 0 else { throw .fromErrno(.createNamespace, "\(name): unshare") }
                guard mount("/proc/thread-self/ns/net", path, "none", UInt(MS_BIND), nil) == 0 else {
                    throw .fromErrno(.createNamespace, "\(name): bind mount")
                }
            }
        } catch {
            unlink(path)
            throw error
        }
        return try NetworkNamespace(path: path)
    }

    /// Removes `/run/netns/<name>`. The namespace itself goes when its last user (fd, process) does.
    /// A name that does not exist is an ENOENT error (`isAlreadyGone`).
    public static func delete(named name: String) throws(NetlinkError) {
        let path = "\(namedDirectory)/\(name)"
        if umount2(path, Int32(MNT_DETACH)) != 0 {
            let e = currentErrno()
            if e == ENOENT { throw NetlinkError(.deleteNamespace, name, errno: .noSuchFileOrDirectory) }
            // EINVAL: not a mount point (a half-created entry); remove the file anyway.
            guard e == EINVAL else { throw NetlinkError(.deleteNamespace, name, errno: Errno(rawValue: e)) }
        }
        guard unlink(path) == 0 else { throw .fromErrno(.deleteNamespace, name) }
    }

    /// Names under /run/netns, sorted.
    public static func listNamed() -> [String] {
        guard let dir = opendir(namedDirectory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}

// MARK: - Fresh threads

private final class ThreadBox {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Runs `body` on a new pthread and waits for it. The thread exits after `body`, so whatever
/// per-thread state `body` changed (its network namespace) dies with it.
func onFreshThread<R>(_ body: () throws -> R) throws -> R {
    var result: Result<R, any Error>?
    try withoutActuallyEscaping(body) { escapable in
        let box = ThreadBox { result = Result { try escapable() } }
        let unmanaged = Unmanaged.passRetained(box)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<ThreadBox>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, unmanaged.toOpaque())
        guard rc == 0 else {
            unmanaged.release()
            throw NetlinkError(.enterNamespace, "pthread_create", errno: Errno(rawValue: rc))
        }
        pthread_join(thread, nil)
    }
    return try result!.get()
}

func onFreshThreadTyped<R>(_ body: () throws(NetlinkError) -> R) throws(NetlinkError) -> R {
    do { return try onFreshThread { () throws -> R in try body() } } catch let e as NetlinkError { throw e } catch {
        throw NetlinkError(.other("thread"), "\(error)", errno: .ioError)
    }
}
