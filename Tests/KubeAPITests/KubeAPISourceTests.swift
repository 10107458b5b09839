import Cluster
import Foundation
import NetAddress
import NetnsHarness
import Synchronization
import Testing
@testable import KubeAPI

// The API source against FakeKubeAPI over HTTPS (a CA made for the run), with bearer tokens: real
// Kubernetes JSON lists in pages, chunked watch streams, Status bodies on failures.

@Suite(.timeLimit(.minutes(1)))
struct KubeAPISourceTests {
    /// Three pages of nodes (one malformed: logged with kind, name and field, and skipped), the watch
    /// from the list's resourceVersion, then ADDED/MODIFIED/DELETED events each applied once.
    @Test func initialSyncThenIncrementalEvents() async throws {
        let api = try makeAPI()
        try api.apply(contentsOf: [Objects.node("a", 1), Objects.node("b", 2), Objects.node("c", 3, cidr: "10.244.300.0/24"),
                                   Objects.node("d", 4), Objects.node("e", 5)])
        let listedAt = api.resourceVersion
        try await withSource(api) { run in
            try await eventually("listed") { run.store.snapshot().hasListed(.node) }
            #expect(Set(run.store.snapshot().nodes.keys) == ["a", "b", "d", "e"])
            let problem = run.logs.all.first { $0.level == .warning && $0.metadata["object.name"] == "c" }
            #expect(problem?.metadata["object.kind"] == "Node")
            #expect(problem?.metadata["field"] == "spec.podCIDR")
            #expect(run.metrics[.node].skippedObjects == 1)

            let lists = api.requests.filter { !$0.isWatch }
            #expect(lists.map { $0.query["limit"] } == ["2", "2", "2"])
            #expect(lists.first?.query["continue"] == nil)
            #expect(lists.dropFirst().allSatisfy { $0.query["continue"]?.isEmpty == false })
            #expect(lists.allSatisfy { $0.responseCode == 200 && $0.headers["authorization"] == "Bearer t0ken" })

            try await eventually("watching") { api.openWatchCount == 1 }
            let watch = try #require(api.requests.last)
            #expect(watch.isWatch && watch.query["resourceVersion"] == "\(listedAt)")
            #expect(watch.query["allowWatchBookmarks"] == "true")
            let timeout = try #require(watch.query["timeoutSeconds"].flatMap(Int.init))
            #expect((300..<600).contains(timeout))

            try api.apply(Objects.node("f", 6))
            try api.apply(Objects.node("a", 1, label: "edge"))
            api.delete(.node, name: "b")
            try await eventually("events applied") { run.metrics[.node].resourceVersion == "\(api.resourceVersion)" }
            let nodes = run.store.snapshot().nodes
            #expect(Set(nodes.keys) == ["a", "d", "e", "f"])
            #expect(nodes["a"]?.metadata.labels["role"] == "edge")
            #expect(run.metrics[.node].eventsReceived == 3)
            // Each object upserted once by the LIST and once per event, never twice for one change.
            try await run.settled()
            #expect(run.events.upserts("a") == 2)
            #expect(run.events.upserts("f") == 1)
            #expect(run.events.deletes("b") == 1)
            #expect(run.events.upserts("c") == 0)
            #expect(api.deliveries.map(\.type) == ["ADDED", "MODIFIED", "DELETED"])
            #expect(run.metrics[.node].lists == 1 && run.metrics[.node].errors == 0)
        }
    }

    /// BOOKMARKs advance the resourceVersion without objects; the watch the server ends at its
    /// `timeoutSeconds` (with a last bookmark) is resumed from that bookmark, not relisted.
    @Test func bookmarksAndTheServersTimeoutResumeFromTheLastResourceVersion() async throws {
        let api = try makeAPI()
        api.bookmarkInterval = .milliseconds(200)
        try api.apply(Objects.node("a", 1))
        try await withSource(api, configure: { $0.minWatchTimeout = .seconds(1) /* timeoutSeconds=1 */ }) { run in
            try await eventually("watching") { api.openWatchCount == 1 }
            // A change of another kind moves the resourceVersion on; only a bookmark tells the node watch.
            try api.apply(Objects.namespace("team-a"))
            let moved = api.resourceVersion
            try await eventually("bookmark seen") { run.metrics[.node].resourceVersion == "\(moved)" }
            #expect(run.store.snapshot().nodes.count == 1)
            // The restart is counted before the next request reaches the server: wait for both.
            try await eventually("watch ended by the server and resumed") {
                run.metrics[.node].watchRestarts >= 1 && api.requests.filter(\.isWatch).count >= 2
            }
            let watches = api.requests.filter(\.isWatch)
            #expect(watches.count >= 2)
            #expect(watches[1].query["resourceVersion"] == "\(moved)")
            #expect(run.metrics[.node].lists == 1 && run.metrics[.node].relists == 0)
            #expect(run.metrics[.node].errors == 0)
        }
    }

