import Cluster
import Foundation
import Synchronization
import Testing
@testable import KubeAPI

@Suite(.timeLimit(.minutes(1)))
struct KubeAPISourceTests {
    /// Two LIST pages (one malformed node), then ADDED/MODIFIED/DELETED/BOOKMARK on a watch, then the
    /// server ends the watch and the next one resumes from the bookmark's resourceVersion.
    @Test func listsPagesThenFollowsTheWatch() async throws {
        let streams = Mutex<[FakeAPIServer.WatchStream]>([])
        let server = try FakeAPIServer { request in
            guard request.path == "/api/v1/nodes" else { return .json(404, "{}") }
            if request.isWatch {
                let stream = FakeAPIServer.WatchStream()
                streams.withLock { $0.append(stream) }
                return .watch(stream)
            }
            switch request.query["continue"] {
            case nil: return .json(200, Wire.nodeList([Wire.node("a", rv: "3", cidr: "10.244.1.0/24")], rv: "10", continue: "page2"))
            case "page2":
                return .json(200, Wire.nodeList([Wire.node("b", rv: "4", cidr: "10.244.2.0/24"),
                                                 Wire.node("c", rv: "5", cidr: "10.244.300.0/24")], rv: "10"))
            default: return .json(410, Wire.expired)
            }
        }
        try await withSource(server) { store, metrics, logs in
            try await eventually("listed") { store.snapshot().hasListed(.node) }
            #expect(Set(store.snapshot().nodes.keys) == ["a", "b"])
            let problem = logs.all.first { $0.level == .warning && $0.metadata["object.name"] == "c" }
            #expect(problem?.metadata["object.kind"] == "Node")
            #expect(problem?.metadata["field"] == "spec.podCIDR")
            #expect(metrics[.node].skippedObjects == 1)
            let lists = server.requests.filter { !$0.isWatch }
            #expect(lists.map { $0.query["limit"] } == ["2", "2"])
            #expect(lists.last?.query["continue"] == "page2")
            #expect(lists.first?.headers["authorization"] == "Bearer t0ken")

            try await eventually("watching") { streams.withLock { $0.count } == 1 }
            let watch = try #require(server.requests.last)
            #expect(watch.query["resourceVersion"] == "10")
            #expect(watch.query["allowWatchBookmarks"] == "true")
            let timeout = try #require(watch.query["timeoutSeconds"].flatMap(Int.init))
            #expect((300..<600).contains(timeout))

            let stream = streams.withLock { $0[0] }
            stream.send(Wire.event("ADDED", Wire.node("d", rv: "11", cidr: "10.244.4.0/24")))
            stream.send(Wire.event("MODIFIED", Wire.node("a", rv: "12", cidr: "10.244.1.0/24", label: "edge")))
            stream.send(Wire.event("DELETED", Wire.node("b", rv: "13", cidr: "10.244.2.0/24")))
            stream.send(Wire.bookmark(rv: "20"))
            try await eventually("events applied") { metrics[.node].resourceVersion == "20" }
            let nodes = store.snapshot().nodes
            #expect(Set(nodes.keys) == ["a", "d"])
            #expect(nodes["a"]?.metadata.labels["role"] == "edge")
            #expect(metrics[.node].eventsReceived == 4)
            #expect(metrics.timeSinceLastEvent(.node).map { $0 < .seconds(5) } == true)

            stream.finish()
            try await eventually("watch resumed") { streams.withLock { $0.count } == 2 }
            #expect(server.requests.last?.query["resourceVersion"] == "20")
            #expect(metrics[.node].watchRestarts == 1)
            #expect(metrics[.node].relists == 0)
            #expect(server.requests.filter { !$0.isWatch }.count == 2)
        }
    }

    enum Expiry: CaseIterable, Sendable { case errorEvent, httpStatus }

    /// The watch's resourceVersion is too old: the source lists again, and the relist removes the
    /// node deleted while no watch saw it.
    @Test(arguments: Expiry.allCases)
    func expiredWatchRelists(expiry: Expiry) async throws {
        let counts = Mutex((lists: 0, watches: 0))
        let held = FakeAPIServer.WatchStream()
        let server = try FakeAPIServer { request in
            if request.isWatch {
                let n = counts.withLock { $0.watches += 1; return $0.watches }
                guard n == 1 else { return .watch(held) }
                switch expiry {
                case .httpStatus: return .json(410, Wire.expired)
                case .errorEvent:
                    let stream = FakeAPIServer.WatchStream()
                    stream.send(Wire.event("ERROR", Wire.expired))
                    stream.finish()
                    return .watch(stream)
                }
            }
            let n = counts.withLock { $0.lists += 1; return $0.lists }
            return n == 1
                ? .json(200, Wire.nodeList([Wire.node("a", rv: "1"), Wire.node("b", rv: "2")], rv: "5"))
                : .json(200, Wire.nodeList([Wire.node("a", rv: "1")], rv: "30"))
        }
        try await withSource(server) { store, metrics, _ in
            try await eventually("relisted") { metrics[.node].lists == 2 }
            #expect(Set(store.snapshot().nodes.keys) == ["a"])
            #expect(metrics[.node].relists == 1)
            #expect(metrics[.node].errors == 0)
            try await eventually("watching from the relist") { counts.withLock { $0.watches } == 2 }
            #expect(server.requests.filter(\.isWatch).map { $0.query["resourceVersion"] } == ["5", "30"])
        }
    }

