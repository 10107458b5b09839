import Cluster
import NetAddress
import Testing

@Suite struct ClusterStoreTests {
    static func node(_ name: String, _ third: Int, unschedulable: Bool = false) -> ClusterObject {
        .node(Node(name: name, podCIDRs: [cidr("10.244.\(third).0/24")], internalIPs: [ip("10.0.0.\(third)")],
                   unschedulable: unschedulable))
    }

    @Test func replaceAllEmitsOnlyRealDifferences() async {
        let store = ClusterStore()
        #expect(!store.snapshot().hasListed(.node))
        let recorder = EventRecorder(store.events())
        defer { recorder.cancel() }

        store.replaceAll(.node, with: [Self.node("a", 1), Self.node("b", 2)])
        var events = await recorder.wait(for: 3)
        #expect(events == [.upserted(Self.node("a", 1)), .upserted(Self.node("b", 2)), .listed(.node)])
        #expect(store.snapshot().hasListed(.node))
        #expect(Set(store.snapshot().nodes.keys) == ["a", "b"])

        recorder.clear()
        // a unchanged, b changed, c new; then nothing else
        store.replaceAll(.node, with: [Self.node("a", 1), Self.node("b", 2, unschedulable: true), Self.node("c", 3)])
        events = await recorder.wait(for: 3)
        #expect(events == [.upserted(Self.node("b", 2, unschedulable: true)), .upserted(Self.node("c", 3)), .listed(.node)])

        recorder.clear()
        store.replaceAll(.node, with: [Self.node("c", 3)])
        events = await recorder.wait(for: 3)
        #expect(Set(events.prefix(2).map { "\($0)" }) == Set([StoreEvent.deleted(ObjectKey(kind: .node, name: "a")),
                                                             .deleted(ObjectKey(kind: .node, name: "b"))].map { "\($0)" }))
        #expect(events.last == .listed(.node) && events.count == 3)
        #expect(Array(store.snapshot().nodes.keys) == ["c"])

        recorder.clear()
        let version = store.snapshot().version
        store.replaceAll(.node, with: [Self.node("c", 3)])
        #expect(await recorder.wait(for: 1) == [.listed(.node)])
        #expect(store.snapshot().version == version, "an identical list changes nothing")
    }

    @Test func upsertAndDelete() async {
        let store = ClusterStore()
        let recorder = EventRecorder(store.events())
        defer { recorder.cancel() }
        store.upsert(Self.node("a", 1))
        store.upsert(Self.node("a", 1))                                  // same: no event
        store.delete(ObjectKey(kind: .node, name: "missing"))            // absent: no event
        store.delete(ObjectKey(kind: .node, name: "a"))
        store.upsert(Self.node("b", 2))
        let events = await recorder.wait(for: 3)
        #expect(events == [.upserted(Self.node("a", 1)), .deleted(ObjectKey(kind: .node, name: "a")), .upserted(Self.node("b", 2))])
        #expect(store.snapshot().version == 3)
        #expect(!store.snapshot().hasListed(.node), "single upserts are not a list")
    }

    @Test func eachSubscriberGetsEventsFromWhenItSubscribed() async {
        let store = ClusterStore()
        let early = EventRecorder(store.events())
        defer { early.cancel() }
        store.upsert(Self.node("a", 1))
        let (snapshot, stream) = store.subscribe()
        let late = EventRecorder(stream)
        defer { late.cancel() }
        #expect(Array(snapshot.nodes.keys) == ["a"])
        store.upsert(Self.node("b", 2))
        #expect(await early.wait(for: 2) == [.upserted(Self.node("a", 1)), .upserted(Self.node("b", 2))])
        #expect(await late.wait(for: 1) == [.upserted(Self.node("b", 2))])
        #expect(store.subscriberCount == 2)
    }

    @Test func cancelledSubscriberIsRemoved() async {
        let store = ClusterStore()
        let recorder = EventRecorder(store.events())
        #expect(store.subscriberCount == 1)
        recorder.cancel()
        #expect(await eventually { store.subscriberCount == 0 })
        store.upsert(Self.node("a", 1))   // no subscriber left: must not crash or block
    }

    @Test func concurrentWritersKeepOneOrder() async {
        let store = ClusterStore()
        let a = EventRecorder(store.events()), b = EventRecorder(store.events())
        defer { a.cancel(); b.cancel() }
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<50 { group.addTask { store.upsert(Self.node("n\(i)", i)) } }
        }
        let ea = await a.wait(for: 50), eb = await b.wait(for: 50)
        #expect(ea.count == 50 && ea == eb)
        #expect(store.snapshot().nodes.count == 50 && store.snapshot().version == 50)
    }
}
