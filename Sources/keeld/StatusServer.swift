import Glibc

/// A minimal HTTP/1.0 server on its own thread for `/healthz` and `/metrics`: two endpoints that
/// kubelet and Prometheus poll do not justify an HTTP stack (and SwiftNIO) in the agent.
final class StatusServer: @unchecked Sendable {
    typealias Handler = @Sendable (_ path: String) -> (status: Int, contentType: String, body: String)
    let port: UInt16
    private let fd: Int32
    private let handler: Handler

    init(port: UInt16, handler: @escaping Handler) throws {
        self.port = port
        self.handler = handler
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = 0   // INADDR_ANY, as kube-proxy's healthz and metrics listen
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 16) == 0 else {
            let e = errno
            close(fd)
            throw StatusServerError(port: port, reason: String(cString: strerror(e)))
        }
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            Unmanaged<StatusServer>.fromOpaque(raw!).takeRetainedValue().serve()
            return nil
        }, box)
        pthread_detach(thread)
    }

    private func serve() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { if errno == EINTR { continue }; return }
            var buffer = [UInt8](repeating: 0, count: 2048)
            let n = buffer.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            let request = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
            let path = request.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
            let (status, type, body) = handler(path)
            let reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Service Unavailable"
            let response = "HTTP/1.0 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            let bytes = Array(response.utf8)
            _ = bytes.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(c)
        }
    }
}

struct StatusServerError: Error, CustomStringConvertible {
    var port: UInt16
    var reason: String
    var description: String { "cannot listen on port \(port): \(reason)" }
}
