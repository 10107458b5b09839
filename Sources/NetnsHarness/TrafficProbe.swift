import Glibc
import NetAddress
import Netlink

/// How a connection attempt ended; tests assert on the exact outcome (a REJECT is `.refused`
/// at once, a DROP is `.timedOut`).
public enum ConnectOutcome: Sendable, Equatable, CustomStringConvertible {
    /// Connected and read what the server sent (its banner) before it closed.
    case connected(reply: String)
    case refused
    case timedOut
    case failed(errno: Int32)

    public var description: String {
        switch self {
        case .connected(let r): "connected (\(r))"
        case .refused: "refused"
        case .timedOut: "timed out"
        case .failed(let e): "failed: \(String(cString: strerror(e)))"
        }
    }
    public var reply: String? { if case .connected(let r) = self { r } else { nil } }
}

/// Real traffic between lab namespaces: ping, TCP connects and UDP exchanges with timeouts.
public enum TrafficProbe {
    /// One ICMP echo from `namespace` to `address`; true if a reply came back within `timeoutSeconds`.
    public static func ping(from namespace: LabNamespace, to address: IPAddress, count: Int = 1, timeoutSeconds: Int = 2) throws -> Bool {
        let family = address.isIPv4 ? "-4" : "-6"
        return try namespace.exec(["ping", family, "-n", "-q", "-c", "\(count)", "-W", "\(timeoutSeconds)", "\(address)"]).succeeded
    }

