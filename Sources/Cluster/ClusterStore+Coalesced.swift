extension ClusterStore {
    /// Runs a controller's pass: once now, after every change to an object of `kinds` — a burst of
    /// events (a full list, a folder rewrite) coalesced into one pass after `minInterval` — and every
    /// `resync`, until the calling task is cancelled. Passes never overlap.
    public func runCoalesced(on kinds: Set<ObjectKind>, resync: Duration, minInterval: Duration,
                             _ pass: @escaping @Sendable () -> Void) async {
        let (wake, poke) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let events = self.events()
        let watcher = Task {
            for await event in events {
                switch event {
                case .listed(let kind) where !kinds.contains(kind): continue
                case .upserted(let o) where !kinds.contains(o.kind): continue
                case .deleted(let k) where !kinds.contains(k.kind): continue
                default: poke.yield(())
                }
            }
        }
        let timer = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: resync)   // cancellation ends the loop
                poke.yield(())
            }
        }
        defer { watcher.cancel(); timer.cancel(); poke.finish() }
        poke.yield(())
        await withTaskCancellationHandler {
            for await _ in wake {
                try? await Task.sleep(for: minInterval)   // let the rest of a burst arrive
                if Task.isCancelled { break }
                pass()
            }
        } onCancel: { poke.finish() }
    }
}
