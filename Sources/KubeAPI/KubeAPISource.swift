import AsyncHTTPClient
import Cluster
import Foundation
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// The cluster state from the Kubernetes API server: for each kind, a paginated LIST, then a WATCH
/// from the list's resourceVersion, as client-go's reflector does.
///
/// - A LIST fetches pages of `limit` objects, following `continue` tokens (the next page is fetched while
///   one is decoded), and decodes each with ``ManifestDecoder/decodeJSON(_:origin:impliedKind:)`` (JSON
///   straight from the bytes, never YAML; the same validation as a manifest folder: a malformed object is
///   logged with its kind, name and field and skipped), then calls ``ClusterStore/replaceAll(_:with:)``,
///   which also removes objects deleted while no watch ran. A page that is not JSON fails the LIST.
/// - A WATCH (`allowWatchBookmarks=true`, `timeoutSeconds` chosen at random in
///   [`minWatchTimeout`, 2·`minWatchTimeout`)) applies ADDED/MODIFIED as upserts and DELETED as deletes, and
///   BOOKMARK only advances the resourceVersion. When the server ends it, the next watch resumes from the
///   last resourceVersion seen.
/// - 410 Gone or a Status with reason `Expired` (on a watch, an ERROR event, or a stale `continue` token):
///   the resourceVersion is too old, so the kind is listed again.
/// - Any other failure (refused connection, 5xx, a dropped stream, a malformed event line) waits with
///   exponential backoff and jitter, then resumes the watch (or retries the LIST if none completed).
///
/// A MODIFIED object that no longer validates is removed from the store, which is what the next LIST
/// would do. Nodes are validated across the store (pod CIDR overlaps, in name order, as a LIST does).
/// Warnings (an object served in part) are logged by every LIST, and by a watch event only when they
/// differ from the object's last ones: a dual-stack Pod's status updates do not repeat them.
public final class KubeAPISource: ClusterSource {
    public struct Options: Sendable {
        /// LIST page size (`limit`).
        public var pageSize = 500
        /// Watches ask the server to end after a random time in [this, twice this), so that not every
        /// node reconnects at once.
        public var minWatchTimeout: Duration = .seconds(300)
        /// The longest silence on a connection before it counts as dead. Longer than the watch timeout:
        /// a quiet cluster may send nothing but the closing bookmark.
        public var readTimeout: Duration = .seconds(660)
        public var connectTimeout: Duration = .seconds(10)
        public var backoff = Backoff()
        /// The largest LIST page or watch event accepted, in bytes.
        public var maxResponseBytes = 256 << 20
        public init() {}
    }

    public let config: KubeAPIConfig
    public let kinds: Set<ObjectKind>
    public let options: Options
    public let metrics: KubeAPIMetrics
    private let logger: Logger
    private let token: BearerToken
    /// The warnings last logged per object, so that watch events log only new ones.
    private let warned = Mutex<[ObjectKey: Set<ManifestProblem>]>([:])

    public init(config: KubeAPIConfig, logger: Logger, kinds: Set<ObjectKind> = Set(ObjectKind.allCases),
                options: Options = Options(), metrics: KubeAPIMetrics = KubeAPIMetrics()) {
        self.config = config
        self.logger = logger
        self.kinds = kinds
        self.options = options
        self.metrics = metrics
        self.token = BearerToken(fixed: config.bearerToken, path: config.tokenFile)
    }

    /// The kinds this source lists into the store: those asked for that the decoder can read.
    public var listedKinds: [ObjectKind] {
        ObjectKind.allCases.filter { kinds.contains($0) && ManifestDecoder.supportedKinds.contains($0) }
    }

    /// Runs one reflector per kind until the task is cancelled. Throws only if the TLS configuration
    /// cannot be built; failures of the server are retried, never thrown.
    public func run(into store: ClusterStore) async throws {
        var http = HTTPClient.Configuration()
        if config.server.hasPrefix("https://") { http.tlsConfiguration = try config.tlsConfiguration() }
        http.timeout = .init(connect: .init(options.connectTimeout), read: .init(options.readTimeout))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
        await withTaskGroup(of: Void.self) { group in
            for kind in listedKinds {
                group.addTask { await self.reflect(kind, client: client, store: store) }
            }
        }
        do { try await client.shutdown() } catch {
            logger.debug("HTTP client shutdown", metadata: ["error": "\(error)"])   // nothing is in flight any more
        }
    }

    // MARK: Reflector