    /// A stream cut mid-event: the source resumes from the last resourceVersion it applied, receives
    /// the changes made while it was away exactly once, and does not list again.
    @Test func droppedStreamResumesWithoutLossOrDuplicates() async throws {
        let api = try makeAPI()
        try api.apply(contentsOf: [Objects.node("a", 1), Objects.node("b", 2)])
        // A backoff long enough that the changes below happen while no watch is open.
        try await withSource(api, backoff: Backoff(initial: .milliseconds(400), maximum: .seconds(1), jitter: 0)) { run in
            try await eventually("watching") { api.openWatchCount == 1 }
            try api.apply(Objects.node("c", 3))
            try api.apply(Objects.node("a", 1, label: "v1"))
            let lastDelivered = api.resourceVersion
            try await eventually("events applied") { run.metrics[.node].resourceVersion == "\(lastDelivered)" }

            api.dropWatches()
            try api.apply(Objects.node("a", 1, label: "v2"))
            api.delete(.node, name: "b")
            try api.apply(Objects.node("d", 4))
            try await eventually("resumed and caught up") { run.metrics[.node].resourceVersion == "\(api.resourceVersion)" }

            let watches = api.requests.filter(\.isWatch)
            #expect(watches.count == 2)
            #expect(watches.last?.query["resourceVersion"] == "\(lastDelivered)", "resumed from the last event applied")
            let delivered = api.deliveries.map(\.resourceVersion)
            #expect(Set(delivered).count == delivered.count, "an event delivered twice: \(delivered)")
            #expect(delivered == Array((lastDelivered - 1)...api.resourceVersion), "every change delivered, in order")
            #expect(Set(run.store.snapshot().nodes.keys) == ["a", "c", "d"])
            #expect(run.store.snapshot().nodes["a"]?.metadata.labels["role"] == "v2")
            try await run.settled()
            #expect(run.events.upserts("a") == 3)   // list, v1, v2
            #expect(run.events.upserts("c") == 1 && run.events.upserts("d") == 1)
            #expect(run.events.deletes("b") == 1)
            #expect(run.metrics[.node].lists == 1, "no relist")
            #expect(run.metrics[.node].errors == 1, "the cut stream")
        }
    }

    enum Expiry: CaseIterable, Sendable { case errorEvent, httpStatus }

    /// The history is compacted while the source is away: its watch from the old resourceVersion gets a
    /// 410 (as an ERROR event with a Status, or as the response), it lists again, and the relist removes
    /// the node deleted meanwhile.
    @Test(arguments: Expiry.allCases)
    func compactionForcesARelistThatRemovesDeletedObjects(expiry: Expiry) async throws {
        let api = try makeAPI()
        api.expiredWatchAnswer = expiry == .errorEvent ? .errorEvent : .httpStatus
        try api.apply(contentsOf: [Objects.node("a", 1), Objects.node("b", 2), Objects.node("c", 3)])
        let firstList = api.resourceVersion
        try await withSource(api, backoff: Backoff(initial: .milliseconds(400), maximum: .seconds(1), jitter: 0)) { run in
            try await eventually("watching") { api.openWatchCount == 1 }
            api.dropWatches()
            api.delete(.node, name: "b")
            try api.apply(Objects.node("c", 3, label: "changed"))
            api.compact()
            let compactedAt = api.resourceVersion

            try await eventually("relisted") { run.metrics[.node].lists == 2 }
            #expect(Set(run.store.snapshot().nodes.keys) == ["a", "c"])
            #expect(run.store.snapshot().nodes["c"]?.metadata.labels["role"] == "changed")
            try await run.settled()
            #expect(run.events.deletes("b") == 1)
            #expect(run.metrics[.node].relists == 1)
            try await eventually("watching from the relist") { api.requests.filter(\.isWatch).count == 3 }
            let watches = api.requests.filter(\.isWatch)
            #expect(watches.map { $0.query["resourceVersion"] } == ["\(firstList)", "\(firstList)", "\(compactedAt)"])
            #expect(watches[1].responseCode == (expiry == .errorEvent ? 200 : 410))
            #expect(run.logs.all.contains { $0.message.contains("listing again") && $0.metadata["error"]?.contains("Expired") == true })
        }
    }

