import Foundation
import Glibc
import NetAddress

/// A TCP connection held open by a test, both ends file descriptors of the test process: the client
/// socket made in one namespace, the server end accepted from a listener made in another (directly, or
/// through a Service address). Tests exchange lines across a restart or a rule change to show that an
/// established connection survives it.
public struct HeldConnection: Sendable {
    public let client: Int32, server: Int32

    public static func listen(in namespace: LabNamespace, address: IPAddress, port: UInt16) throws -> Int32 {
        try namespace.run { () throws -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            guard withSocketAddress(address, port, { bind(fd, $0, $1) }) == 0, Glibc.listen(fd, 8) == 0 else {
                let e = errno
                Glibc.close(fd)
                throw ProcessError(command: ["listen \(address):\(port)"], reason: String(cString: strerror(e)))
            }
            return fd
        }
    }

    /// Connects from `namespace` to `address`:`port` and accepts on `listener`; nil when nothing arrives within a second.
    public static func open(from namespace: LabNamespace, to address: IPAddress, port: UInt16, listener: Int32) -> HeldConnection? {
        guard let client = try? namespace.run({ () -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            _ = withSocketAddress(address, port) { connect(fd, $0, $1) }   // EINPROGRESS: completion shows at the listener
            return fd
        }) else { return nil }
        var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 1000) > 0 else { Glibc.close(client); return nil }
        let server = accept(listener, nil, nil)
        guard server >= 0 else { Glibc.close(client); return nil }
        return HeldConnection(client: client, server: server)
    }

    /// Opens `from` → `address`:`port` through a listener made for it in `to` (closed once accepted);
    /// nil when the connect does not complete within a second.
    public static func open(from: LabNamespace, to: LabNamespace, address: IPAddress, port: UInt16) throws -> HeldConnection? {
        let listener = try listen(in: to, address: address, port: port)
        defer { Glibc.close(listener) }
        return open(from: from, to: address, port: port, listener: listener)
    }

    /// Sends a line each way; true if both arrived within a second.
    public func exchange(_ text: String) -> Bool {
        func roundTrip(_ a: Int32, _ b: Int32, _ s: String) -> Bool {
            let bytes = Array(s.utf8)
            guard bytes.withUnsafeBytes({ send(a, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else { return false }
            var p = pollfd(fd: b, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 1000) > 0 else { return false }
            var buffer = [UInt8](repeating: 0, count: 256)
            let n = buffer.withUnsafeMutableBytes { recv(b, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            return n > 0 && String(decoding: buffer[0..<n], as: UTF8.self) == s
        }
        return roundTrip(client, server, "c:" + text) && roundTrip(server, client, "s:" + text)
    }

    public func close() {
        Glibc.close(client)
        Glibc.close(server)
    }
}
