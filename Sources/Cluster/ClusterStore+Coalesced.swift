import Synchronization

extension ClusterStore {
    /// Runs a controller's pass: once now, after every change to an object of `kinds`, and every
    /// `resync`, until the calling task is cancelled. Passes never overlap.
    ///
    /// A change that finds no pass running is served at once: a lone event pays no fixed delay.
    /// Changes made while a pass runs are a burst (a rolling update, a folder rewrite): they are
    /// served together by one more pass, after a pause as long as the pass before took, at most
    /// `minInterval`, so that the rest of the burst can join it and a steady stream of events
    /// leaves the controller idle at least half of the time. A wake-up whose changes an earlier
    /// pass already saw runs nothing.
    public func runCoalesced(on kinds: Set<ObjectKind>, resync: Duration, minInterval: Duration,
                             _ pass: @escaping @Sendable () -> Void) async {
        let (wake, poke) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let pending = PendingChanges()
        let announce: @Sendable () -> Void = {
            pending.set(true)
            poke.yield(())
        }
        let events = self.events()
        let watcher = Task {
            for await event in events {
                switch event {
                case .listed(let kind) where !kinds.contains(kind): continue
                case .upserted(let o) where !kinds.contains(o.kind): continue
                case .deleted(let k) where !kinds.contains(k.kind): continue
                default: announce()
                }
            }
        }
        let timer = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: resync)   // cancellation ends the loop
                announce()
            }
        }
        defer { watcher.cancel(); timer.cancel(); poke.finish() }
        announce()
        await withTaskCancellationHandler {
            var previous: (start: ContinuousClock.Instant, end: ContinuousClock.Instant, burst: Bool)?
            for await _ in wake {
                guard pending.isSet else { continue }   // served by the pass before
                if let previous, previous.burst {
                    // Changes came in while the previous pass ran: let the rest of the burst arrive too.
                    let pause = min(minInterval, previous.end - previous.start)
                    try? await Task.sleep(until: previous.end + pause, clock: .continuous)
                }
                if Task.isCancelled { break }
                pending.set(false)   // what is announced from now on needs another pass
                let version = self.version
                let start = ContinuousClock.now
                pass()
                // Judged by the store's log, not by when the events were announced: the task that
                // announces them may itself have waited for a thread while the pass ran.
                let burst = changedKeys(since: version).map { $0.contains { kinds.contains($0.kind) } } ?? true
                previous = (start, .now, burst)
            }
        } onCancel: { poke.finish() }
    }
}

/// Whether changes were announced that no pass has served yet.
private final class PendingChanges: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set(_ value: Bool) { flag.withLock { $0 = value } }
}
