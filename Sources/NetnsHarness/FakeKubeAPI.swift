import Foundation
import Glibc
import NetAddress

/// A small stand-in for the Kubernetes API server, for end-to-end tests of keeld's API source: it
/// holds Node, Namespace, Pod, Service, EndpointSlice and NetworkPolicy objects as JSON and serves
///
/// - `GET <collection>`: a LIST of every object of the kind with the current resourceVersion;
/// - `GET <collection>?watch=1&resourceVersion=N`: a chunked WATCH stream of the events after N
///   (ADDED, MODIFIED, DELETED), open until the request's `timeoutSeconds`, the client going away or ``stop()``;
/// - `PATCH /api/v1/nodes/<name>[/status]`: a JSON merge patch (conditions merged by `type`, as a
///   strategic merge patch does), recorded and applied, and seen by watchers as MODIFIED.
///
/// Plain HTTP on one address; it listens inside `namespace` (a lab namespace, never the root one)
/// or on loopback. Objects change through ``apply(_:)`` and ``delete(_:namespace:name:)``, as
/// `kubectl apply` and `kubectl delete` would.
public final class FakeKubeAPI: @unchecked Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        case node = "Node", namespace = "Namespace", pod = "Pod", service = "Service"
        case endpointSlice = "EndpointSlice", networkPolicy = "NetworkPolicy"

        public var collectionPath: String {
            switch self {
            case .node: "/api/v1/nodes"
            case .namespace: "/api/v1/namespaces"
            case .pod: "/api/v1/pods"
            case .service: "/api/v1/services"
            case .endpointSlice: "/apis/discovery.k8s.io/v1/endpointslices"
            case .networkPolicy: "/apis/networking.k8s.io/v1/networkpolicies"
            }
        }
        public var apiVersion: String {
            switch self {
            case .node, .namespace, .pod, .service: "v1"
            case .endpointSlice: "discovery.k8s.io/v1"
            case .networkPolicy: "networking.k8s.io/v1"
            }
        }
        var namespaced: Bool { self != .node && self != .namespace }
    }

    /// A request as it arrived (body included for PATCH).
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var query: [String: String]
        public var headers: [String: String]
        public var body: String
        public var isWatch: Bool { query["watch"] == "1" || query["watch"] == "true" }
    }

    public let address: IPAddress
    public private(set) var port: UInt16 = 0
    public var url: String { "http://\(address):\(port)" }

    private let lock = NSLock()
    private var objects: [Kind: [String: [String: Any]]] = [:]
    private var events: [Kind: [(rv: Int, type: String, object: Data)]] = [:]
    private var resourceVersion = 100
    private var log: [Request] = []
    private var listener: Int32 = -1
    private var stopped = false

    /// Listens on `address`:`port` (0: an ephemeral port) inside `namespace`, or in this process's
    /// namespace when nil (then `address` must be loopback).
    public init(in namespace: LabNamespace?, address: IPAddress, port: UInt16 = 0) throws {
        self.address = address
        let open = { () throws -> (Int32, UInt16) in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            guard withSocketAddress(address, port, { bind(fd, $0, $1) }) == 0, listen(fd, 64) == 0 else {
                let e = errno
                close(fd)
                throw ProcessError(command: ["listen \(address):\(port)"], reason: String(cString: strerror(e)))
            }
            var sin = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            return (fd, UInt16(bigEndian: sin.sin_port))
        }
        if namespace == nil, !(address.description.hasPrefix("127.")) {
            throw ProcessError(command: ["FakeKubeAPI"], reason: "outside a lab namespace it listens on loopback only, not \(address)")
        }
        (listener, self.port) = try namespace.map { try $0.run(open) } ?? open()
        Self.setTimeout(listener)
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    deinit { stop() }

    /// Stops listening and ends every open connection (watches end without their last chunk, as when
    /// the server goes away). Safe to call twice.
    public func stop() {
        lock.lock()
        let wasStopped = stopped
        stopped = true
        lock.unlock()
        guard !wasStopped else { return }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    public var requests: [Request] { locked { log } }

    // MARK: Objects

    /// Creates or replaces the object (JSON with `kind` and `metadata.name`): ADDED or MODIFIED.
    public func apply(_ json: String) throws {
        guard let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let kind = (object["kind"] as? String).flatMap(Kind.init(rawValue:)),
              let meta = object["metadata"] as? [String: Any], let name = meta["name"] as? String else {
            throw ProcessError(command: ["FakeKubeAPI.apply"], reason: "not an object of a served kind: \(json.prefix(120))")
        }
        let key = Self.key(kind, meta["namespace"] as? String, name)
        locked {
            let type = objects[kind]?[key] == nil ? "ADDED" : "MODIFIED"
            record(kind, key, object, type: type)
        }
    }

    /// Deletes the object if it exists: DELETED. Returns whether it did.
    @discardableResult
    public func delete(_ kind: Kind, namespace: String? = nil, name: String) -> Bool {
        let key = Self.key(kind, namespace, name)
        return locked {
            guard let object = objects[kind]?[key] else { return false }
            record(kind, key, object, type: "DELETED")
            return true
        }
    }

    /// The object as stored now (with the patches applied), as JSON; nil if there is none.
    public func objectJSON(_ kind: Kind, namespace: String? = nil, name: String) -> String? {
        locked { objects[kind]?[Self.key(kind, namespace, name)].map { String(decoding: Self.encode($0), as: UTF8.self) } }
    }

    /// The object as stored now, decoded.
    public func object(_ kind: Kind, namespace: String? = nil, name: String) -> [String: Any]? {
        locked { objects[kind]?[Self.key(kind, namespace, name)] }
    }

    /// Under `lock`: stamps a new resourceVersion, stores (or removes) and logs the event.
    private func record(_ kind: Kind, _ key: String, _ object: [String: Any], type: String) {
        resourceVersion += 1
        var stamped = object
        var meta = stamped["metadata"] as? [String: Any] ?? [:]
        meta["resourceVersion"] = "\(resourceVersion)"
        stamped["metadata"] = meta
        stamped["kind"] = kind.rawValue
        stamped["apiVersion"] = kind.apiVersion
        if type == "DELETED" { objects[kind]?[key] = nil } else { objects[kind, default: [:]][key] = stamped }
        events[kind, default: []].append((resourceVersion, type, Self.encode(stamped)))
    }

    private static func key(_ kind: Kind, _ namespace: String?, _ name: String) -> String {
        kind.namespaced ? "\(namespace ?? "default")/\(name)" : name
    }

    private static func encode(_ object: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    }

    private func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    // MARK: HTTP

    private var isStopped: Bool { locked { stopped } }

    private static func setTimeout(_ fd: Int32) {
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    private func acceptLoop() {
        defer { close(listener) }
        while !isStopped {
            let client = accept(listener, nil, nil)
            if client < 0 { if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue } else { return } }
            Self.setTimeout(client)
            Thread.detachNewThread { [self] in serve(client) }
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        let terminator = Array("\r\n\r\n".utf8)
        func receive() -> Bool {
            while !isStopped {
                let n = recv(fd, &chunk, chunk.count, 0)
                if n > 0 { buffer += chunk[0..<n]; return true }
                if n == 0 { return false }
                if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { return false }
            }
            return false
        }
        while !isStopped {
            guard let end = buffer.firstRange(of: terminator) else {
                guard receive() else { return }
                continue
            }
            let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
            guard var request = Self.parse(head) else { return }
            let length = Int(request.headers["content-length"] ?? "0") ?? 0
            while buffer.count < end.upperBound + length { guard receive() else { return } }
            request.body = String(decoding: buffer[end.upperBound..<(end.upperBound + length)], as: UTF8.self)
            buffer.removeSubrange(..<(end.upperBound + length))
            locked { log.append(request) }
            if request.method == "GET", request.isWatch, let kind = Kind.allCases.first(where: { $0.collectionPath == request.path }) {
                guard streamWatch(fd, kind, request) else { return }
                continue
            }
            let (code, body) = answer(request)
            let bytes = Array(body.utf8)
            guard send(fd, Array("HTTP/1.1 \(code) \(code == 200 ? "OK" : "Error")\r\nContent-Type: application/json\r\nContent-Length: \(bytes.count)\r\n\r\n".utf8) + bytes)
            else { return }
        }
    }

    private func answer(_ request: Request) -> (Int, String) {
        if request.method == "GET", let kind = Kind.allCases.first(where: { $0.collectionPath == request.path }) {
            return locked {
                let items = (objects[kind] ?? [:]).sorted { $0.key < $1.key }.map { String(decoding: Self.encode($0.value), as: UTF8.self) }
                return (200, "{\"kind\":\"\(kind.rawValue)List\",\"apiVersion\":\"\(kind.apiVersion)\",\"metadata\":{\"resourceVersion\":\"\(resourceVersion)\"},\"items\":[\(items.joined(separator: ","))]}")
            }
        }
        let nodes = Kind.node.collectionPath + "/"
        if request.method == "PATCH", request.path.hasPrefix(nodes) {
            var rest = request.path.dropFirst(nodes.count).split(separator: "/").map(String.init)
            let status = rest.last == "status" && rest.count == 2
            if status { rest.removeLast() }
            guard rest.count == 1, let patch = try? JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any] else {
                return (400, Self.status(400, "BadRequest", "cannot read the patch"))
            }
            let name = rest[0]
            return locked {
                guard let current = objects[.node]?[name] else { return (404, Self.status(404, "NotFound", "nodes \"\(name)\" not found")) }
                // A status patch changes only status, a patch of the object everything but status (as the API server does).
                var scoped = patch
                if status { scoped = patch["status"].map { ["status": $0] } ?? [:] } else { scoped["status"] = nil }
                let merged = Self.merge(current, scoped)
                record(.node, name, merged, type: "MODIFIED")
                return (200, String(decoding: Self.encode(objects[.node]![name]!), as: UTF8.self))
            }
        }
        return (404, Self.status(404, "NotFound", "\(request.method) \(request.path) is not served here"))
    }

    /// RFC 7386 merge; a list of `conditions` merges item by item on `type`, as the strategic merge
    /// patch of NodeStatus does.
    static func merge(_ target: [String: Any], _ patch: [String: Any]) -> [String: Any] {
        var out = target
        for (k, v) in patch {
            if v is NSNull { out[k] = nil; continue }
            if let p = v as? [String: Any] {
                out[k] = merge(out[k] as? [String: Any] ?? [:], p)
            } else if k == "conditions", let items = v as? [[String: Any]] {
                var list = out[k] as? [[String: Any]] ?? []
                for item in items {
                    if let i = list.firstIndex(where: { ($0["type"] as? String) == (item["type"] as? String) }) {
                        list[i] = merge(list[i], item)
                    } else { list.append(item) }
                }
                out[k] = list
            } else {
                out[k] = v
            }
        }
        return out
    }

    private static func status(_ code: Int, _ reason: String, _ message: String) -> String {
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"\(reason)\",\"message\":\"\(message.replacingOccurrences(of: "\"", with: "'"))\",\"code\":\(code)}"
    }

    /// Sends the events after the request's resourceVersion, then new ones as they come, until the
    /// request's timeoutSeconds; false when the connection is gone.
    private func streamWatch(_ fd: Int32, _ kind: Kind, _ request: Request) -> Bool {
        var sent = Int(request.query["resourceVersion"] ?? "") ?? 0
        let seconds = min(Double(request.query["timeoutSeconds"] ?? "") ?? 1800, 1800)
        let deadline = Date().addingTimeInterval(seconds)
        guard send(fd, Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)) else { return false }
        while Date() < deadline {
            if isStopped { return false }
            let pending = locked { (events[kind] ?? []).filter { $0.rv > sent } }
            for e in pending {
                let line = Array("{\"type\":\"\(e.type)\",\"object\":".utf8) + Array(e.object) + Array("}\n".utf8)
                guard send(fd, Array((String(line.count, radix: 16) + "\r\n").utf8) + line + Array("\r\n".utf8)) else { return false }
                sent = e.rv
            }
            if pending.isEmpty {
                usleep(10_000)
                var probe: UInt8 = 0
                if recv(fd, &probe, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 0 { return false }   // the client went away
            }
        }
        return send(fd, Array("0\r\n\r\n".utf8))
    }

    private func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 {
                if n < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR, !isStopped { continue }
                return false
            }
            done += n
        }
        return true
    }

    private static func parse(_ head: String) -> Request? {
        let lines = head.components(separatedBy: "\r\n")
        let parts = lines.first?.split(separator: " ") ?? []
        guard parts.count >= 2 else { return nil }
        let components = URLComponents(string: String(parts[1]))
        var query: [String: String] = [:]
        for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Request(method: String(parts[0]), path: components?.path ?? String(parts[1]), query: query, headers: headers, body: "")
    }
}
