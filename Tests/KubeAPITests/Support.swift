import Cluster
import Foundation
import Logging
import Synchronization
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

/// Runs a source against `server` for the duration of `body`, then cancels it and waits for it to end.
func withSource(_ server: FakeAPIServer, kinds: Set<ObjectKind> = [.node], backoff: Backoff = Backoff(initial: .milliseconds(20), maximum: .milliseconds(200), jitter: 0),
                _ body: (ClusterStore, KubeAPIMetrics, LogRecorder) async throws -> Void) async throws {
    let store = ClusterStore()
    let metrics = KubeAPIMetrics()
    let recorder = LogRecorder()
    var options = KubeAPISource.Options()
    options.pageSize = 2
    options.backoff = backoff
    options.connectTimeout = .seconds(2)
    options.readTimeout = .seconds(5)
    let source = KubeAPISource(config: KubeAPIConfig(server: server.url, bearerToken: "t0ken"), logger: recorder.logger,
                               kinds: kinds, options: options, metrics: metrics)
    let task = Task { try await source.run(into: store) }
    do {
        try await body(store, metrics, recorder)
    } catch {
        task.cancel()
        _ = await task.result
        server.stop()
        throw error
    }
    task.cancel()
    _ = await task.result
    server.stop()
}

enum Wire {
    static func node(_ name: String, rv: String, cidr: String? = nil, label: String? = nil) -> String {
        let labels = label.map { ",\"labels\":{\"role\":\"\($0)\"}" } ?? ""
        let spec = cidr.map { ",\"spec\":{\"podCIDR\":\"\($0)\"}" } ?? ""
        let status = ",\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"192.168.0.\(name.utf8.first!)\"}]}"
        return "{\"metadata\":{\"name\":\"\(name)\",\"resourceVersion\":\"\(rv)\"\(labels)}\(spec)\(status)}"
    }
    static func nodeList(_ items: [String], rv: String, continue token: String? = nil) -> String {
        let meta = "\"resourceVersion\":\"\(rv)\"" + (token.map { ",\"continue\":\"\($0)\"" } ?? "")
        return "{\"kind\":\"NodeList\",\"apiVersion\":\"v1\",\"metadata\":{\(meta)},\"items\":[\(items.joined(separator: ","))]}"
    }
    static func event(_ type: String, _ object: String) -> String {
        "{\"type\":\"\(type)\",\"object\":\(object)}"
    }
    static func bookmark(rv: String) -> String {
        event("BOOKMARK", "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"\(rv)\"}}")
    }
    static let expired = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"too old resource version\",\"reason\":\"Expired\",\"code\":410}"
}
