import Synchronization

/// A change in the store.
public enum StoreEvent: Sendable, Hashable {
    /// An object was added or changed (it differs from what the store held).
    case upserted(ClusterObject)
    /// An object was removed.
    case deleted(ObjectKey)
    /// A source delivered a complete list of a kind (after the events for its differences).
    case listed(ObjectKind)
}

/// The in-memory cluster state that both sources write and every controller reads.
///
/// Thread-safe: all state sits behind one `Mutex`, and events are handed to subscribers while it is
/// held, so every subscriber sees changes in the order they were made.
public final class ClusterStore: Sendable {
    private struct State {
        var snapshot = ClusterSnapshot()
        var subscribers: [UInt64: AsyncStream<StoreEvent>.Continuation] = [:]
        var nextSubscriber: UInt64 = 0

        mutating func emit(_ event: StoreEvent) {
            for continuation in subscribers.values { continuation.yield(event) }
        }
        mutating func apply(_ object: ClusterObject) {
            guard snapshot.object(object.key) != object else { return }
            snapshot.set(object)
            snapshot.version += 1
            snapshot.logChange(object.key)
            emit(.upserted(object))
        }
        mutating func remove(_ key: ObjectKey) {
            guard snapshot.remove(key) != nil else { return }
            snapshot.version += 1
            snapshot.logChange(key)
            emit(.deleted(key))
        }
    }

    private let state = Mutex(State())

    public init() {}

    deinit {
        // Consumers waiting on `events()` end their loops instead of waiting forever.
        for continuation in state.withLock({ $0.subscribers.values }) { continuation.finish() }
    }

    public func snapshot() -> ClusterSnapshot { state.withLock { $0.snapshot } }

    /// The current ``ClusterSnapshot/version``, without copying the snapshot out.
    var version: UInt64 { state.withLock { $0.snapshot.version } }
    /// ``ClusterSnapshot/changedKeys(since:)`` of the current state.
    func changedKeys(since version: UInt64) -> Set<ObjectKey>? { state.withLock { $0.snapshot.changedKeys(since: version) } }

    /// Replaces everything of `kind` with `objects` (a full list), emitting only the real differences,
    /// then `.listed(kind)`. Objects of another kind in `objects` are ignored; for a duplicate key the
    /// last one wins.
    public func replaceAll(_ kind: ObjectKind, with objects: [ClusterObject]) {
        state.withLock { s in
            var wanted: [ObjectKey: ClusterObject] = [:]
            for object in objects where object.kind == kind { wanted[object.key] = object }
            for key in s.snapshot.keys(kind) where wanted[key] == nil { s.remove(key) }
            for object in objects where object.kind == kind && wanted[object.key] == object {
                s.apply(object)
            }
            if s.snapshot.listedKinds.insert(kind).inserted { s.snapshot.version += 1 }
            s.emit(.listed(kind))
        }
    }

    /// Adds or replaces one object; emits `.upserted` only if it differs from what is stored.
    public func upsert(_ object: ClusterObject) { state.withLock { $0.apply(object) } }

    /// Removes one object; emits `.deleted` only if it was there.
    public func delete(_ key: ObjectKey) { state.withLock { $0.remove(key) } }

    /// Each subscriber gets its own stream of events from the moment it subscribes (unbounded buffer;
    /// the stream ends when the consuming task is cancelled).
    public func events() -> AsyncStream<StoreEvent> { subscribe().events }

    /// The current snapshot and a stream of every event after it, taken atomically: nothing is missed
    /// between the two and nothing is reported twice.
    public func subscribe() -> (snapshot: ClusterSnapshot, events: AsyncStream<StoreEvent>) {
        let (stream, continuation) = AsyncStream.makeStream(of: StoreEvent.self, bufferingPolicy: .unbounded)
        let snapshot = state.withLock { s in
            let id = s.nextSubscriber
            s.nextSubscriber += 1
            s.subscribers[id] = continuation
            // Runs on the consumer's cancellation, never inside `emit` (which holds the lock).
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
            }
            return s.snapshot
        }
        return (snapshot, stream)
    }

    /// The number of live subscribers (for tests and diagnostics).
    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }
}