    private func reflect(_ kind: ObjectKind, client: HTTPClient, store: ClusterStore) async {
        var backoff = options.backoff
        var resourceVersion: String?
        var watched = false
        var expiredInARow = 0
        var reportedAbsent = false
        let log = logger.with(["object.kind": "\(kind)"])
        while !Task.isCancelled {
            do {
                let from: String
                if let resourceVersion { from = resourceVersion } else {
                    from = try await list(kind, client: client, store: store, logger: log)
                    resourceVersion = from
                    expiredInARow = 0
                }
                if watched { metrics.update(kind) { $0.watchRestarts += 1 } }
                watched = true
                let end = try await watch(kind, from: from, client: client, store: store, logger: log) { resourceVersion = $0 }
                // A server that closes each watch at once would make this loop spin: count it as a failure.
                if end.events == 0 && end.duration < .seconds(1) {
                    throw KubeAPIError(request: "WATCH \(kind.apiPath)", code: nil, reason: "watch ended at once")
                }
                backoff.reset()
            } catch let error as KubeAPIError where error.isExpired {
                log.info("resourceVersion too old; listing again", metadata: ["error": "\(error)"])
                resourceVersion = nil
                expiredInARow += 1
                // Expired twice in a row: the server is not keeping up; do not hammer it with LISTs.
                if expiredInARow > 1, !(await pause(&backoff)) { return }
            } catch let error as KubeAPIError where error.code == 404 && kind.isOptionalOnServer {
                // An API server without this resource (ServiceCIDR before Kubernetes 1.33, or with
                // the API group off): nothing of the kind exists. Said once, listed as empty so that
                // no controller waits for it, and asked again now and then, for after an upgrade.
                if !reportedAbsent {
                    log.info("resource not served by the API server; going on without it", metadata: ["error": "\(error)"])
                    reportedAbsent = true
                    store.replaceAll(kind, with: [])
                }
                resourceVersion = nil
                if !(await pause(&backoff)) { return }
            } catch {
                if Task.isCancelled { return }   // HTTP client errors on cancellation are not failures
                metrics.update(kind) { $0.errors += 1 }
                log.warning("list/watch failed; retrying", metadata: ["error": "\(error)"])
                if !(await pause(&backoff)) { return }
            }
        }
    }

    /// Sleeps the next backoff delay; false when cancelled meanwhile.
    private func pause(_ backoff: inout Backoff) async -> Bool {
        do { try await Task.sleep(for: backoff.next()) } catch { return false }
        return true
    }

    /// All pages of `kind`, decoded and put in the store. Returns the list's resourceVersion.
    ///
    /// Each page is decoded as soon as it arrives, while the next one is fetched, and only its
    /// decoded objects are kept: never all raw pages and all objects at once.
    private func list(_ kind: ObjectKind, client: HTTPClient, store: ClusterStore, logger: Logger) async throws -> String {
        var parts: [ManifestDecoder.DecodedFile] = []
        var resourceVersion = ""
        var next: Task<ListPage, any Error>? = fetchPage(kind, continue: nil, client: client)
        defer { next?.cancel() }
        while let fetching = next {
            // An unstructured fetch does not see this task's cancellation by itself.
            let page = try await withTaskCancellationHandler { try await fetching.value } onCancel: { fetching.cancel() }
            next = page.continueToken.map { fetchPage(kind, continue: $0, client: client) }
            resourceVersion = page.resourceVersion
            // One origin for every page: the decoder keeps their order, and cross-object rules span them all.
            let part = ManifestDecoder.decodeJSON(page.body, origin: Self.origin, limits: limits)
            if let reason = part.unreadable {
                // Never a complete list (it would delete what the page held): retried.
                throw KubeAPIError(request: page.request, code: nil, reason: "not a list", message: reason)
            }
            parts.append(part)
        }

        let decoded = ManifestDecoder.combine(parts, kinds: [kind])
        parts = []
        for problem in decoded.problems { logger.log(problem) }
        // A problem names its object by kind and name; the same name in two namespaces shares them (rare,
        // and at worst one warning is not repeated on that object's next event).
        let warnings = Dictionary(grouping: decoded.problems.filter { !$0.isError }, by: { $0.objectName ?? "" })
        warned.withLock { warned in
            warned = warned.filter { $0.key.kind != kind }
            for object in decoded.objects { if let w = warnings[object.metadata.name] { warned[object.key] = Set(w) } }
        }
        store.replaceAll(kind, with: decoded.objects)
        let now = ContinuousClock.now
        metrics.update(kind) { m in
            if m.lists > 0 { m.relists += 1 }
            m.lists += 1
            m.skippedObjects += decoded.problems.filter(\.isError).count
            m.resourceVersion = resourceVersion
            m.lastEventAt = now
        }
        logger.debug("listed", metadata: ["objects": "\(decoded.objects.count)", "resourceVersion": "\(resourceVersion)"])
        return resourceVersion
    }

