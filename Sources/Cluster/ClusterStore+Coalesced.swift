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
        // `always`: a list or a resync, which runs a pass even when the store's log shows nothing new.
        let announce: @Sendable (_ always: Bool) -> Void = { always in
            pending.announce(always: always)
            poke.yield(())
        }
        let events = self.events()
        let watcher = Task {
            for await event in events {
                switch event {
                case .listed(let kind) where !kinds.contains(kind): continue
                case .upserted(let o) where !kinds.contains(o.kind): continue
                case .deleted(let k) where !kinds.contains(k.kind): continue
                case .listed: announce(true)
                default: announce(false)
                }
            }
        }
        let timer = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: resync)   // cancellation ends the loop
                announce(true)
            }
        }
        defer { watcher.cancel(); timer.cancel(); poke.finish() }
        announce(true)
        await withTaskCancellationHandler {
            var previous: (start: ContinuousClock.Instant, end: ContinuousClock.Instant, version: UInt64, burst: Bool)?
            for await _ in wake {
                guard let always = pending.take() else { continue }
                // Changes announced after the previous pass began may be ones it saw already (their
                // events can lag behind the store): without a change newer than what it read, nothing runs.
                if !always, let previous, let keys = changedKeys(since: previous.version), !keys.contains(where: { kinds.contains($0.kind) }) {
                    continue
                }
                if let previous, previous.burst {
                    // Changes came in while the previous pass ran: let the rest of the burst arrive too.
                    let pause = min(minInterval, previous.end - previous.start)
                    try? await Task.sleep(until: previous.end + pause, clock: .continuous)
                }
                if Task.isCancelled { break }
                _ = pending.take()   // what is announced from now on needs another pass
                let version = self.version
                let start = ContinuousClock.now
                pass()
                // Judged by the store's log, not by when the events were announced: the task that
                // announces them may itself have waited for a thread while the pass ran.
                let burst = changedKeys(since: version).map { $0.contains { kinds.contains($0.kind) } } ?? true
                previous = (start, .now, version, burst)
            }
        } onCancel: { poke.finish() }
    }
}

/// What was announced since a pass last started: nothing (nil), changes (false), or something that
/// needs a pass whatever the store's log says (true).
private final class PendingChanges: Sendable {
    private let announced = Mutex<Bool?>(nil)
    func announce(always: Bool) { announced.withLock { $0 = ($0 ?? false) || always } }
    /// What was announced, and forgets it.
    func take() -> Bool? { announced.withLock { value in defer { value = nil }; return value } }
}
