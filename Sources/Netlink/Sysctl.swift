import Glibc
import SystemPackage

/// Reads and writes sysctls through /proc/sys. Network sysctls (net.*) resolve to the namespace of
/// the thread that opens the file, so `Sysctl.write(..., in: ns)` opens it on a thread inside `ns`.
public enum Sysctl {
    /// `net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`. Interface names keep their dots
    /// when given as separate components: `path(["net", "ipv4", "conf", "eth0.10", "forwarding"])`.
    public static func path(_ name: String) -> String { "/proc/sys/" + name.replacingOccurrences(of: ".", with: "/") }
    public static func path(_ components: [String]) -> String { "/proc/sys/" + components.joined(separator: "/") }

    public static func read(_ name: String, in namespace: NetworkNamespace? = nil) throws(NetlinkError) -> String {
        try readFile(path(name), in: namespace)
    }
    public static func write(_ name: String, _ value: String, in namespace: NetworkNamespace? = nil) throws(NetlinkError) {
        try writeFile(path(name), value, in: namespace)
    }

    public static func readFile(_ path: String, in namespace: NetworkNamespace?) throws(NetlinkError) -> String {
        try inside(namespace) { () throws(NetlinkError) -> String in
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw .fromErrno(.sysctl, "read \(path)") }
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard n >= 0 else { throw .fromErrno(.sysctl, "read \(path)") }
            return String(decoding: buffer[0..<n], as: UTF8.self).trimmingTrailingNewlines()
        }
    }

    public static func writeFile(_ path: String, _ value: String, in namespace: NetworkNamespace?) throws(NetlinkError) {
        try inside(namespace) { () throws(NetlinkError) in
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw .fromErrno(.sysctl, "write \(path)") }
            defer { close(fd) }
            let bytes = Array(value.utf8)
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n == bytes.count else { throw .fromErrno(.sysctl, "write \(value) to \(path)") }
        }
    }

    private static func inside<R>(_ namespace: NetworkNamespace?, _ body: () throws(NetlinkError) -> R) throws(NetlinkError) -> R {
        guard let namespace else { return try body() }
        return try namespace.runTyped(body)
    }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == " " { s = s.dropLast() }
        return String(s)
    }
    func replacingOccurrences(of target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
