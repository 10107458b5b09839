import Cluster
import Foundation
import Logging
import NetAddress
import Synchronization
import Testing

/// Log lines captured by ``capturingLogger()``.
final class LogRecord: Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }
    let lines = Mutex<[Line]>([])
    var all: [Line] { lines.withLock { $0 } }
}

struct CapturingLogHandler: LogHandler {
    let record: LogRecord
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        record.lines.withLock {
            $0.append(.init(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
        }
    }
}

/// A logger that records into a fresh ``LogRecord``; never touches `LoggingSystem`.
func capturingLogger() -> (Logger, LogRecord) {
    let record = LogRecord()
    return (Logger(label: "keel.test") { _ in CapturingLogHandler(record: record) }, record)
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(2), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// Collects a store's events on a background task so tests can wait for them with a timeout.
final class EventRecorder: Sendable {
    let events = Mutex<[StoreEvent]>([])
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(_ stream: AsyncStream<StoreEvent>) {
        let t = Task { [self] in
            for await e in stream { events.withLock { $0.append(e) } }
        }
        task.withLock { $0 = t }
    }
    var all: [StoreEvent] { events.withLock { $0 } }
    func clear() { events.withLock { $0.removeAll() } }
    /// Waits (at most `timeout`) until `count` events have arrived.
    func wait(for count: Int, timeout: Duration = .seconds(2)) async -> [StoreEvent] {
        _ = await eventually(timeout: timeout) { all.count >= count }
        return all
    }
    func cancel() { task.withLock { $0?.cancel() } }
}

/// A fresh folder under /tmp, removed when `body` returns or throws.
func withTemporaryFolder<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = FileManager.default.temporaryDirectory.path + "/keel-cluster-test-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }   // best effort: /tmp is cleaned anyway
    return try await body(path)
}

func write(_ text: String, to path: String) throws {
    try text.write(toFile: path, atomically: false, encoding: .utf8)
}

func cidr(_ s: String) -> CIDR { CIDR(s)! }
func ip(_ s: String) -> IPAddress { IPAddress(s)! }

/// A Node manifest in YAML.
func nodeYAML(_ name: String, podCIDR: String?, ip: String?, extra: String = "") -> String {
    var s = "apiVersion: v1\nkind: Node\nmetadata:\n  name: \(name)\n"
    s += extra
    if let podCIDR { s += "spec:\n  podCIDR: \(podCIDR)\n" }
    if let ip { s += "status:\n  addresses:\n  - type: InternalIP\n    address: \(ip)\n" }
    return s
}

extension ClusterObject {
    var node: Node? { if case .node(let n) = self { n } else { nil } }
}

extension ClusterObject {
    var service: Service? { if case .service(let s) = self { s } else { nil } }
    var endpointSlice: EndpointSlice? { if case .endpointSlice(let s) = self { s } else { nil } }
}

/// A Service manifest in YAML; `spec` and `status` are indented block text (two spaces).
func serviceYAML(_ name: String, namespace: String? = nil, spec: String, status: String? = nil) -> String {
    var s = "apiVersion: v1\nkind: Service\nmetadata:\n  name: \(name)\n"
    if let namespace { s += "  namespace: \(namespace)\n" }
    s += "spec:\n" + spec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
    if let status { s += "status:\n" + status.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n" }
    return s
}

/// An EndpointSlice manifest in YAML for `service`; `body` holds addressType/endpoints/ports at top level.
func sliceYAML(_ name: String, service: String?, namespace: String? = nil, body: String) -> String {
    var s = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: \(name)\n"
    if let namespace { s += "  namespace: \(namespace)\n" }
    if let service { s += "  labels:\n    kubernetes.io/service-name: \(service)\n" }
    return s + body + (body.hasSuffix("\n") ? "" : "\n")
}
