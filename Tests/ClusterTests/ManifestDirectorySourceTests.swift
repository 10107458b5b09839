import Cluster
import Foundation
import Logging
import NetAddress
import Synchronization
import Testing

/// Real files under /tmp and real inotify; every wait has a timeout.
@Suite struct ManifestDirectorySourceTests {
    @Test func loadOnceReadsTheFolderAndLogsProblems() async throws {
        try await withTemporaryFolder { dir in
            try write(nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "10.0.0.1"), to: dir + "/a-nodes.yaml")
            try write(nodeYAML("node2", podCIDR: "10.244.300.0/24", ip: "10.0.0.2") + "---\n"
                      + nodeYAML("node3", podCIDR: "10.244.3.0/24", ip: "10.0.0.3"), to: dir + "/b-nodes.yml")
            try write(nodeYAML("node4", podCIDR: "10.244.1.0/24", ip: "10.0.0.4"), to: dir + "/c-dup.yaml")
            try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
            try write(#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"node5"},"spec":{"podCIDR":"10.244.5.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.5"}]}}"#,
                      to: dir + "/sub/node5.json")
            try FileManager.default.createDirectory(atPath: dir + "/..data", withIntermediateDirectories: true)
            try write(nodeYAML("hidden", podCIDR: "10.244.9.0/24", ip: "10.0.0.9"), to: dir + "/..data/x.yaml")
            try write(nodeYAML("swap", podCIDR: "10.244.8.0/24", ip: "10.0.0.8"), to: dir + "/.a-nodes.yaml.swp.yaml")
            try write("not: [yaml", to: dir + "/README.md")

            let (logger, log) = capturingLogger()
            let store = ClusterStore()
            let source = ManifestDirectorySource(directory: dir, logger: logger)
            let problems = source.loadOnce(into: store)

            #expect(Set(store.snapshot().nodes.keys) == ["node1", "node3", "node5"])
            #expect(store.snapshot().hasListed(.node))
            #expect(store.snapshot().hasListed(.service, .endpointSlice), "an empty list of a readable kind is a list")
            #expect(store.snapshot().hasListed(.pod, .namespace, .networkPolicy), "every kind the decoder reads is listed")
            #expect(problems.map { [$0.file, $0.objectName ?? "", $0.field] }
                    == [["b-nodes.yml", "node2", "spec.podCIDR"], ["c-dup.yaml", "node4", "spec.podCIDR"]])
            #expect(problems[1].reason.contains("Node \"node1\""))

            let warnings = log.all.filter { $0.level == .warning }
            #expect(warnings.count == 2)
            #expect(warnings.first?.metadata["manifest.file"] == "b-nodes.yml")
            #expect(warnings.first?.metadata["object.kind"] == "Node")
            #expect(warnings.first?.metadata["object.name"] == "node2")
            #expect(warnings.first?.metadata["field"] == "spec.podCIDR")

