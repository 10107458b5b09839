import Glibc

/// Files that have no name until they are complete, so that a plugin killed at any moment leaves no
/// temporary file behind: `open(dir, O_TMPFILE)` makes an inode without a directory entry, which the
/// kernel frees when the last descriptor closes (also on SIGKILL), and `linkat` gives it its final
/// name in one step, failing with EEXIST like `O_CREAT | O_EXCL` would.
public enum UnnamedFile {
    /// `O_TMPFILE` is `__O_TMPFILE | O_DIRECTORY`; Glibc's module does not export it (it needs
    /// _GNU_SOURCE). `__O_TMPFILE` is 0o20000000 in the generic ABI that x86_64 and arm64 use.
    #if arch(x86_64) || arch(arm64)
    static let openFlag: Int32? = 0o20000000 | O_DIRECTORY
    #else
    static let openFlag: Int32? = nil
    #endif

    /// An unnamed regular file (mode 0600, close-on-exec, read-write) in `directory`, or nil when
    /// the kernel or the file system cannot make one (EOPNOTSUPP, EISDIR on kernels before 3.11,
    /// EINVAL): callers then fall back to a named file. Other failures throw `errno`.
    public static func open(in directory: String) throws(Errno) -> Int32? {
        guard let openFlag else { return nil }
        while true {
            let fd = Glibc.open(directory, openFlag | O_RDWR | O_CLOEXEC, 0o600)
            if fd >= 0 { return fd }
            switch errno {
            case EINTR: continue
            case EOPNOTSUPP, EISDIR, EINVAL: return nil
            default: throw Errno(errno)
            }
        }
    }

    /// Names the unnamed file `fd` at `path`. Returns false when `path` exists (nothing changed).
    /// Through `/proc/self/fd`, as open(2) documents: `AT_EMPTY_PATH` would need CAP_DAC_READ_SEARCH.
    public static func link(_ fd: Int32, to path: String) throws(Errno) -> Bool {
        while true {
            if linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 { return true }
            switch errno {
            case EINTR: continue
            case EEXIST: return false
            default: throw Errno(errno)
            }
        }
    }

    /// An errno value from one of these calls.
    public struct Errno: Error, Sendable, Equatable {
        public var code: Int32
        public init(_ code: Int32) { self.code = code }
    }
}