    /// A continue token that expired between two pages (compaction): 410 Expired, and the source
    /// starts the list again from the first page.
    @Test func expiredContinueTokenRestartsTheList() async throws {
        let api = try makeAPI()
        try api.apply(contentsOf: (1...5).map { Objects.node("n\($0)", $0) })
        api.compact(afterAnswering: { !$0.isWatch && $0.query["continue"] == nil })
        try await withSource(api) { run in
            try await eventually("listed") { run.store.snapshot().hasListed(.node) }
            #expect(run.store.snapshot().nodes.count == 5)
            let lists = api.requests.filter { !$0.isWatch }
            #expect(lists.map(\.responseCode) == [200, 410, 200, 200, 200])
            #expect(lists.map { $0.query["continue"] == nil } == [true, false, true, false, false])
            #expect(run.metrics[.node].lists == 1)
        }
    }

    /// The token file is rewritten (the kubelet rotates projected tokens): the requests with the old
    /// token get 401 and a Status, and the next one after the rewrite carries the new token.
    @Test func rotatedTokenFileIsPickedUp() async throws {
        let api = try makeAPI(tokens: ["first-token"])
        try api.apply(Objects.node("a", 1))
        let tokenFile = "/tmp/keel-kapi-token-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try Data("first-token\n".utf8).write(to: URL(fileURLWithPath: tokenFile))
        defer { unlink(tokenFile) }
        try await withSource(api, token: nil, tokenFile: tokenFile) { run in
            try await eventually("watching") { api.openWatchCount == 1 }
            api.acceptedTokens = ["second-token-after-rotation"]
            api.dropWatches()
            try await eventually("refused with the old token") { api.requests.filter { $0.responseCode == 401 }.count >= 2 }
            #expect(run.logs.all.contains { $0.level == .warning && $0.metadata["error"]?.contains("401: Unauthorized") == true })
            #expect(api.openWatchCount == 0)

            try Data("second-token-after-rotation\n".utf8).write(to: URL(fileURLWithPath: tokenFile))
            try await eventually("watching with the new token") { api.openWatchCount == 1 }
            let refused = api.requests.filter { $0.responseCode == 401 }
            #expect(refused.allSatisfy { $0.headers["authorization"] == "Bearer first-token" })
            #expect(api.requests.last?.headers["authorization"] == "Bearer second-token-after-rotation")
            try api.apply(Objects.node("b", 2))
            try await eventually("events after the rotation") { run.store.snapshot().nodes["b"] != nil }
            #expect(run.metrics[.node].lists == 1, "401 is retried with backoff, not a reason to relist")
        }
    }

    /// A missing or wrong token: 401 and nothing listed; the source keeps retrying.
    @Test func wrongTokenIsRefused() async throws {
        let api = try makeAPI(tokens: ["right"])
        try api.apply(Objects.node("a", 1))
        try await withSource(api, token: "wrong") { run in
            try await eventually("refused twice") { run.metrics[.node].errors >= 2 }
            #expect(!run.store.snapshot().hasListed(.node))
            #expect(api.requests.allSatisfy { $0.responseCode == 401 })
        }
    }

    /// A 500 on LIST is retried after a backoff that doubles.
    @Test func backsOffOnServerErrors() async throws {
        let api = try makeAPI()
        try api.apply(Objects.node("a", 1))
        api.failNext(2, code: 500, reason: "InternalError") { !$0.isWatch }
        try await withSource(api, backoff: Backoff(initial: .milliseconds(100), maximum: .seconds(1), jitter: 0)) { run in
            try await eventually("listed after errors") { run.store.snapshot().hasListed(.node) }
            let times = api.requests.filter { !$0.isWatch }.map(\.at)
            #expect(times.count == 3)
            #expect(times[1] - times[0] >= .milliseconds(100))
            #expect(times[2] - times[1] >= .milliseconds(200))
            #expect(run.metrics[.node].errors == 2)
            #expect(run.logs.all.contains { $0.level == .warning && $0.metadata["error"]?.contains("InternalError") == true })
        }
    }

