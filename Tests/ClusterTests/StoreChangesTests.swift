import Cluster
import Foundation
import NetAddress
import Synchronization
import Testing

/// What controllers use to do less: the snapshot's log of changed keys, and passes that run at once
/// for a lone change but coalesce bursts.
@Suite struct StoreChangesTests {
    static func service(_ name: String, _ port: UInt16 = 80) -> ClusterObject {
        .service(Service(metadata: ObjectMeta(name: name, namespace: "default"), clusterIPs: [IPAddress("10.96.0.10")!],
                         ports: [ServicePort(port: port)]))
    }
    static func key(_ name: String) -> ObjectKey { ObjectKey(kind: .service, namespace: "default", name: name) }

    @Test func changedKeysSinceAVersion() {
        let store = ClusterStore()
        store.upsert(Self.service("a"))
        let v1 = store.snapshot().version
        store.upsert(Self.service("b"))
        store.upsert(Self.service("a", 81))
        store.upsert(Self.service("b"))                  // identical: not a change
        let v2 = store.snapshot().version
        store.delete(Self.key("a"))
        store.replaceAll(.service, with: [Self.service("b"), Self.service("c")])

        let snapshot = store.snapshot()
        #expect(snapshot.changedKeys(since: v1) == [Self.key("a"), Self.key("b"), Self.key("c")])
        #expect(snapshot.changedKeys(since: v2) == [Self.key("a"), Self.key("c")])
        #expect(snapshot.changedKeys(since: snapshot.version) == [])
        #expect(snapshot.changedKeys(since: 0) == [Self.key("a"), Self.key("b"), Self.key("c")])
        #expect(snapshot.changedKeys(since: snapshot.version + 1) == nil, "a version this store never had")
        #expect(ClusterSnapshot(version: 7).changedKeys(since: 3) == nil, "a snapshot made by hand has no log")
    }

    @Test func aLogThatNoLongerReachesBackSaysSo() {
        let store = ClusterStore()
        store.upsert(Self.service("first"))
        for n in 0..<9000 { store.upsert(Self.service("s\(n % 50)", UInt16(1 + n % 1000))) }
        let snapshot = store.snapshot()
        #expect(snapshot.changedKeys(since: 1) == nil)
        #expect(snapshot.changedKeys(since: snapshot.version - 10)?.count == 10)
    }

    /// Counts passes and when they ran.
    final class Passes: Sendable {
        let times = Mutex<[ContinuousClock.Instant]>([])
        var count: Int { times.withLock { $0.count } }
        func record() { times.withLock { $0.append(.now) } }
    }

    @Test func aLoneChangeIsServedAtOnceNotAfterTheInterval() async {
        let store = ClusterStore()
        let passes = Passes()
        let run = Task { await store.runCoalesced(on: [.service], resync: .seconds(3600), minInterval: .seconds(30)) { passes.record() } }
        defer { run.cancel() }
        #expect(await eventually { passes.count == 1 }, "the first pass runs at once")
        try? await Task.sleep(for: .milliseconds(50))   // idle
        let changed = ContinuousClock.now
        store.upsert(Self.service("a"))
        #expect(await eventually { passes.count == 2 }, "a lone change does not wait for the 30 s interval")
        #expect(passes.times.withLock { $0[1] } - changed < .seconds(1))
        store.upsert(.pod(Pod(metadata: ObjectMeta(name: "p", namespace: "default"))))   // not a watched kind
        try? await Task.sleep(for: .milliseconds(200))
        #expect(passes.count == 2)
    }

    @Test func changesDuringAPassAreOneMorePass() async {
        let store = ClusterStore()
        let passes = Passes()
        let run = Task {
            await store.runCoalesced(on: [.service], resync: .seconds(3600), minInterval: .milliseconds(100)) {
                passes.record()
                if passes.count == 2 {
                    // A burst while this pass runs.
                    for n in 0..<20 { store.upsert(Self.service("burst-\(n)")) }
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
        }
        defer { run.cancel() }
        #expect(await eventually { passes.count == 1 })
        store.upsert(Self.service("a"))
        #expect(await eventually { passes.count == 3 })
        try? await Task.sleep(for: .milliseconds(300))
        #expect(passes.count == 3, "twenty changes during one pass are served by one pass")
        let t = passes.times.withLock { $0 }
        #expect(t[2] - t[1] >= .milliseconds(95), "the follow-up pauses as long as the pass took (50 ms)")
    }
}