    /// One LIST page: its bytes, and the list metadata read from them.
    private struct ListPage: Sendable {
        var request: String
        var body: Data
        var continueToken: String?
        var resourceVersion: String
    }

    /// Starts fetching one LIST page of `kind` (the first without a token).
    private func fetchPage(_ kind: ObjectKind, continue token: String?, client: HTTPClient) -> Task<ListPage, any Error> {
        Task {
            var query = [("limit", "\(options.pageSize)")]
            if let token { query.append(("continue", token)) }
            let (request, response) = try await get(kind.apiPath, query: query, client: client)
            let buffer = try await response.body.collect(upTo: options.maxResponseBytes)
            guard response.status == .ok else { throw statusError(request, response.status.code, Array(buffer: buffer)) }
            let body = Data(buffer.readableBytesView)
            // Only the list's `metadata` is read here (the items are the decoder's), so the page is
            // not parsed twice. A page that is not JSON at all is refused when it is decoded.
            var metadata: ListMetadata?
            if let bytes = JSONSpan.topLevelValue("metadata", in: body) {
                if let problem = limits.jsonProblem(bytes) {
                    throw KubeAPIError(request: request, code: nil, reason: "not a list", message: "metadata: \(problem)")
                }
                do { metadata = try JSONDecoder().decode(ListMetadata.self, from: Data(bytes)) } catch {
                    throw KubeAPIError(request: request, code: nil, reason: "not a list", message: "metadata: \(error)")
                }
            }
            return ListPage(request: request, body: body, continueToken: metadata?.continue.flatMap { $0.isEmpty ? nil : $0 },
                            resourceVersion: metadata?.resourceVersion ?? "")
        }
    }

    /// The decoders' bounds: the default nesting depth, and pages and events as large as accepted.
    private var limits: ManifestLimits { ManifestLimits(maxBytes: options.maxResponseBytes) }

    /// The origin of API objects in ``ManifestProblem/file`` (as ``validateNodes(_:origin:)`` suggests).
    static let origin = "apiserver"

    private struct WatchEnd { var events: Int; var duration: Duration }

    /// One watch request, applied to the store until the server ends it. `advanced` receives every
    /// resourceVersion seen, so that a failure resumes from the last one.
    private func watch(_ kind: ObjectKind, from resourceVersion: String, client: HTTPClient, store: ClusterStore,
                       logger: Logger, advanced: (String) -> Void) async throws -> WatchEnd {
        let start = ContinuousClock.now
        let minimum = options.minWatchTimeout
        let timeout = minimum + minimum * Double.random(in: 0..<1)
        let seconds = max(1, Int(timeout.components.seconds))
        let (request, response) = try await get(kind.apiPath, query: [
            ("watch", "1"), ("resourceVersion", resourceVersion), ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", "\(seconds)"),
        ], client: client)
        guard response.status == .ok else {
            let body = try await response.body.collect(upTo: 1 << 20)
            throw statusError(request, response.status.code, Array(buffer: body))
        }
        var events = 0
        var buffer: [UInt8] = []
        func handle(_ line: ArraySlice<UInt8>) throws {
            guard line.contains(where: { $0 != 0x20 && $0 != 0x0D }) else { return }
            guard let event = WatchEvent(line: line, limits: limits) else {
                throw KubeAPIError(request: request, code: nil, reason: "malformed watch event",
                                   message: String(decoding: line.prefix(200), as: UTF8.self))
            }
            events += 1
            let now = ContinuousClock.now
            metrics.update(kind) { m in
                m.eventsReceived += 1
                m.lastEventAt = now
            }
            if event.type == WatchEvent.EventType.error.rawValue {
                throw KubeAPIError(request: request, code: event.head.code, reason: event.head.reason ?? "watch ERROR event",
                                   message: event.head.message ?? "")
            }
            try apply(event, kind: kind, store: store, logger: logger)
            if let rv = event.head.metadata?.resourceVersion, !rv.isEmpty {
                advanced(rv)
                metrics.update(kind) { $0.resourceVersion = rv }
            }
        }
        for try await chunk in response.body {
            buffer.append(contentsOf: chunk.readableBytesView)
            var consumed = 0
            while let newline = buffer[consumed...].firstIndex(of: UInt8(ascii: "\n")) {
                try handle(buffer[consumed..<newline])
                consumed = newline + 1
            }
            buffer.removeFirst(consumed)
            guard buffer.count <= options.maxResponseBytes else {
                throw KubeAPIError(request: request, code: nil, reason: "watch event larger than \(options.maxResponseBytes) bytes")
            }
        }
        try handle(buffer[...])
        return WatchEnd(events: events, duration: ContinuousClock.now - start)
    }

