import Foundation
import Glibc
import NetAddress
import NIOCore
import NIOPosix

/// A stand-in for the Kubernetes API server that speaks its wire protocol, for the API source's unit
/// tests, keeld's end-to-end tests and the cluster benchmark. It holds Node, Namespace, Pod, Service,
/// EndpointSlice, NetworkPolicy and ServiceCIDR objects as JSON, stamps every change with a resourceVersion, and serves
///
/// - `GET <collection>[?limit=N[&continue=T]]`: a LIST (`<Kind>List` with `metadata.resourceVersion`),
///   in pages of `limit` with `continue` tokens; the pages of one list are a consistent snapshot, and a
///   token older than the compaction point gets 410 `Expired`, as from etcd;
/// - `GET <collection>?watch=1&resourceVersion=N[&allowWatchBookmarks=true][&timeoutSeconds=S]`: a chunked
///   stream of ADDED/MODIFIED/DELETED events after N (BOOKMARK every ``bookmarkInterval`` and at the
///   end when asked), or an ERROR event with a 410 Status when N is older than the compaction point;
/// - `PATCH /api/v1/nodes/<name>[/status]`: a JSON merge patch (conditions merged by `type`, as a
///   strategic merge patch does), recorded and applied, and seen by watchers as MODIFIED.
///
/// Over HTTPS with a certificate from a ``TestCertificateAuthority`` (or plain HTTP), with bearer-token
/// authentication: a request without one of ``acceptedTokens`` gets 401 and an `Unauthorized` Status.
/// It listens inside `namespace` (a lab namespace, never the root one) or on loopback.
///
/// Test controls: ``apply(_:)``/``delete(_:namespace:name:)`` (as `kubectl` would), ``compact()``,
/// ``dropWatches()``, ``sendRawWatchLine(_:kind:)`` and ``failNext(_:code:reason:where:)``.
public final class FakeKubeAPI: @unchecked Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        case node = "Node", namespace = "Namespace", pod = "Pod", service = "Service"
        case endpointSlice = "EndpointSlice", networkPolicy = "NetworkPolicy", serviceCIDR = "ServiceCIDR"

        public var collectionPath: String {
            switch self {
            case .node: "/api/v1/nodes"
            case .namespace: "/api/v1/namespaces"
            case .pod: "/api/v1/pods"
            case .service: "/api/v1/services"
            case .endpointSlice: "/apis/discovery.k8s.io/v1/endpointslices"
            case .networkPolicy: "/apis/networking.k8s.io/v1/networkpolicies"
            case .serviceCIDR: "/apis/networking.k8s.io/v1/servicecidrs"
            }
        }
        public var apiVersion: String {
            switch self {
            case .node, .namespace, .pod, .service: "v1"
            case .endpointSlice: "discovery.k8s.io/v1"
            case .networkPolicy, .serviceCIDR: "networking.k8s.io/v1"
            }
        }
        var namespaced: Bool { self != .node && self != .namespace && self != .serviceCIDR }
    }

    /// A request as it arrived (body included for PATCH), and the status it was answered with.
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var query: [String: String]
        /// Lower-cased names.
        public var headers: [String: String]
        public var body: String
        public var at: ContinuousClock.Instant
        /// The HTTP status of the answer (200 for a watch that was started); nil while not answered.
        public var responseCode: Int?
        public var isWatch: Bool { query["watch"] == "1" || query["watch"] == "true" }
    }

    /// One event written to a watch stream (bookmarks not included).
    public struct Delivery: Sendable, Hashable {
        public var kind: Kind
        public var resourceVersion: Int
        public var type: String
        public var name: String
    }

    /// How a watch from a compacted resourceVersion is refused: the API server's way (200 and an ERROR
    /// event carrying a 410 Status), or a 410 response, as some proxies answer.
    public enum ExpiredWatchAnswer: Sendable { case errorEvent, httpStatus }

    public let address: IPAddress
    public let port: UInt16
    public let isTLS: Bool
    public var url: String { "\(isTLS ? "https" : "http")://\(address):\(port)" }

    /// The CA that signed the server's certificate (nil for plain HTTP): what clients trust.
    public let certificateAuthority: TestCertificateAuthority?
    /// The CA-signed identity the server presents (nil for plain HTTP).
    public let identity: TestCertificateAuthority.ServerIdentity?

    let lock = NSLock()
    private var state = StoreState()
    private let group: MultiThreadedEventLoopGroup
    private var serverChannel: Channel?

    /// Listens on `address`:`port` (0: an ephemeral port) inside `namespace`, or in this process's
    /// namespace when nil (then `address` must be loopback). With `certificateAuthority`, serves HTTPS
    /// with a certificate it signs for `address`. `acceptedTokens` nil: no authentication.
    public init(in namespace: LabNamespace?, address: IPAddress, port: UInt16 = 0,
                certificateAuthority: TestCertificateAuthority? = nil, acceptedTokens: Set<String>? = nil) throws {
        if namespace == nil, !(address.description.hasPrefix("127.")) {
            throw ProcessError(command: ["FakeKubeAPI"], reason: "outside a lab namespace it listens on loopback only, not \(address)")
        }
        self.address = address
        isTLS = certificateAuthority != nil
        self.certificateAuthority = certificateAuthority
        identity = try certificateAuthority?.issueServerCertificate(for: [address])
        state.acceptedTokens = acceptedTokens
        // Made, bound and listening inside the namespace; NIO serves the socket from any thread.
        let listen = { () throws -> (Int32, UInt16) in try Self.listeningSocket(address, port) }
        let (fd, boundPort) = try namespace.map { try $0.run(listen) } ?? listen()
        self.port = boundPort
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            serverChannel = try FakeKubeAPIConnection.bootstrap(api: self, group: group, identity: identity)
                .withBoundSocket(fd).wait()
        } catch {
            close(fd)
            try? group.syncShutdownGracefully()
            throw error
        }
    }

    deinit { stop() }

    /// Stops listening and ends every open connection (watches end without their last chunk, as when
    /// the server goes away). Safe to call twice.
    public func stop() {
        let (server, connections) = locked { () -> (Channel?, [Channel]) in
            defer { serverChannel = nil; state.connections = [:]; state.watches = [:] }
            return (serverChannel, Array(state.connections.values))
        }
        guard let server else { return }
        if MultiThreadedEventLoopGroup.currentEventLoop != nil {
            // The last reference went away on an event loop (a timer's closure): waiting there would deadlock.
            server.close(promise: nil)
            for c in connections { c.close(promise: nil) }
            group.shutdownGracefully { _ in }
            return
        }
        try? server.close().wait()   // already closed: nothing left to do
        for c in connections { try? c.close().wait() }
        try? group.syncShutdownGracefully()   // a second shutdown of the loop group is the only failure
    }

    /// Every request so far, in arrival order.
    public var requests: [Request] { locked { state.log } }
    /// Every event written to a watch stream, in order.
    public var deliveries: [Delivery] { locked { state.deliveries } }
    /// The current resourceVersion (the last change's).
    public var resourceVersion: Int { locked { state.resourceVersion } }
    /// Connections accepted so far (a client that failed the TLS handshake counts, but sent no request).
    public var acceptedConnectionCount: Int { locked { state.acceptedConnections } }
    /// Open watch streams.
    public var openWatchCount: Int { locked { state.watches.count } }

    /// The bearer tokens that authenticate a request; nil: every request does. Setting it takes effect
    /// for the next request (a rotated token).
    public var acceptedTokens: Set<String>? {
        get { locked { state.acceptedTokens } }
        set { locked { state.acceptedTokens = newValue } }
    }

    /// How often an open watch that asked for bookmarks gets one.
    public var bookmarkInterval: Duration {
        get { locked { state.bookmarkInterval } }
        set { locked { state.bookmarkInterval = newValue } }
    }

    public var expiredWatchAnswer: ExpiredWatchAnswer {
        get { locked { state.expiredWatchAnswer } }
        set { locked { state.expiredWatchAnswer = newValue } }
    }

    // MARK: Objects

    /// Creates or replaces the object (JSON with `kind` and `metadata.name`): ADDED or MODIFIED. The
    /// content is not validated beyond that, so an object Keel must reject is served as it is.
    public func apply(_ json: String) throws {
        try apply(contentsOf: [json])
    }

    /// Applies many objects under one lock (the benchmark's thousands).
    public func apply(contentsOf documents: [String]) throws {
        var parsed: [(Kind, String, [String: Any])] = []
        for json in documents {
            guard let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
                  let kind = (object["kind"] as? String).flatMap(Kind.init(rawValue:)),
                  let meta = object["metadata"] as? [String: Any], let name = meta["name"] as? String else {
                throw ProcessError(command: ["FakeKubeAPI.apply"], reason: "not an object of a served kind: \(json.prefix(120))")
            }
            parsed.append((kind, Self.key(kind, meta["namespace"] as? String, name), object))
        }
        locked {
            for (kind, key, object) in parsed {
                record(kind, key, object, type: state.objects[kind]?[key] == nil ? "ADDED" : "MODIFIED")
            }
        }
    }

    /// Deletes the object if it exists: DELETED. Returns whether it did.
    @discardableResult
    public func delete(_ kind: Kind, namespace: String? = nil, name: String) -> Bool {
        let key = Self.key(kind, namespace, name)
        return locked {
            guard let object = state.objects[kind]?[key] else { return false }
            record(kind, key, object.value, type: "DELETED")
            return true
        }
    }

    /// The object as stored now (with the patches applied), as JSON; nil if there is none.
    public func objectJSON(_ kind: Kind, namespace: String? = nil, name: String) -> String? {
        locked { state.objects[kind]?[Self.key(kind, namespace, name)].map { String(decoding: $0.json, as: UTF8.self) } }
    }

    /// The object as stored now, decoded.
    public func object(_ kind: Kind, namespace: String? = nil, name: String) -> [String: Any]? {
        locked { state.objects[kind]?[Self.key(kind, namespace, name)]?.value }
    }

    /// Names of the stored objects of `kind` (`namespace/name` for namespaced kinds).
    public func keys(_ kind: Kind) -> [String] { locked { (state.objects[kind] ?? [:]).keys.sorted() } }

    // MARK: Test controls

    /// Forgets the event history, as etcd compaction does: a watch from any resourceVersion before
    /// now, and a continue token of a list taken before now, get 410 Expired.
    public func compact() { locked { compactLocked() } }

    private func compactLocked() {
        state.compactedThrough = state.resourceVersion
        state.history = [:]
        state.listSnapshots = state.listSnapshots.filter { $0.key >= state.compactedThrough }
    }

    /// Compacts right after answering the first request that `matching` selects (between two pages of a
    /// list, say, which a test cannot time from outside), after a write to some other resource moved the
    /// resourceVersion on, as leases and events do in a real cluster: everything before it expires.
    public func compact(afterAnswering matching: @escaping @Sendable (Request) -> Bool) {
        locked { state.compactionTriggers.append(matching) }
    }

    /// Cuts every open watch stream mid-way: half an event line, then the connection closes without
    /// the terminating chunk, as when a load balancer or the server goes away.
    public func dropWatches() {
        let cut = locked { () -> [WatchSession] in
            defer { state.watches = [:] }
            return Array(state.watches.values)
        }
        for session in cut { session.cut() }
    }

    /// Writes `line` (and a newline) to every open watch of `kind` as it is: a line that is not a
    /// watch event, for the client's handling of garbage.
    public func sendRawWatchLine(_ line: String, kind: Kind) {
        locked { for session in state.watches.values where session.kind == kind { session.write(line) } }
    }

    /// The next `count` requests that `matching` selects are answered `code` with a Status of `reason`
    /// (a failing or overloaded server).
    public func failNext(_ count: Int, code: Int = 500, reason: String = "InternalError",
                         where matching: @escaping @Sendable (Request) -> Bool = { _ in true }) {
        locked { state.faults.append(Fault(remaining: count, code: code, reason: reason, matches: matching)) }
    }

    // MARK: Store

    struct Stored {
        var value: [String: Any]
        var json: Data
    }
    struct Fault {
        var remaining: Int
        var code: Int
        var reason: String
        var matches: @Sendable (Request) -> Bool
    }
    struct StoredEvent {
        var resourceVersion: Int
        var type: String
        var name: String
        var json: Data
    }
    struct StoreState {
        var objects: [Kind: [String: Stored]] = [:]
        var history: [Kind: [StoredEvent]] = [:]
        var resourceVersion = 100
        /// Events up to here are forgotten.
        var compactedThrough = 100
        /// The items of lists still being paged, by the list's resourceVersion.
        var listSnapshots: [Int: [Kind: [Data]]] = [:]
        var acceptedTokens: Set<String>?
        var bookmarkInterval: Duration = .seconds(1)
        var expiredWatchAnswer = ExpiredWatchAnswer.errorEvent
        var faults: [Fault] = []
        var compactionTriggers: [@Sendable (Request) -> Bool] = []
        var log: [Request] = []
        var deliveries: [Delivery] = []
        var watches: [ObjectIdentifier: WatchSession] = [:]
        var connections: [ObjectIdentifier: Channel] = [:]
        var acceptedConnections = 0
    }

    /// Under `lock`: stamps a new resourceVersion, stores (or removes) the object, keeps the event and
    /// writes it to the kind's open watches.
    private func record(_ kind: Kind, _ key: String, _ object: [String: Any], type: String) {
        state.resourceVersion += 1
        let rv = state.resourceVersion
        var stamped = object
        var meta = stamped["metadata"] as? [String: Any] ?? [:]
        meta["resourceVersion"] = "\(rv)"
        stamped["metadata"] = meta
        stamped["kind"] = kind.rawValue
        stamped["apiVersion"] = kind.apiVersion
        let json = Self.encode(stamped)
        if type == "DELETED" { state.objects[kind]?[key] = nil } else { state.objects[kind, default: [:]][key] = Stored(value: stamped, json: json) }
        let event = StoredEvent(resourceVersion: rv, type: type, name: key, json: json)
        state.history[kind, default: []].append(event)
        for session in state.watches.values where session.kind == kind { deliver(event, to: session) }
    }

    /// Under `lock`.
    private func deliver(_ event: StoredEvent, to session: WatchSession) {
        session.write(Array("{\"type\":\"\(event.type)\",\"object\":".utf8) + event.json + Array("}".utf8))
        state.deliveries.append(Delivery(kind: session.kind, resourceVersion: event.resourceVersion, type: event.type, name: event.name))
    }

    static func key(_ kind: Kind, _ namespace: String?, _ name: String) -> String {
        kind.namespaced ? "\(namespace ?? "default")/\(name)" : name
    }

    static func encode(_ object: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    }

    func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    // MARK: Serving

    /// What a connection does with a request: an answer, or a watch stream (already registered).
    enum Answer {
        case response(code: Int, body: String)
        case watchStarted
    }

    func connectionOpened(_ channel: Channel) {
        locked {
            state.connections[ObjectIdentifier(channel)] = channel
            state.acceptedConnections += 1
        }
    }
    func connectionClosed(_ channel: Channel) {
        locked {
            state.connections[ObjectIdentifier(channel)] = nil
            for (id, session) in state.watches where session.channel === channel {
                session.cancelTimers()
                state.watches[id] = nil
            }
        }
    }

    /// Logs and answers `request`. A watch writes its head and backlog under the lock, so that no event
    /// recorded meanwhile comes before them or is missed.
    func handle(_ request: Request, channel: Channel) -> Answer {
        locked {
            state.log.append(request)
            let index = state.log.count - 1
            let answer = answer(request, channel: channel)
            switch answer {
            case .response(let code, _): state.log[index].responseCode = code
            case .watchStarted: state.log[index].responseCode = 200
            }
            if let i = state.compactionTriggers.firstIndex(where: { $0(request) }) {
                state.compactionTriggers.remove(at: i)
                state.resourceVersion += 1
                compactLocked()
            }
            return answer
        }
    }

    /// Under `lock`.
    private func answer(_ request: Request, channel: Channel) -> Answer {
        if let tokens = state.acceptedTokens {
            let header = request.headers["authorization"] ?? ""
            guard header.hasPrefix("Bearer "), tokens.contains(String(header.dropFirst(7))) else {
                return .response(code: 401, body: Self.status(401, "Unauthorized", "Unauthorized"))
            }
        }
        if let i = state.faults.firstIndex(where: { $0.remaining > 0 && $0.matches(request) }) {
            state.faults[i].remaining -= 1
            let fault = state.faults[i]
            return .response(code: fault.code, body: Self.status(fault.code, fault.reason, "injected by the test"))
        }
        if request.method == "GET", let kind = Kind.allCases.first(where: { $0.collectionPath == request.path }) {
            return request.isWatch ? startWatch(kind, request, channel: channel) : list(kind, request)
        }
        if request.method == "PATCH", request.path.hasPrefix(Kind.node.collectionPath + "/") {
            return patchNode(request)
        }
        return .response(code: 404, body: Self.status(404, "NotFound", "\(request.method) \(request.path) is not served here"))
    }

    private struct ContinueToken: Codable {
        var rv: Int
        var start: Int
    }

    /// Under `lock`: one page of a list.
    private func list(_ kind: Kind, _ request: Request) -> Answer {
        let limit = Int(request.query["limit"] ?? "").flatMap { $0 > 0 ? $0 : nil }
        var rv = state.resourceVersion
        var start = 0
        let items: [Data]
        if let text = request.query["continue"], !text.isEmpty {
            guard let data = Data(base64Encoded: text), let token = try? JSONDecoder().decode(ContinueToken.self, from: data) else {
                return .response(code: 400, body: Self.status(400, "BadRequest", "invalid continue token"))
            }
            guard token.rv >= state.compactedThrough, let snapshot = state.listSnapshots[token.rv]?[kind] else {
                return .response(code: 410, body: Self.status(410, "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."))
            }
            (rv, start, items) = (token.rv, token.start, snapshot)
        } else {
            items = (state.objects[kind] ?? [:]).sorted { $0.key < $1.key }.map(\.value.json)
        }
        let end = min(items.count, start + (limit ?? items.count))
        var meta = "\"resourceVersion\":\"\(rv)\""
        if end < items.count {
            state.listSnapshots[rv, default: [:]][kind] = items   // kept for the next pages until compaction
            let token = (try? JSONEncoder().encode(ContinueToken(rv: rv, start: end)))?.base64EncodedString() ?? ""
            meta += ",\"continue\":\"\(token)\",\"remainingItemCount\":\(items.count - end)"
        } else if start > 0 {
            state.listSnapshots[rv]?[kind] = nil
        }
        var body = Data("{\"kind\":\"\(kind.rawValue)List\",\"apiVersion\":\"\(kind.apiVersion)\",\"metadata\":{\(meta)},\"items\":[".utf8)
        for (i, item) in items[start..<end].enumerated() {
            if i > 0 { body.append(UInt8(ascii: ",")) }
            body.append(item)
        }
        body.append(contentsOf: Array("]}".utf8))
        return .response(code: 200, body: String(decoding: body, as: UTF8.self))
    }

    /// Under `lock`: registers the stream and writes the events after the requested resourceVersion.
    private func startWatch(_ kind: Kind, _ request: Request, channel: Channel) -> Answer {
        let from = Int(request.query["resourceVersion"] ?? "") ?? 0
        let bookmarks = request.query["allowWatchBookmarks"] == "true"
        let timeout = Int(request.query["timeoutSeconds"] ?? "").map { min($0, 1800) } ?? 1800
        if from != 0 && from < state.compactedThrough {
            let message = "too old resource version: \(from) (\(state.compactedThrough))"
            if state.expiredWatchAnswer == .httpStatus { return .response(code: 410, body: Self.status(410, "Expired", message)) }
            let session = WatchSession(kind: kind, channel: channel, bookmarks: false)
            session.write("{\"type\":\"ERROR\",\"object\":\(Self.status(410, "Expired", message))}")
            session.finish(bookmarkResourceVersion: nil)
            return .watchStarted
        }
        let session = WatchSession(kind: kind, channel: channel, bookmarks: bookmarks)
        state.watches[ObjectIdentifier(session)] = session
        if from == 0 {
            // No resourceVersion: the current state as ADDED events, then the changes (as the API server does).
            for (key, object) in (state.objects[kind] ?? [:]).sorted(by: { $0.key < $1.key }) {
                let rv = Int((object.value["metadata"] as? [String: Any])?["resourceVersion"] as? String ?? "") ?? 0
                deliver(StoredEvent(resourceVersion: rv, type: "ADDED", name: key, json: object.json), to: session)
            }
        } else {
            for event in state.history[kind] ?? [] where event.resourceVersion > from { deliver(event, to: session) }
        }
        let id = ObjectIdentifier(session)
        session.schedule(timeout: .seconds(Int64(timeout)), bookmarkEvery: bookmarks ? TimeAmount(state.bookmarkInterval) : nil,
            tick: { [weak self, weak session] in
                // Under the lock, so that no event recorded meanwhile comes after a bookmark that passed it.
                guard let self, let session else { return }
                self.locked { if self.state.watches[id] != nil { session.writeBookmark(self.state.resourceVersion) } }
            },
            expired: { [weak self, weak session] in
                guard let self, let session else { return }
                self.locked {
                    guard self.state.watches.removeValue(forKey: id) != nil else { return }
                    session.finish(bookmarkResourceVersion: session.bookmarks ? self.state.resourceVersion : nil)
                }
            })
        return .watchStarted
    }

    /// Under `lock`: a merge patch of a node or its status.
    private func patchNode(_ request: Request) -> Answer {
        var rest = request.path.dropFirst(Kind.node.collectionPath.count + 1).split(separator: "/").map(String.init)
        let status = rest.last == "status" && rest.count == 2
        if status { rest.removeLast() }
        guard rest.count == 1, let patch = try? JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any] else {
            return .response(code: 400, body: Self.status(400, "BadRequest", "cannot read the patch"))
        }
        let name = rest[0]
        guard let current = state.objects[.node]?[name] else {
            return .response(code: 404, body: Self.status(404, "NotFound", "nodes \"\(name)\" not found"))
        }
        // A status patch changes only status, a patch of the object everything but status (as the API server does).
        var scoped = patch
        if status { scoped = patch["status"].map { ["status": $0] } ?? [:] } else { scoped["status"] = nil }
        record(.node, name, Self.merge(current.value, scoped), type: "MODIFIED")
        return .response(code: 200, body: String(decoding: state.objects[.node]![name]!.json, as: UTF8.self))
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

    /// A `Status` object, as the API server sends with every failure.
    static func status(_ code: Int, _ reason: String, _ message: String) -> String {
        let text = String(decoding: (try? JSONEncoder().encode(message)) ?? Data("\"\"".utf8), as: UTF8.self)   // quotes escaped
        return "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\(text),\"reason\":\"\(reason)\",\"code\":\(code)}"
    }

    private static func listeningSocket(_ address: IPAddress, _ port: UInt16) throws -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard withSocketAddress(address, port, { bind(fd, $0, $1) }) == 0, listen(fd, 128) == 0 else {
            let e = errno
            close(fd)
            throw ProcessError(command: ["listen \(address):\(port)"], reason: String(cString: strerror(e)))
        }
        var sin = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, UInt16(bigEndian: sin.sin_port))
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