    /// A 500 on LIST is retried after a backoff that doubles.
    @Test func backsOffOnServerErrors() async throws {
        let lists = Mutex(0)
        let held = FakeAPIServer.WatchStream()
        let server = try FakeAPIServer { request in
            if request.isWatch { return .watch(held) }
            let n = lists.withLock { $0 += 1; return $0 }
            return n <= 2 ? .json(500, "{\"kind\":\"Status\",\"code\":500,\"reason\":\"InternalError\"}")
                          : .json(200, Wire.nodeList([Wire.node("a", rv: "1")], rv: "5"))
        }
        try await withSource(server, backoff: Backoff(initial: .milliseconds(100), maximum: .seconds(1), jitter: 0)) { store, metrics, logs in
            try await eventually("listed after errors") { store.snapshot().hasListed(.node) }
            let times = server.requests.filter { !$0.isWatch }.map(\.at)
            #expect(times.count == 3)
            #expect(times[1] - times[0] >= .milliseconds(100))
            #expect(times[2] - times[1] >= .milliseconds(200))
            #expect(metrics[.node].errors == 2)
            #expect(logs.all.contains { $0.level == .warning && $0.metadata["error"]?.contains("InternalError") == true })
        }
    }

    /// A dropped connection during a watch resumes from the last resourceVersion seen, without a relist.
    @Test func brokenWatchResumesWithoutRelist() async throws {
        let watches = Mutex(0)
        let held = FakeAPIServer.WatchStream()
        let server = try FakeAPIServer { request in
            guard request.isWatch else { return .json(200, Wire.nodeList([Wire.node("a", rv: "1")], rv: "5")) }
            let n = watches.withLock { $0 += 1; return $0 }
            guard n == 1 else { return .watch(held) }
            let stream = FakeAPIServer.WatchStream()
            stream.send(Wire.event("ADDED", Wire.node("b", rv: "6")))
            stream.send("{\"type\":\"ADDED\",\"object\":{not json")
            return .watch(stream)
        }
        try await withSource(server) { store, metrics, _ in
            try await eventually("second watch") { watches.withLock { $0 } == 2 }
            #expect(Set(store.snapshot().nodes.keys) == ["a", "b"])
            #expect(server.requests.last?.query["resourceVersion"] == "6")
            #expect(metrics[.node].lists == 1)
            #expect(metrics[.node].errors == 1)
        }
    }

    /// A MODIFIED object that no longer validates is removed, as the next LIST would drop it.
    @Test func modifiedIntoInvalidRemovesTheObject() async throws {
        let stream = FakeAPIServer.WatchStream()
        let server = try FakeAPIServer { request in
            request.isWatch ? .watch(stream) : .json(200, Wire.nodeList([Wire.node("a", rv: "1")], rv: "5"))
        }
        try await withSource(server) { store, metrics, logs in
            try await eventually("listed") { store.snapshot().hasListed(.node) }
            stream.send(Wire.event("MODIFIED", Wire.node("a", rv: "7", cidr: "not-a-cidr")))
            try await eventually("removed") { store.snapshot().nodes.isEmpty }
            #expect(metrics[.node].skippedObjects == 1)
            #expect(logs.all.contains { $0.metadata["object.name"] == "a" && $0.metadata["field"] == "spec.podCIDR" })
        }
    }
}

@Suite struct WatchEventTests {
    @Test(arguments: [
        ("{\"type\":\"ADDED\",\"object\":{\"a\":[1,{\"b\":\"}\\\"\"}]}}", "{\"a\":[1,{\"b\":\"}\\\"\"}]}"),
        ("{\"object\": {\"x\":1} , \"type\":\"DELETED\"}", "{\"x\":1}"),
        ("{\"type\":\"ADDED\",\"object\":{", nil),
    ])
    func objectSpan(line: String, expected: String?) {
        let span = JSONSpan.topLevelValue("object", in: Array(line.utf8)[...])
        #expect(span.map { String(decoding: $0, as: UTF8.self) } == expected)
    }

    @Test func backoffDoublesUpToTheMaximumAndResets() {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .milliseconds(300), jitter: 0)
        #expect([backoff.next(), backoff.next(), backoff.next(), backoff.next()] ==
                [.milliseconds(100), .milliseconds(200), .milliseconds(300), .milliseconds(300)])
        backoff.reset()
        #expect(backoff.next() == .milliseconds(100))
    }
}
