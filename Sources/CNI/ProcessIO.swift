import Glibc

/// The process's own file descriptors and environment, for `CNIEntry.exit` and the IPAM delegate.
enum ProcessIO {
    static func environment() -> [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }

    /// Reads until EOF. A read error ends the input early; the config decoder then reports what is missing.
    static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { out += buffer[0..<n] } else if n < 0, errno == EINTR { continue } else { break }
        }
        return out
    }

    /// Writes everything, retrying short writes and EINTR. A closed stdout cannot be reported anywhere.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n > 0 { offset += n } else if n < 0, errno == EINTR { continue } else { return }
        }
    }
}