    /// An HTTP/1.0 GET from inside `namespace`; the whole response (status line, headers, body).
    public static func httpGet(from namespace: LabNamespace, to address: IPAddress, port: UInt16, path: String,
                               timeoutMilliseconds: Int32 = 2000) throws -> ConnectOutcome {
        try tcpConnect(from: namespace, to: address, port: port, send: "GET \(path) HTTP/1.0\r\nHost: \(address)\r\n\r\n",
                       timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Opens a TCP connection from inside `namespace`, sends `send` (if any) and reads until the server closes.
    public static func tcpConnect(from namespace: LabNamespace, to address: IPAddress, port: UInt16, send request: String = "",
                                  timeoutMilliseconds: Int32 = 2000) throws -> ConnectOutcome {
        try namespace.run {
            let fd = socket(Int32(address.isIPv4 ? AF_INET : AF_INET6), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { return .failed(errno: errno) }
            defer { close(fd) }
            let rc = withSocketAddress(address, port) { connect(fd, $0, $1) }
            if rc != 0 && errno != EINPROGRESS { return errno == ECONNREFUSED ? .refused : .failed(errno: errno) }
            guard wait(fd, for: Int16(POLLOUT), timeoutMilliseconds) else { return .timedOut }
            var soError: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
            if soError == ECONNREFUSED { return .refused }
            if soError == ETIMEDOUT { return .timedOut }
            if soError != 0 { return .failed(errno: soError) }
            if !request.isEmpty {
                let bytes = Array(request.utf8)
                _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
            return .connected(reply: readUntilClosed(fd, timeoutMilliseconds))
        }
    }

    /// Sends one UDP datagram from inside `namespace` and waits for one reply.
    public static func udpExchange(from namespace: LabNamespace, to address: IPAddress, port: UInt16, payload: String = "ping",
                                   timeoutMilliseconds: Int32 = 2000) throws -> String? {
        try namespace.run {
            let fd = socket(Int32(address.isIPv4 ? AF_INET : AF_INET6), Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            guard withSocketAddress(address, port, { connect(fd, $0, $1) }) == 0 else { return nil }
            let bytes = Array(payload.utf8)
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard wait(fd, for: Int16(POLLIN), timeoutMilliseconds) else { return nil }
            var buffer = [UInt8](repeating: 0, count: 2048)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return n >= 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
        }
    }

    static func wait(_ fd: Int32, for events: Int16, _ timeout: Int32) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let n = poll(&p, 1, timeout)
            if n < 0 && errno == EINTR { continue }
            return n > 0
        }
    }

    static func readUntilClosed(_ fd: Int32, _ timeout: Int32) -> String {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while wait(fd, for: Int16(POLLIN), timeout) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Calls `body` with a sockaddr for `address`:`port` (IPv4 or IPv6).
public func withSocketAddress<R>(_ address: IPAddress, _ port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    switch address {
    case .v4(let a):
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = a.value.bigEndian
        return withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    case .v6(let a):
        var sin6 = sockaddr_in6()
        sin6.sin6_family = sa_family_t(AF_INET6)
        sin6.sin6_port = port.bigEndian
        withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: a.bytes) }
        return withUnsafePointer(to: &sin6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
    }
}

/// A server inside a lab namespace that answers every TCP connection (and UDP datagram) with
/// `banner` — the name of the backend — so a test can tell which backend a connection reached.
public final class BannerServer: @unchecked Sendable {
    public let address: IPAddress
    public let port: UInt16
    public let banner: String
    private let tcpFD: Int32
    private let udpFD: Int32
    private var threads: [pthread_t] = []
    private var stopped = false

    /// Binds TCP and UDP on `address`:`port` inside `namespace` and serves on two background threads.
    public init(in namespace: LabNamespace, address: IPAddress, port: UInt16, banner: String) throws {
        self.address = address
        self.port = port
        self.banner = banner
        let fds = try namespace.run { () throws -> (Int32, Int32) in
            let domain = Int32(address.isIPv4 ? AF_INET : AF_INET6)
            let t = socket(domain, Int32(SOCK_STREAM.rawValue), 0), u = socket(domain, Int32(SOCK_DGRAM.rawValue), 0)
            var one: Int32 = 1
            setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            guard withSocketAddress(address, port, { bind(t, $0, $1) }) == 0, listen(t, 64) == 0,
                  withSocketAddress(address, port, { bind(u, $0, $1) }) == 0 else {
                let e = errno
                close(t); close(u)
                throw ProcessError(command: ["bind \(address):\(port)"], reason: String(cString: strerror(e)))
            }
            return (t, u)
        }
        tcpFD = fds.0
        udpFD = fds.1
        threads.append(spawnThread { [self] in serveTCP() })
        threads.append(spawnThread { [self] in serveUDP() })
    }

    /// Stops serving and joins the threads. Called by deinit too.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        shutdown(tcpFD, Int32(SHUT_RDWR))
        shutdown(udpFD, Int32(SHUT_RDWR))
        for t in threads { pthread_join(t, nil) }
        close(tcpFD)
        close(udpFD)
    }
    deinit { stop() }

    private func serveTCP() {
        let reply = Array(banner.utf8)
        while true {
            let c = accept(tcpFD, nil, nil)
            if c < 0 { if errno == EINTR { continue }; return }
            _ = reply.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(c)
        }
    }

    private func serveUDP() {
        let reply = Array(banner.utf8)
        var buffer = [UInt8](repeating: 0, count: 2048)
        var from = sockaddr_storage()
        while true {
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = withUnsafeMutablePointer(to: &from) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    buffer.withUnsafeMutableBytes { recvfrom(udpFD, $0.baseAddress, $0.count, 0, sa, &len) }
                }
            }
            if n < 0 { if errno == EINTR { continue }; return }
            if n == 0 && stopped { return }
            _ = withUnsafePointer(to: &from) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    reply.withUnsafeBytes { sendto(udpFD, $0.baseAddress, $0.count, 0, sa, len) }
                }
            }
        }
    }
}

private final class ThreadBody { let run: () -> Void; init(_ run: @escaping () -> Void) { self.run = run } }

public func spawnThread(_ body: @escaping () -> Void) -> pthread_t {
    var thread = pthread_t()
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { raw in
        Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return thread
}