    /// ServiceCIDRs are read when the server has them (Kubernetes 1.33+) ...
    @Test func serviceCIDRsAreListedAndWatched() async throws {
        let api = try makeAPI()
        try api.apply(#"{"kind":"ServiceCIDR","apiVersion":"networking.k8s.io/v1","metadata":{"name":"kubernetes"},"spec":{"cidrs":["10.96.0.0/16","fd00::/108"]}}"#)
        try await withSource(api, kinds: [.serviceCIDR]) { run in
            try await eventually("listed") { run.store.snapshot().hasListed(.serviceCIDR) }
            #expect(run.store.snapshot().serviceCIDRs[ObjectKey(kind: .serviceCIDR, name: "kubernetes")]?.cidrs
                    == [CIDR("10.96.0.0/16")!, CIDR("fd00::/108")!])
            try api.apply(#"{"kind":"ServiceCIDR","apiVersion":"networking.k8s.io/v1","metadata":{"name":"extra"},"spec":{"cidrs":["10.100.0.0/24"]}}"#)
            try await eventually("watched") { run.store.snapshot().serviceCIDRs.count == 2 }
        }
    }

    /// ... and a server without the resource (404) is said once, not as an error, and counts as
    /// having none, while the other kinds are served as usual; the source keeps asking.
    @Test func aServerWithoutServiceCIDRsIsToldOnceAndHasNone() async throws {
        let api = try makeAPI()
        try api.apply(Objects.node("a", 1))
        api.failNext(1000, code: 404, reason: "NotFound") { $0.path == ObjectKind.serviceCIDR.apiPath }
        try await withSource(api, kinds: [.node, .serviceCIDR]) { run in
            try await eventually("both listed") { run.store.snapshot().hasListed(.node, .serviceCIDR) }
            try await eventually("asked again") { api.requests.filter { $0.path == ObjectKind.serviceCIDR.apiPath }.count >= 3 }
            #expect(run.store.snapshot().serviceCIDRs.isEmpty)
            #expect(run.logs.all.filter { $0.message.contains("not served") }.count == 1, "\(run.logs.all.map(\.message))")
            #expect(!run.logs.all.contains { $0.level >= .warning }, "\(run.logs.all.map(\.message))")
            #expect(run.metrics[.serviceCIDR].errors == 0)
        }
    }

    /// A malformed object on the watch is logged with kind, name and field and skipped; a line that is
    /// not an event breaks the stream, which resumes from the last resourceVersion without a relist.
    @Test func malformedObjectsAndLinesOnTheWatch() async throws {
        let api = try makeAPI()
        try api.apply(Objects.node("a", 1))
        try await withSource(api) { run in
            try await eventually("watching") { api.openWatchCount == 1 }
            try api.apply(Objects.node("bad", 2, cidr: "not-a-cidr"))
            try api.apply(Objects.node("b", 3))
            try await eventually("the valid one applied") { run.store.snapshot().nodes["b"] != nil }
            #expect(run.store.snapshot().nodes["bad"] == nil)
            #expect(run.logs.all.contains { $0.metadata["object.kind"] == "Node" && $0.metadata["object.name"] == "bad"
                && $0.metadata["field"] == "spec.podCIDR" })
            #expect(run.metrics[.node].skippedObjects == 1)

            let applied = api.resourceVersion
            api.sendRawWatchLine("{\"type\":\"ADDED\",\"object\":{not json", kind: .node)
            try await eventually("second watch") { api.requests.filter(\.isWatch).count == 2 && api.openWatchCount == 1 }
            #expect(api.requests.last?.query["resourceVersion"] == "\(applied)")
            #expect(run.metrics[.node].lists == 1)
            #expect(run.metrics[.node].errors == 1)
        }
    }

    /// An object with warnings only (an IPv6 cluster IP on the IPv4-only data path) is stored, logged as
    /// a warning with kind, name and field, and not counted as skipped, on the LIST and on the watch.
    @Test func warningsKeepTheObjectAndAreNotCountedAsSkipped() async throws {
        func service(_ name: String, clusterIPs: String, port: Int = 80) -> String {
            #"{"kind":"Service","apiVersion":"v1","metadata":{"name":"\#(name)","namespace":"default"},"spec":{"clusterIPs":[\#(clusterIPs)],"ports":[{"port":\#(port)}]}}"#
        }
        let api = try makeAPI()
        try api.apply(contentsOf: [service("dual", clusterIPs: #""10.96.0.1","fd00::1""#),
                                   service("bad", clusterIPs: #""10.96.0.2""#, port: 99999)])
        try await withSource(api, kinds: [.service]) { run in
            try await eventually("listed") { run.store.snapshot().hasListed(.service) }
            #expect(run.store.snapshot().services.keys.map(\.name) == ["dual"])
            #expect(run.metrics[.service].skippedObjects == 1)
            let warning = run.logs.all.first { $0.metadata["problem.severity"] == "warning" }
            #expect(warning?.metadata["object.name"] == "dual" && warning?.metadata["field"] == "spec.clusterIPs[1]")

            try await eventually("watching") { api.openWatchCount == 1 }
            try api.apply(service("v6", clusterIPs: #""fd00::2""#))
            try await eventually("the watched one stored") { run.store.snapshot().services.keys.contains { $0.name == "v6" } }
            #expect(run.metrics[.service].skippedObjects == 1)
            #expect(run.logs.all.contains { $0.metadata["object.name"] == "v6" && $0.metadata["problem.severity"] == "warning" })

            // Updates with the same warnings do not repeat them; a new warning is logged.
            func warnings(_ name: String) -> [String] {
                run.logs.all.filter { $0.metadata["object.name"] == name && $0.metadata["problem.severity"] == "warning" }.map(\.message)
            }
            try api.apply(service("dual", clusterIPs: #""10.96.0.1","fd00::1""#, port: 81))
            try api.apply(service("v6", clusterIPs: #""fd00::2""#, port: 81))
            try await eventually("updates applied") { run.store.snapshot().services.values.filter { $0.ports.first?.port == 81 }.count == 2 }
            #expect(warnings("dual").count == 1 && warnings("v6").count == 1, "\(warnings("dual")) \(warnings("v6"))")
            try api.apply(service("v6", clusterIPs: #""fd00::3""#))
            try await eventually("the new warning") { warnings("v6").count == 2 }
            #expect(warnings("v6").last?.contains("fd00::3") == true)
        }
    }

    /// An object nested deeper than the decoders' bound is skipped (and, MODIFIED, removed) with its
    /// name and the limit in the log; the watch goes on, and keeld does not die of a stack overflow.
    @Test func deeplyNestedObjectOnTheWatchIsSkipped() async throws {
        let api = try makeAPI()
        try api.apply(Objects.node("a", 1))
        try await withSource(api) { run in
            try await eventually("watching") { api.openWatchCount == 1 && run.store.snapshot().nodes["a"] != nil }
            let deep = String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000)
            api.sendRawWatchLine(#"{"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"90"},"spec":"# + deep + "}}", kind: .node)
            try api.apply(Objects.node("b", 3))
            try await eventually("the next event applied") { run.store.snapshot().nodes["b"] != nil }
            #expect(run.store.snapshot().nodes["a"] == nil, "what the next LIST would do with it")
            #expect(run.logs.all.contains { $0.metadata["object.kind"] == "Node" && $0.metadata["object.name"] == "a"
                && $0.message.contains("nested more than 100 levels deep (limit 100)") })
            #expect(run.metrics[.node].skippedObjects == 1)
            #expect(api.requests.filter(\.isWatch).count == 1 && run.metrics[.node].errors == 0, "the watch was not broken")
        }
    }

    /// A MODIFIED object that no longer validates is removed, as the next LIST would drop it.
    @Test func modifiedIntoInvalidRemovesTheObject() async throws {
        let api = try makeAPI()
        try api.apply(Objects.node("a", 1))
        try await withSource(api) { run in
            try await eventually("watching") { api.openWatchCount == 1 }
            try api.apply(Objects.node("a", 1, cidr: "not-a-cidr"))
            try await eventually("removed") { run.store.snapshot().nodes.isEmpty }
            #expect(run.metrics[.node].skippedObjects == 1)
            #expect(run.logs.all.contains { $0.metadata["object.name"] == "a" && $0.metadata["field"] == "spec.podCIDR" })
        }
    }

    /// A client that does not trust the server's CA gets no request through (the HTTP client retries
    /// the handshake until its deadline) and lists nothing.
    @Test func untrustedCertificateIsRefused() async throws {
        let api = try makeAPI()
        try api.apply(Objects.node("a", 1))
        let otherCA = try TestCertificateAuthority(commonName: "someone-else")
        let config = KubeAPIConfig(server: api.url, certificateAuthorityPEM: Array(otherCA.certificatePEM.utf8), bearerToken: "t0ken")
        let store = ClusterStore()
        let task = Task { try await KubeAPISource(config: config, logger: LogRecorder().logger, kinds: [.node]).run(into: store) }
        defer { api.stop() }
        try await eventually("handshakes attempted") { api.acceptedConnectionCount >= 2 }
        task.cancel()
        _ = await task.result
        #expect(!store.snapshot().hasListed(.node))
        #expect(api.requests.isEmpty, "no request got through the TLS handshake")
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
