import Cluster
import Foundation
import Logging
import Synchronization
import NetAddress
import NetnsHarness
import Testing
@testable import KubeAPI

/// Log lines captured for assertions.
final class LogRecorder: Sendable {
    struct Entry: Sendable { var level: Logger.Level; var message: String; var metadata: [String: String] }
    private let entries = Mutex<[Entry]>([])
    var all: [Entry] { entries.withLock { $0 } }
    func append(_ e: Entry) { entries.withLock { $0.append(e) } }
    var logger: Logger {
        Logger(label: "test") { _ in Handler(recorder: self) }
    }
    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            var all = metadata
            if let m = event.metadata { all.merge(m) { _, new in new } }
            recorder.append(Entry(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" }))
        }
    }
}

/// Polls `condition` until it holds or `timeout` passes; the test fails (not hangs) on timeout.
func eventually(_ what: String, timeout: Duration = .seconds(20), _ condition: () -> Bool,
                sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting for: \(what)", sourceLocation: sourceLocation)
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// A FakeKubeAPI on loopback over HTTPS with a CA made for it (openssl; removed with it), accepting `tokens`.
func makeAPI(tokens: Set<String>? = ["t0ken"]) throws -> FakeKubeAPI {
    let api = try FakeKubeAPI(in: nil, address: IPAddress("127.0.0.1")!, certificateAuthority: try TestCertificateAuthority(),
                              acceptedTokens: tokens)
    api.bookmarkInterval = .seconds(3600)   // bookmarks only when a test asks for them
    return api
}

/// What a store emitted, in order, from before the source's first LIST.
final class StoreEventLog: Sendable {
    private let events = Mutex<[StoreEvent]>([])
    var all: [StoreEvent] { events.withLock { $0 } }
    func append(_ e: StoreEvent) { events.withLock { $0.append(e) } }
    /// How many times the object named `name` was upserted.
    func upserts(_ name: String) -> Int {
        all.filter { if case .upserted(let o) = $0 { o.key.name == name } else { false } }.count
    }
    func deletes(_ name: String) -> Int {
        all.filter { if case .deleted(let k) = $0 { k.name == name } else { false } }.count
    }
}

/// Everything a test of a running source looks at.
struct SourceRun {
    var store: ClusterStore
    var metrics: KubeAPIMetrics
    var logs: LogRecorder
    var events: StoreEventLog

    /// Waits until `events` holds everything the store emitted so far (it is filled by a task): each
    /// upsert and delete, and each kind's first list, moved the snapshot's version on by one.
    func settled(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let caughtUp = { () -> Bool in
            let version = store.snapshot().version
            let all = events.all
            let changes = all.filter { if case .listed = $0 { false } else { true } }.count
            let listedKinds = Set(all.compactMap { if case .listed(let k) = $0 { k } else { nil } }).count
            return UInt64(changes + listedKinds) == version
        }
        try await eventually("store events collected", caughtUp, sourceLocation: sourceLocation)
    }
}

/// Runs a source against `api` (trusting the test CA, with a bearer token or a token file) for the
/// duration of `body`, then cancels it, waits for it to end and stops the server.
func withSource(_ api: FakeKubeAPI, kinds: Set<ObjectKind> = [.node], token: String? = "t0ken", tokenFile: String? = nil,
                backoff: Backoff = Backoff(initial: .milliseconds(20), maximum: .milliseconds(200), jitter: 0),
                configure: (inout KubeAPISource.Options) -> Void = { _ in },
                _ body: (SourceRun) async throws -> Void) async throws {
    let run = SourceRun(store: ClusterStore(), metrics: KubeAPIMetrics(), logs: LogRecorder(), events: StoreEventLog())
    var options = KubeAPISource.Options()
    options.pageSize = 2
    options.backoff = backoff
    options.connectTimeout = .seconds(2)
    options.readTimeout = .seconds(10)
    configure(&options)
    let config = KubeAPIConfig(server: api.url, certificateAuthorityPEM: api.certificateAuthority.map { Array($0.certificatePEM.utf8) },
                               bearerToken: token, tokenFile: tokenFile)
    let source = KubeAPISource(config: config, logger: run.logs.logger, kinds: kinds, options: options, metrics: run.metrics)
    let stream = run.store.events()
    let collector = Task { for await e in stream { run.events.append(e) } }
    let task = Task { try await source.run(into: run.store) }
    defer { api.stop() }
    do {
        try await body(run)
    } catch {
        task.cancel()
        collector.cancel()
        _ = await task.result
        throw error
    }
    task.cancel()
    collector.cancel()
    _ = await task.result
}

/// Objects as the API server holds them (what `kubectl apply` would send).
enum Objects {
    /// A Node whose pod CIDR and InternalIP derive from `index`; `cidr` overrides the CIDR (a bad one
    /// makes a malformed object).
    static func node(_ name: String, _ index: Int, cidr: String? = nil, label: String? = nil) -> String {
        let labels = label.map { ",\"labels\":{\"role\":\"\($0)\"}" } ?? ""
        return """
            {"kind":"Node","apiVersion":"v1","metadata":{"name":"\(name)"\(labels)},"spec":{"podCIDR":"\(cidr ?? "10.244.\(index).0/24")"},\
            "status":{"addresses":[{"type":"InternalIP","address":"192.168.0.\(index)"}]}}
            """
    }
    static func namespace(_ name: String) -> String {
        "{\"kind\":\"Namespace\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"\(name)\"}}"
    }
}
