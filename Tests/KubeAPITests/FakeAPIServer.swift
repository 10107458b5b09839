import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 server on 127.0.0.1 (loopback only, an ephemeral port) that plays the API server:
/// each request goes to `handler`, which answers with a JSON body or a chunked watch stream the test
/// feeds line by line. One thread per connection; every blocking call has a timeout, so nothing hangs.
final class FakeAPIServer: Sendable {
    struct Request: Sendable {
        var path: String
        var query: [String: String]
        var headers: [String: String]
        var at: ContinuousClock.Instant
        var isWatch: Bool { query["watch"] == "1" }
    }
    enum Response: Sendable {
        case json(Int, String)
        case watch(WatchStream)
    }

    /// The lines of one watch response; `finish()` ends it as the server's timeoutSeconds would.
    final class WatchStream: Sendable {
        private let state = Mutex<(lines: [String], finished: Bool)>(([], false))
        func send(_ line: String) { state.withLock { $0.lines.append(line) } }
        func finish() { state.withLock { $0.finished = true } }
        func take() -> (lines: [String], finished: Bool) {
            state.withLock { s in
                defer { s.lines = [] }
                return s
            }
        }
    }

    let port: UInt16
    private let listener: Int32
    private let stopped = Atomic<Bool>(false)
    private let log = Mutex<[Request]>([])
    private let handler: @Sendable (Request) -> Response

    var requests: [Request] { log.withLock { $0 } }

    init(handler: @escaping @Sendable (Request) -> Response) throws {
        self.handler = handler
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        listener = fd
        Self.setTimeout(fd)
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func stop() {
        stopped.store(true, ordering: .sequentiallyConsistent)
    }

    deinit { close(listener) }

    private static func setTimeout(_ fd: Int32) {
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    private var isStopped: Bool { stopped.load(ordering: .sequentiallyConsistent) }

    private func acceptLoop() {
        while !isStopped {
            let client = accept(listener, nil, nil)
            if client < 0 { continue }   // the receive timeout: look at `stopped` again
            Self.setTimeout(client)
            Thread.detachNewThread { [self] in serve(client) }
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !isStopped {
            let terminator: [UInt8] = Array("\r\n\r\n".utf8)
            guard let end = buffer.firstRange(of: terminator) else {
                let n = recv(fd, &chunk, chunk.count, 0)
                if n == 0 { return }
                if n < 0 { if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue } else { return } }
                buffer += chunk[0..<n]
                continue
            }
            let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
            buffer.removeSubrange(..<end.upperBound)
            guard let request = Self.parse(head) else { return }
            log.withLock { $0.append(request) }
            switch handler(request) {
            case .json(let code, let body):
                let bytes = Array(body.utf8)
                guard write(fd, "HTTP/1.1 \(code) X\r\nContent-Type: application/json\r\nContent-Length: \(bytes.count)\r\n\r\n", bytes)
                else { return }
            case .watch(let stream):
                guard write(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", [])
                else { return }
                while true {
                    if isStopped { return }
                    let (lines, finished) = stream.take()
                    for line in lines {
                        let data = Array((line + "\n").utf8)
                        guard write(fd, String(data.count, radix: 16) + "\r\n", data + Array("\r\n".utf8)) else { return }
                    }
                    if finished { break }
                    if lines.isEmpty {
                        usleep(5_000)
                        // A client that went away (cancelled task) shows as a readable EOF.
                        var probe: UInt8 = 0
                        let n = recv(fd, &probe, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
                        if n == 0 { return }
                    }
                }
                guard write(fd, "0\r\n\r\n", []) else { return }
            }
        }
    }

    private func write(_ fd: Int32, _ head: String, _ body: [UInt8]) -> Bool {
        let bytes = Array(head.utf8) + body
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { if n < 0, errno == EAGAIN || errno == EINTR, !isStopped { continue }; return false }
            sent += n
        }
        return true
    }

    private static func parse(_ head: String) -> Request? {
        let lines = head.components(separatedBy: "\r\n")
        let parts = lines.first?.split(separator: " ") ?? []
        guard parts.count >= 2 else { return nil }
        let target = String(parts[1])
        let components = URLComponents(string: target)
        var query: [String: String] = [:]
        for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Request(path: components?.path ?? target, query: query, headers: headers, at: .now)
    }
}
