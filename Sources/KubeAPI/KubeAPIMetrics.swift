import Cluster
import Synchronization

/// What one kind's reflector has done so far. keeld exports these as Prometheus series.
public struct KubeAPIKindMetrics: Sendable, Hashable {
    /// Complete LISTs (the first one included).
    public var lists = 0
    /// LISTs after the first: after a 410 Gone / Expired, or after an error.
    public var relists = 0
    /// WATCH requests started again after one ended (server timeout, dropped stream, error).
    public var watchRestarts = 0
    /// Watch events received: ADDED, MODIFIED, DELETED, BOOKMARK and ERROR.
    public var eventsReceived = 0
    /// Failed requests and broken streams (each followed by a backoff).
    public var errors = 0
    /// Objects skipped as malformed (logged with kind, name and field).
    public var skippedObjects = 0
    /// The resourceVersion a watch would resume from.
    public var resourceVersion: String?
    /// When the last watch event (or the end of a LIST) arrived.
    public var lastEventAt: ContinuousClock.Instant?
    public init() {}
}

/// Counters per kind, shared by the source's reflectors and read by whoever exports them.
public final class KubeAPIMetrics: Sendable {
    private let kinds = Mutex<[ObjectKind: KubeAPIKindMetrics]>([:])
    public init() {}

    public func snapshot() -> [ObjectKind: KubeAPIKindMetrics] { kinds.withLock { $0 } }
    public subscript(kind: ObjectKind) -> KubeAPIKindMetrics { kinds.withLock { $0[kind] ?? KubeAPIKindMetrics() } }

    /// The time since the last event of `kind`, nil before its first LIST completes.
    public func timeSinceLastEvent(_ kind: ObjectKind, now: ContinuousClock.Instant = .now) -> Duration? {
        self[kind].lastEventAt.map { now - $0 }
    }

    func update(_ kind: ObjectKind, _ body: (inout KubeAPIKindMetrics) -> Void) {
        kinds.withLock { body(&$0[kind, default: KubeAPIKindMetrics()]) }
    }
}