            // A problem that persists is returned again but not logged again.
            #expect(source.loadOnce(into: store).count == 2)
            #expect(log.all.filter { $0.level == .warning }.count == 2)
        }
    }

    @Test func kindsFilterLeavesOtherKindsAlone() async throws {
        try await withTemporaryFolder { dir in
            try write(nodeYAML("node1", podCIDR: "bad", ip: "10.0.0.1"), to: dir + "/n.yaml")
            let (logger, log) = capturingLogger()
            let store = ClusterStore()
            let problems = ManifestDirectorySource(directory: dir, logger: logger, kinds: [.service]).loadOnce(into: store)
            #expect(problems.isEmpty && !log.all.contains { $0.level >= .warning })
            #expect(store.snapshot().nodes.isEmpty && !store.snapshot().hasListed(.node))
        }
    }

    @Test func missingFolderKeepsTheStore() {
        let (logger, _) = capturingLogger()
        let store = ClusterStore()
        store.upsert(.node(Node(name: "keep", podCIDRs: [], internalIPs: [ip("10.0.0.1")])))
        let problems = ManifestDirectorySource(directory: "/tmp/keel-no-such-folder-\(UUID())", logger: logger).loadOnce(into: store)
        #expect(problems.count == 1 && problems[0].reason.hasPrefix("cannot read folder"))
        #expect(Array(store.snapshot().nodes.keys) == ["keep"] && !store.snapshot().hasListed(.node))
    }

    @Test func runFollowsWritesRenamesAndDeletes() async throws {
        try await withTemporaryFolder { dir in
            try write(nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "10.0.0.1"), to: dir + "/node1.yaml")
            let (logger, log) = capturingLogger()
            let store = ClusterStore()
            let source = ManifestDirectorySource(directory: dir, logger: logger)
            let returned = Mutex(false)
            let run = Task {
                try await source.run(into: store)
                returned.withLock { $0 = true }
            }
            defer { run.cancel() }
            func names() -> Set<String> { Set(store.snapshot().nodes.keys) }

            #expect(await eventually(timeout: .seconds(10)) { names() == ["node1"] }, "initial load")

            try write(nodeYAML("node2", podCIDR: "10.244.2.0/24", ip: "10.0.0.2"), to: dir + "/node2.yaml")
            #expect(await eventually(timeout: .seconds(10)) { names() == ["node1", "node2"] }, "new file (IN_CLOSE_WRITE)")

            // Atomic replace: temp file (skipped, dot-name) renamed over the old one.
            try write(nodeYAML("node2", podCIDR: "10.244.2.0/24", ip: "10.0.0.22"), to: dir + "/.node2.tmp")
            try FileManager.default.moveItem(atPath: dir + "/.node2.tmp", toPath: dir + "/node2.yaml.new")
            _ = rename(dir + "/node2.yaml.new", dir + "/node2.yaml")
            #expect(await eventually(timeout: .seconds(10)) {
                store.snapshot().nodes["node2"]?.internalIPs == [ip("10.0.0.22")]
            }, "rename over (IN_MOVED_TO)")

            try FileManager.default.createDirectory(atPath: dir + "/old", withIntermediateDirectories: true)
            _ = rename(dir + "/node1.yaml", dir + "/old/node1.txt")
            #expect(await eventually(timeout: .seconds(10)) { names() == ["node2"] }, "moved away (IN_MOVED_FROM)")

            // A new subfolder is watched too.
            try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
            try await Task.sleep(for: .milliseconds(300))
            try write(nodeYAML("node3", podCIDR: "10.244.3.0/24", ip: "10.0.0.3"), to: dir + "/sub/node3.yaml")
            #expect(await eventually(timeout: .seconds(10)) { names() == ["node2", "node3"] }, "file in new subfolder")

            // A malformed edit skips that node only and names it in the log.
            try write(nodeYAML("node3", podCIDR: "10.244.3.7/24", ip: "10.0.0.3"), to: dir + "/sub/node3.yaml")
            #expect(await eventually(timeout: .seconds(10)) { names() == ["node2"] }, "malformed node skipped")
            #expect(await eventually(timeout: .seconds(10)) {
                log.all.contains { $0.level == .warning && $0.metadata["object.name"] == "node3" && $0.metadata["field"] == "spec.podCIDR"
                    && $0.metadata["manifest.file"] == "sub/node3.yaml" }
            })

            // An overlay written by keeld reaches the object.
            try write("apiVersion: v1\nkind: Node\nmetadata:\n  name: node2\n  annotations: {keel.dev/x: \"1\"}\n",
                      to: dir + "/node2.keel-overlay.yaml")
            #expect(await eventually(timeout: .seconds(10)) {
                store.snapshot().nodes["node2"]?.metadata.annotations["keel.dev/x"] == "1"
            }, "overlay merged")

            try FileManager.default.removeItem(atPath: dir + "/node2.yaml")
            #expect(await eventually(timeout: .seconds(10)) { names().isEmpty }, "deleted (IN_DELETE)")

            // run returns once cancelled: the watcher thread is woken, not left blocked in poll.
            run.cancel()
            #expect(await eventually(timeout: .seconds(2)) { returned.withLock { $0 } })
        }
    }

    @Test func burstOfWritesIsReadOnceAfterTheDebounce() async throws {
        try await withTemporaryFolder { dir in
            let (logger, _) = capturingLogger()
            let store = ClusterStore()
            let source = ManifestDirectorySource(directory: dir, logger: logger, debounce: .milliseconds(200))
            let recorder = EventRecorder(store.events())
            defer { recorder.cancel() }
            let run = Task { try await source.run(into: store) }
            defer { run.cancel() }
            // Generous timeouts: the whole suite runs in parallel on two cores; the debounce count is
            // what this test is about, not the latency.
            #expect(Set(await recorder.wait(for: 7, timeout: .seconds(20)))
                    == [.listed(.node), .listed(.service), .listed(.endpointSlice), .listed(.pod), .listed(.namespace), .listed(.networkPolicy),
                        .listed(.serviceCIDR)])
            recorder.clear()
            for i in 1...20 {
                try write(nodeYAML("n\(i)", podCIDR: "10.244.\(i).0/24", ip: "10.0.0.\(i)"), to: dir + "/n\(i).yaml")
            }
            #expect(await eventually(timeout: .seconds(20)) { store.snapshot().nodes.count == 20 })
            try await Task.sleep(for: .milliseconds(400))
            let lists = recorder.all.filter { $0 == .listed(.node) }.count
            #expect(lists >= 1 && lists <= 3, "20 writes in a burst are read in a few passes, not 20 (\(lists))")
        }
    }

    @Test func fifoIsSkippedWithoutBlockingAndSaysSo() async throws {
        try await withTemporaryFolder { dir in
            #expect(mkfifo(dir + "/pipe.yaml", 0o644) == 0)
            try write(nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "10.0.0.1"), to: dir + "/node1.yaml")
            let (logger, _) = capturingLogger()
            let store = ClusterStore()
            let problems = ManifestDirectorySource(directory: dir, logger: logger).loadOnce(into: store)
            #expect(Array(store.snapshot().nodes.keys) == ["node1"])
            #expect(problems.map(\.description) == ["pipe.yaml: not a regular file (a FIFO): skipped"])
        }
    }

    @Test func symlinkLoopIsReportedOnce() async throws {
        try await withTemporaryFolder { dir in
            try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
            try write(nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "10.0.0.1"), to: dir + "/sub/node1.yaml")
            #expect(symlink("..", dir + "/sub/up") == 0)
            #expect(symlink("self.yaml", dir + "/self.yaml") == 0)
            let (logger, log) = capturingLogger()
            let store = ClusterStore()
            let source = ManifestDirectorySource(directory: dir, logger: logger)
            let problems = source.loadOnce(into: store)
            #expect(Array(store.snapshot().nodes.keys) == ["node1"])
            #expect(problems.map(\.description) == [
                "self.yaml: symlink loop: skipped",
                "sub/up: symlink loop (or a second link to one folder): the same folder as the manifest folder, skipped",
            ])
            source.loadOnce(into: store)
            #expect(log.all.filter { $0.level == .warning }.count == 2, "logged once while it persists")
        }
    }

    @Test func fileThatStopsParsingKeepsItsLastGoodObjects() async throws {
        try await withTemporaryFolder { dir in
            let two = nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "10.0.0.1") + "---\n"
                + nodeYAML("node2", podCIDR: "10.244.2.0/24", ip: "10.0.0.2")
            try write(two, to: dir + "/nodes.yaml")
            let (logger, _) = capturingLogger()
            let store = ClusterStore()
            let source = ManifestDirectorySource(directory: dir, logger: logger)
            source.loadOnce(into: store)
            #expect(Set(store.snapshot().nodes.keys) == ["node1", "node2"])

            // Half written: the second document is cut inside a flow mapping.
            try write(nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "10.0.0.1") + "---\napiVersion: v1\nkind: Node\nmetadata: {name: no",
                      to: dir + "/nodes.yaml")
            let problems = source.loadOnce(into: store)
            #expect(Set(store.snapshot().nodes.keys) == ["node1", "node2"], "the last good read is kept")
            #expect(problems.count == 2)
            #expect(problems.first?.reason.hasPrefix("not valid YAML") == true)
            #expect(problems.last?.description == "nodes.yaml: keeping the 2 objects of its last good read until it parses again")

            // Complete again: what it holds now counts.
            try write(nodeYAML("node3", podCIDR: "10.244.3.0/24", ip: "10.0.0.3"), to: dir + "/nodes.yaml")
            #expect(source.loadOnce(into: store).isEmpty)
            #expect(Set(store.snapshot().nodes.keys) == ["node3"])

            // A file never good contributes nothing; removing a bad file removes its kept objects.
            try write("kind: [", to: dir + "/nodes.yaml")
            source.loadOnce(into: store)
            #expect(Set(store.snapshot().nodes.keys) == ["node3"])
            try FileManager.default.removeItem(atPath: dir + "/nodes.yaml")
            source.loadOnce(into: store)
            #expect(store.snapshot().nodes.isEmpty)
        }
    }

    @Test func aChangeReadsOnlyItsFileAndListsOnlyItsKinds() async throws {
        try await withTemporaryFolder { dir in
            try write(nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "10.0.0.1"), to: dir + "/node1.yaml")
            try write(serviceYAML("web", spec: "clusterIP: 10.96.0.10\nports:\n- port: 80"), to: dir + "/web.yaml")
            let (logger, log) = capturingLogger()
            let store = ClusterStore()
            let source = ManifestDirectorySource(directory: dir, logger: logger)
            source.loadOnce(into: store)
            let recorder = EventRecorder(store.events())
            defer { recorder.cancel() }

            try write(serviceYAML("web", spec: "clusterIP: 10.96.0.10\nports:\n- port: 81"), to: dir + "/web.yaml")
            source.loadOnce(into: store)
            let events = await recorder.wait(for: 1)
            try await Task.sleep(for: .milliseconds(100))
            #expect(recorder.all.count == 1 && events.first.map { if case .upserted(let o) = $0 { o.metadata.name == "web" } else { false } } == true,
                    "only the changed Service is stored again, nothing is listed again: \(recorder.all)")
            let read = log.all.last { $0.message == "read manifest folder" }
            #expect(read?.metadata["manifest.filesRead"] == "1" && read?.metadata["manifest.files"] == "2")
            #expect(read?.metadata["manifest.keysChanged"] == "1")

            // A Node change lists the Nodes again (they are validated against each other), nothing else.
            recorder.clear()
            try write(nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "10.0.0.11"), to: dir + "/node1.yaml")
            source.loadOnce(into: store)
            #expect(await recorder.wait(for: 2).count == 2)
            #expect(recorder.all.last == .listed(.node))

            // Nothing changed: nothing read, nothing listed.
            recorder.clear()
            source.loadOnce(into: store)
            #expect(log.all.last { $0.message == "read manifest folder" }?.metadata["manifest.filesRead"] == "0")
            try await Task.sleep(for: .milliseconds(100))
            #expect(recorder.all.isEmpty)
        }
    }

    @Test func duplicatesAndOverlaysAreResolvedAgainWhenTheirFilesChange() async throws {
        try await withTemporaryFolder { dir in
            func web(_ ip: String) -> String { serviceYAML("web", spec: "clusterIP: \(ip)\nports:\n- port: 80") }
            try write(web("10.96.0.1"), to: dir + "/a.yaml")
            try write(web("10.96.0.2"), to: dir + "/b.yaml")
            let (logger, _) = capturingLogger()
            let store = ClusterStore()
            let source = ManifestDirectorySource(directory: dir, logger: logger)
            func clusterIP() -> String? { store.snapshot().services.values.first.map { "\($0.clusterIPs.first.map { "\($0)" } ?? "")" } }
            var problems = source.loadOnce(into: store)
            #expect(clusterIP() == "10.96.0.1")
            #expect(problems.map(\.description) == ["b.yaml: Service \"web\": metadata.name: duplicate Service in namespace \"default\", first defined in a.yaml"])

            // The first definition goes: the second one counts, and is no longer a duplicate.
            try FileManager.default.removeItem(atPath: dir + "/a.yaml")
            problems = source.loadOnce(into: store)
            #expect(clusterIP() == "10.96.0.2" && problems.isEmpty)

            // An overlay written later reaches the object; removing it takes its labels away again.
            try write("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {tier: front}\n", to: dir + "/web.keel-overlay.yaml")
            source.loadOnce(into: store)
            #expect(store.snapshot().services.values.first?.metadata.labels == ["tier": "front"])
            try FileManager.default.removeItem(atPath: dir + "/web.keel-overlay.yaml")
            source.loadOnce(into: store)
            #expect(store.snapshot().services.values.first?.metadata.labels == [:])
            try FileManager.default.removeItem(atPath: dir + "/b.yaml")
            source.loadOnce(into: store)
            #expect(store.snapshot().services.isEmpty)
        }
    }

    /// Issue 13 item 11: with a 10 MB file in the folder, a change to a small file reaches the store in
    /// about the debounce (100 ms), not in the seconds a re-decode of the whole folder takes.
    @Test(.timeLimit(.minutes(5))) func aSmallChangeIsFastBesideA10MBFile() async throws {
        try await withTemporaryFolder { dir in
            var big = ""
            var i = 0
            while big.utf8.count < 10 << 20 {
                big += serviceYAML("svc-\(i)", namespace: "bulk", spec: "clusterIP: 10.\(96 + i / 65536).\((i / 256) % 256).\(i % 256)\nports:\n- name: http\n  port: 80\n  targetPort: 8080\n  protocol: TCP") + "---\n"
                i += 1
            }
            try write(big, to: dir + "/bulk.yaml")
            let (logger, _) = capturingLogger()
            let store = ClusterStore()
            let source = ManifestDirectorySource(directory: dir, logger: logger)
            let run = Task { try await source.run(into: store) }
            defer { run.cancel() }
            let loadStart = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(240)) { store.snapshot().services.count == i }, "the 10 MB file is read")
            let fullLoad = ContinuousClock.now - loadStart

            var latencies: [Duration] = []
            for round in 1...3 {
                let (_, events) = store.subscribe()
                let start = ContinuousClock.now
                try write(serviceYAML("small", spec: "clusterIP: 10.95.0.1\nports:\n- port: \(round)"), to: dir + "/small.yaml")
                for await event in events {
                    if case .upserted(let o) = event, o.metadata.name == "small" { break }
                }
                latencies.append(ContinuousClock.now - start)
            }
            print("manifest folder: \(i) Services in \(big.utf8.count) bytes read in \(fullLoad); small change -> store: \(latencies)")
            #expect(latencies.allSatisfy { $0 < .seconds(1) }, "write -> store \(latencies) (a full read took \(fullLoad))")
        }
    }

    @Test func runThrowsForAFolderThatCannotBeWatched() async {
        let (logger, _) = capturingLogger()
        let source = ManifestDirectorySource(directory: "/tmp/keel-no-such-folder-\(UUID())", logger: logger)
        await #expect(throws: DirectoryWatchError.self) { try await source.run(into: ClusterStore()) }
    }
}