    private func apply(_ event: WatchEvent, kind: ObjectKind, store: ClusterStore, logger: Logger) throws {
        guard let type = WatchEvent.EventType(rawValue: event.type) else {
            logger.debug("unknown watch event type", metadata: ["type": "\(event.type)"])
            return
        }
        let key = event.head.metadata?.name.map { ObjectKey(kind: kind, namespace: event.head.metadata?.namespace, name: $0) }
        switch type {
        case .bookmark, .error:
            return
        case .deleted:
            if let key {
                store.delete(key)
                _ = warned.withLock { $0.removeValue(forKey: key) }
            }
        case .added, .modified:
            // The decoder reads an object with or without its own `kind` (then it is the watched kind).
            let decoded = ManifestDecoder.combine([ManifestDecoder.decodeJSON(Data(event.object), origin: Self.origin, impliedKind: kind,
                                                                                 limits: limits)])
            let warnings = Set(decoded.problems.filter { !$0.isError })
            // Only objects with warnings are remembered: a large cluster's clean objects cost nothing here.
            let logged = key.map { key in
                warned.withLock { warnings.isEmpty ? $0.removeValue(forKey: key) : $0.updateValue(warnings, forKey: key) } ?? []
            } ?? []
            for problem in decoded.problems where problem.isError || !logged.contains(problem) { logger.log(problem) }
            let errors = decoded.problems.filter(\.isError).count   // warnings keep their object
            if errors > 0 { metrics.update(kind) { $0.skippedObjects += errors } }
            guard let object = decoded.objects.first else {
                if let key { store.delete(key) }   // what the next LIST would do with an object that no longer validates
                return
            }
            if case .node(let node) = object {
                applyNode(node, store: store, logger: logger)
            } else {
                store.upsert(object)
            }
        }
    }

    /// Nodes are checked against each other (overlapping pod CIDRs): the store's nodes with this one,
    /// in name order, keep what ``validateNodes(_:origin:)`` keeps, as a LIST of all nodes would.
    private func applyNode(_ node: Node, store: ClusterStore, logger: Logger) {
        var nodes = store.snapshot().nodes
        nodes[node.name] = node
        let result = validateNodes(nodes.values.sorted { $0.name < $1.name }, origin: Self.origin)
        for problem in result.problems { logger.log(problem) }
        let valid = Set(result.valid.map(\.name))
        for name in nodes.keys where !valid.contains(name) { store.delete(ObjectKey(kind: .node, name: name)) }
        for n in result.valid { store.upsert(.node(n)) }
    }

    // MARK: HTTP

    private func get(_ path: String, query: [(String, String)], client: HTTPClient) async throws
        -> (request: String, response: HTTPClientResponse) {
        let queryText = query.map { "\($0)=\(Self.percentEncoded($1))" }.joined(separator: "&")
        let target = path + (queryText.isEmpty ? "" : "?" + queryText)
        var request = HTTPClientRequest(url: config.server + target)
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "keeld")
        if let token = token.current(), !token.isEmpty {
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        let response = try await client.execute(request, timeout: .init(options.connectTimeout + .seconds(20)), logger: nil)
        return ("GET \(target)", response)
    }

    static func percentEncoded(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    private func statusError(_ request: String, _ code: UInt, _ body: [UInt8]) -> KubeAPIError {
        let status = WatchEvent.ObjectHead(json: body)
        return KubeAPIError(request: request, code: Int(code), reason: status?.reason ?? "HTTP \(code)",
                            message: status?.message ?? String(decoding: body.prefix(200), as: UTF8.self))
    }

    private struct ListMetadata: Decodable {
        var resourceVersion: String?
        var `continue`: String?
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

extension Logger {
    fileprivate func with(_ metadata: Logger.Metadata) -> Logger {
        var copy = self
        for (k, v) in metadata { copy[metadataKey: k] = v }
        return copy
    }
}
