#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// An inotify instance over folders, reporting only "something changed": the manifest source then
/// lists the folder and re-reads the files whose `stat` changed, so which file an event named does not
/// matter (and an overflowed event queue loses nothing).
///
/// A dedicated thread blocks in `poll(2)` on the inotify fd and a pipe; ``stop()`` writes the pipe
/// to end it. A blocking read on a Swift concurrency thread would take one of the few
/// cooperative threads (two on these machines) for as long as the folder is quiet.
final class DirectoryWatcher: Sendable {
    /// What the kernel reports. IN_CLOSE_WRITE, not IN_MODIFY: a file being written is read once it
    /// is complete. IN_MOVED_* covers atomic replacement (write a temp file, rename it over) and
    /// ConfigMap volumes, which swap their `..data` symlink by rename.
    static let mask: UInt32 = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE
        | IN_DELETE_SELF | IN_MOVE_SELF)

    private let inotifyFD: Int32
    private let wakeFD: Int32        // read end of the stop pipe
    private let wakeWriteFD: Int32
    /// Set by the thread when it reports a change, cleared by the consumer just before it re-reads:
    /// changes that arrive while a report is still pending need no second report.
    private let pending = Atomic<Bool>(false)

    init() throws {
        inotifyFD = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard inotifyFD >= 0 else { throw DirectoryWatchError(operation: "inotify_init1", path: "", errno: errno) }
        var pipeFDs: [Int32] = [-1, -1]
        // pipe2 is not visible without _GNU_SOURCE; set the flags with fcntl instead.
        guard pipe(&pipeFDs) == 0 else {
            let e = errno
            close(inotifyFD)
            throw DirectoryWatchError(operation: "pipe2", path: "", errno: e)
        }
        wakeFD = pipeFDs[0]
        wakeWriteFD = pipeFDs[1]
        for fd in pipeFDs {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
    }

    deinit {
        close(inotifyFD)
        close(wakeFD)
        close(wakeWriteFD)
    }

    /// Adds `path` (a folder; symlinks are followed) to the watch. Watching a folder again is harmless.
    func watch(_ path: String) throws {
        guard inotify_add_watch(inotifyFD, path, Self.mask) >= 0 else {
            throw DirectoryWatchError(operation: "inotify_add_watch", path: path, errno: errno)
        }
    }

    /// Ends the thread started by ``changes()``; its stream then finishes. Safe to call more than once.
    func stop() {
        var byte: UInt8 = 1
        // Both ends live until deinit, so no EPIPE; EAGAIN means the pipe is full of earlier stops.
        _ = write(wakeWriteFD, &byte, 1)
    }

    /// Marks the pending change as taken: call right before re-reading.
    func acknowledge() { pending.store(false, ordering: .sequentiallyConsistent) }

    /// Starts the watching thread. The stream yields when something changed since the last
    /// ``acknowledge()`` and finishes after ``stop()``.
    func changes() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let thread = Thread { [self] in
            var fds = [pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = poll(&fds, 2, -1)
                if n < 0 {
                    if errno == EINTR { continue }
                    break
                }
                if fds[1].revents != 0 { break }
                if fds[0].revents & Int16(POLLIN) != 0 {
                    // Drain everything queued (IN_Q_OVERFLOW included): any event means "re-read".
                    while buffer.withUnsafeMutableBytes({ read(inotifyFD, $0.baseAddress, $0.count) }) > 0 {}
                    if !pending.exchange(true, ordering: .sequentiallyConsistent) { continuation.yield(()) }
                }
                if fds[0].revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 { break }
            }
            continuation.finish()
        }
        thread.name = "keel-manifest-watch"
        thread.start()
        return stream
    }
}

/// A failed inotify call, with the errno.
public struct DirectoryWatchError: Error, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var errno: Int32
    public var description: String {
        "\(operation)\(path.isEmpty ? "" : " \(path)"): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
