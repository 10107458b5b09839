import Cluster
import Foundation
import Logging
import NetAddress
import Testing

@Suite struct EndpointSliceTests {
    @Test func decodesARealisticSlice() throws {
        let yaml = sliceYAML("web-abc12", service: "web", namespace: "shop", body: """
        addressType: IPv4
        endpoints:
        - addresses: [10.244.1.5]
          conditions: {ready: true, serving: true, terminating: false}
          nodeName: node1
          zone: zone-a
          hostname: web-0
          targetRef: {kind: Pod, name: web-0, namespace: shop}
          hints: {forZones: [{name: zone-a}]}
        - addresses: [10.244.2.7, 10.244.2.8]
          conditions: {ready: false}
          nodeName: node2
          hints: nonsense
        - addresses: [10.244.2.9]
          hints: {forZones: 3, forNodes: [{name: node2}]}
        ports:
        - {name: http, protocol: TCP, port: 8080, appProtocol: http}
        - {name: dns, protocol: UDP, port: 53}
        - {name: any}
        """)
        let r = ManifestDecoder.decode(yaml, file: "slices.yaml")
        // Zone hints are advisory: never a problem. The second address of an endpoint is unused: a warning.
        #expect(r.problems.map(\.description) == [#"slices.yaml: EndpointSlice "web-abc12": endpoints[1].addresses[1]: ignored: only an endpoint's first address is used"#]
                && r.problems.allSatisfy { !$0.isError })
        let slice = try #require(r.objects.first?.endpointSlice)
        #expect(slice.key == ObjectKey(kind: .endpointSlice, namespace: "shop", name: "web-abc12"))
        #expect(slice.serviceName == "web" && slice.serviceKey == ObjectKey(kind: .service, namespace: "shop", name: "web"))
        #expect(slice.addressType == .ipv4)
        #expect(slice.endpoints == [
            .init(addresses: [.ip(ip("10.244.1.5"))], conditions: .init(ready: true, serving: true, terminating: false),
                  nodeName: "node1", zone: "zone-a", hostname: "web-0", zoneHints: ["zone-a"]),
            .init(addresses: [.ip(ip("10.244.2.7")), .ip(ip("10.244.2.8"))], conditions: .init(ready: false), nodeName: "node2"),
            .init(addresses: [.ip(ip("10.244.2.9"))]),
        ])
        #expect(slice.ports == [EndpointPort(name: "http", port: 8080, appProtocol: "http"),
                                EndpointPort(name: "dns", protocol: .udp, port: 53), EndpointPort(name: "any", port: nil)])
        #expect(slice.port(named: "http") == 8080 && slice.port(named: "dns", protocol: .udp) == 53 && slice.port(named: "dns") == nil)
        let json = String(decoding: try JSONEncoder().encode(slice), as: UTF8.self)
        #expect(ManifestDecoder.decode(json, file: "s.json").objects == [.endpointSlice(slice)], "\(json)")
    }

    @Test(arguments: [
        ("IPv6", "addressType: IPv6\nendpoints: [{addresses: [\"fd00:10:244:1::5\"]}]", EndpointAddress.ip(ip("fd00:10:244:1::5"))),
        ("FQDN", "addressType: FQDN\nendpoints: [{addresses: [db-0.db.example.com]}]", EndpointAddress.fqdn("db-0.db.example.com")),
    ])
    func otherAddressTypes(name: String, body: String, expected: EndpointAddress) throws {
        let r = ManifestDecoder.decode(sliceYAML("s", service: "db", body: body), file: "s.yaml")
        // Kept, with a warning: the IPv4-only data path (and any proxy, for FQDN) ignores the slice.
        #expect(r.problems.map(\.severity) == [.warning] && r.problems.first?.field == "addressType", "\(name): \(r.problems)")
        #expect(try #require(r.objects.first?.endpointSlice).endpoints.first?.addresses == [expected], "\(name)")
    }

    /// Kubernetes: ready nil → true; serving nil → defer to ready; terminating nil → false.
    @Test(arguments: [
        ("absent", "", true, true, false),
        ("empty", "conditions: {}", true, true, false),
        ("ready", "conditions: {ready: true}", true, true, false),
        ("not ready, serving unset", "conditions: {ready: false}", false, false, false),
        ("terminating but still serving", "conditions: {ready: false, serving: true, terminating: true}", false, true, true),
        ("terminating only", "conditions: {terminating: true}", true, true, true),
        ("not serving only", "conditions: {serving: false}", true, false, false),
    ])
    func conditionDefaults(name: String, conditions: String, ready: Bool, serving: Bool, terminating: Bool) throws {
        let body = "addressType: IPv4\nendpoints:\n- addresses: [10.0.0.1]\n" + (conditions.isEmpty ? "" : "  \(conditions)\n")
        let r = ManifestDecoder.decode(sliceYAML("s", service: "web", body: body), file: "s.yaml")
        let c = try #require(r.objects.first?.endpointSlice?.endpoints.first?.conditions, "\(name)")
        #expect([c.isReady, c.isServing, c.isTerminating] == [ready, serving, terminating], "\(name)")
    }

    struct Malformed: Sendable, CustomTestStringConvertible {
        var name: String
        var body: String
        var problems: [String]
        var testDescription: String { name }
    }

    static func bad(_ name: String, _ body: String, _ problems: String...) -> Malformed {
        Malformed(name: name, body: body, problems: problems)
    }

    static let malformed: [Malformed] = [
        bad("addressType missing", "endpoints: [{addresses: [10.0.0.1]}]", "addressType: missing"),
        bad("addressType unknown", "addressType: IPv5\nendpoints: [{addresses: [10.0.0.1]}]",
            #"addressType: "IPv5" is not IPv4, IPv6 or FQDN"#),
        bad("IPv6 address in an IPv4 slice", "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}, {addresses: [\"fd00::1\"]}]",
            #"endpoints[1].addresses[0]: "fd00::1" is not an IPv4 address"#),
        bad("IPv4 address in an IPv6 slice", "addressType: IPv6\nendpoints: [{addresses: [10.0.0.1]}]",
            #"endpoints[0].addresses[0]: "10.0.0.1" is not an IPv6 address"#),
        bad("address does not parse", "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1, 10.0.0.300]}]",
            #"endpoints[0].addresses[1]: "10.0.0.300" is not an IP address"#),
        bad("endpoint without addresses", "addressType: IPv4\nendpoints: [{nodeName: node1}]",
            "endpoints[0].addresses: missing (an endpoint needs at least one address)"),
        bad("port 0", "addressType: IPv4\nports: [{name: http, port: 0}]", "ports[0].port: 0 is not a port number (1-65535)"),
        bad("port 65536", "addressType: IPv4\nports: [{name: http, port: 65536}]", "ports[0].port: 65536 is not a port number (1-65535)"),
        bad("unknown protocol", "addressType: IPv4\nports: [{name: http, port: 80, protocol: QUIC}]",
            #"ports[0].protocol: "QUIC" is not TCP, UDP or SCTP"#),
        bad("duplicate port", "addressType: IPv4\nports: [{name: http, port: 80}, {name: http, port: 81}]",
            #"ports[1].name: duplicate port name "http" (also ports[0])"#),
        bad("ready not a boolean", "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {ready: perhaps}}]",
            "endpoints[0].conditions.ready: expected a boolean"),
    ]

    @Test(arguments: malformed)
    func malformedSliceIsReportedAndSkipped(_ c: Malformed) {
        let good = sliceYAML("good", service: "web", body: "addressType: IPv4\nendpoints: [{addresses: [10.0.0.9]}]")
        let r = ManifestDecoder.decode([good, sliceYAML("bad", service: "web", body: c.body), good.replacingOccurrences(of: "name: good", with: "name: good2")]
            .joined(separator: "---\n"), file: "slices.yaml")
        #expect(r.objects.compactMap(\.endpointSlice?.name) == ["good", "good2"])
        #expect(r.problems.filter(\.isError).map { "\($0.field): \($0.reason)" } == c.problems)
        #expect(r.problems.allSatisfy { $0.kind == "EndpointSlice" && $0.objectName == "bad" && $0.document == 2 })
    }

    // MARK: - Merging the slices of a Service

    static let web = ServicePort(name: "http", port: 80, targetPort: .name("web"))
    static let metrics = ServicePort(name: "metrics", port: 9100, targetPort: .name("metrics"))

    /// A Service whose pods run two versions with different container port numbers behind the
    /// same port name, spread over two IPv4 slices and one IPv6 slice; plus slices that must not join.
    static let manifests = [
        serviceYAML("web", namespace: "shop", spec: "clusterIPs: [10.96.0.10, \"fd00:96::10\"]\nports:\n- {name: http, port: 80, targetPort: web}\n- {name: metrics, port: 9100, targetPort: metrics}"),
        sliceYAML("web-v1", service: "web", namespace: "shop", body: """
        addressType: IPv4
        endpoints:
        - {addresses: [10.244.1.5], nodeName: node1, zone: a}
        - {addresses: [10.244.1.6], nodeName: node1, conditions: {ready: false}}
        - {addresses: [10.244.9.9], conditions: {ready: false, serving: false}}
        ports: [{name: http, port: 8080}, {name: metrics, port: 9100}]
        """),
        sliceYAML("web-v2", service: "web", namespace: "shop", body: """
        addressType: IPv4
        endpoints:
        - {addresses: [10.244.2.7], nodeName: node2, conditions: {ready: false, serving: true, terminating: true}}
        - {addresses: [10.244.1.6], nodeName: node1, conditions: {ready: true}}
        - {addresses: [10.244.9.9], conditions: {ready: false, serving: false}}
        ports: [{name: http, port: 9090}]
        """),
        sliceYAML("web-v6", service: "web", namespace: "shop", body: """
        addressType: IPv6
        endpoints: [{addresses: ["fd00:244:1::5"], nodeName: node1}]
        ports: [{name: http, port: 8080}]
        """),
        sliceYAML("web-fqdn", service: "web", namespace: "shop", body: "addressType: FQDN\nendpoints: [{addresses: [web.example.com]}]\nports: [{name: http, port: 80}]"),
        sliceYAML("web-elsewhere", service: "web", namespace: "other", body: "addressType: IPv4\nendpoints: [{addresses: [10.244.7.7]}]\nports: [{name: http, port: 80}]"),
        sliceYAML("api-1", service: "api", namespace: "shop", body: "addressType: IPv4\nendpoints: [{addresses: [10.244.8.8]}]\nports: [{name: http, port: 80}]"),
        sliceYAML("orphan", service: nil, namespace: "shop", body: "addressType: IPv4\nendpoints: [{addresses: [10.244.6.6]}]"),
    ]

    static func loadedStore() -> ClusterStore {
        let r = ManifestDecoder.decode(manifests.joined(separator: "---\n"), file: "web.yaml")
        // Warnings only: the IPv6 parts, the FQDN slice and the orphan are kept (the data path ignores them).
        precondition(!r.problems.contains(where: \.isError) && r.problems.count == 4, "\(r.problems)")
        let store = ClusterStore()
        for kind in [ObjectKind.service, .endpointSlice] { store.replaceAll(kind, with: r.objects.filter { $0.kind == kind }) }
        return store
    }

    @Test func mergesAllSlicesOfAService() throws {
        let snapshot = Self.loadedStore().snapshot()
        let key = ObjectKey(kind: .service, namespace: "shop", name: "web")
        let service = try #require(snapshot.services[key])
        #expect(snapshot.endpointSlices(of: key).map(\.name) == ["web-fqdn", "web-v1", "web-v2", "web-v6"])

        let endpoints = snapshot.endpoints(of: key)
        #expect(endpoints.map(\.address.description) == ["10.244.1.5", "10.244.1.6", "10.244.2.7", "10.244.9.9", "fd00:244:1::5"])
        func endpoint(_ a: String) throws -> ServiceEndpoint { try #require(endpoints.first { $0.address == ip(a) }) }

        // The named targetPort resolves per slice.
        let http = try #require(service.port(named: "http"))
        #expect(try endpoint("10.244.1.5").port(for: http) == 8080)
        #expect(try endpoint("10.244.2.7").port(for: http) == 9090)
        #expect(try endpoint("fd00:244:1::5").port(for: http) == 8080)
        #expect(try endpoint("10.244.2.7").port(for: Self.metrics) == nil, "web-v2 carries no metrics port")

        // 10.244.1.6 is in both slices: the ready entry (web-v2) wins, and web-v1's metrics port is kept.
        let dup = try endpoint("10.244.1.6")
        #expect(dup.isReady && dup.sliceName == "web-v2" && dup.port(for: http) == 9090 && dup.port(for: Self.metrics) == 9100)
        // Equal rank: the slice whose name sorts first wins.
        #expect(try endpoint("10.244.9.9").sliceName == "web-v1")

        let terminating = try endpoint("10.244.2.7")
        #expect(!terminating.isReady && terminating.isServing && terminating.isTerminating && terminating.nodeName == "node2")
        #expect(try endpoint("10.244.1.5").zone == "a")

        #expect(snapshot.endpoints(of: ObjectKey(kind: .service, namespace: "other", name: "web")).map(\.address) == [ip("10.244.7.7")])
        #expect(snapshot.endpoints(of: ObjectKey(kind: .service, namespace: "shop", name: "nope")).isEmpty)
    }

    @Test func sliceIndexFollowsUpdatesAndDeletes() throws {
        let store = Self.loadedStore()
        let web = ObjectKey(kind: .service, namespace: "shop", name: "web"), api = ObjectKey(kind: .service, namespace: "shop", name: "api")
        var moved = try #require(store.snapshot().endpointSlices[ObjectKey(kind: .endpointSlice, namespace: "shop", name: "web-v6")])
        moved.metadata.labels[EndpointSlice.serviceNameLabel] = "api"
        store.upsert(.endpointSlice(moved))
        #expect(store.snapshot().endpointSlices(of: web).map(\.name) == ["web-fqdn", "web-v1", "web-v2"])
        #expect(store.snapshot().endpointSlices(of: api).map(\.name) == ["api-1", "web-v6"])

        store.delete(ObjectKey(kind: .endpointSlice, namespace: "shop", name: "web-v2"))
        #expect(store.snapshot().endpoints(of: web).map(\.address.description) == ["10.244.1.5", "10.244.1.6", "10.244.9.9"])
        store.replaceAll(.endpointSlice, with: [])
        #expect(store.snapshot().endpoints(of: web).isEmpty && store.snapshot().endpoints(of: api).isEmpty)

        // Assigning the dictionary rebuilds the grouping too.
        var snapshot = ClusterSnapshot()
        snapshot.endpointSlices = [moved.key: moved]
        #expect(snapshot.endpoints(of: api).map(\.address) == [ip("fd00:244:1::5")])
        let built = ClusterSnapshot(endpointSlices: [moved.key: moved])
        #expect(built.endpointSlices(of: api) == [moved] && built.object(moved.key) == .endpointSlice(moved))
    }

    // MARK: - Store and source

    @Test func storeEventsForServicesAndSlices() async throws {
        let store = ClusterStore()
        let recorder = EventRecorder(store.events())
        defer { recorder.cancel() }
        let svc = Service(metadata: ObjectMeta(name: "web", namespace: "shop"), clusterIPs: [ip("10.96.0.10")], ports: [Self.web])
        let slice = EndpointSlice(metadata: ObjectMeta(name: "web-1", namespace: "shop", labels: [EndpointSlice.serviceNameLabel: "web"]),
                                  addressType: .ipv4, endpoints: [.init(ip("10.244.1.5"))], ports: [EndpointPort(name: "http", port: 8080)])
        store.replaceAll(.service, with: [.service(svc)])
        store.upsert(.endpointSlice(slice))
        store.upsert(.endpointSlice(slice))                              // same: no event
        var changed = slice
        changed.endpoints[0].conditions.ready = false
        store.upsert(.endpointSlice(changed))
        store.replaceAll(.service, with: [.service(svc)])                // unchanged list: only `.listed`
        store.delete(slice.key)
        store.delete(svc.key)
        let events = await recorder.wait(for: 7)
        #expect(events == [.upserted(.service(svc)), .listed(.service), .upserted(.endpointSlice(slice)),
                           .upserted(.endpointSlice(changed)), .listed(.service), .deleted(slice.key), .deleted(svc.key)])
        #expect(store.snapshot().services.isEmpty && store.snapshot().endpointSlices.isEmpty)
        #expect(store.snapshot().version == 6 && store.snapshot().hasListed(.service) && !store.snapshot().hasListed(.endpointSlice))
    }

    @Test func manifestSourceListsServicesAndSlices() async throws {
        try await withTemporaryFolder { dir in
            try write(Self.manifests.joined(separator: "---\n"), to: dir + "/web.yaml")
            try write(serviceYAML("broken", namespace: "shop", spec: "ports: [{port: 99999}]"), to: dir + "/broken.yaml")
            try write(nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "10.0.0.1"), to: dir + "/node1.yaml")
            let (logger, log) = capturingLogger()
            let store = ClusterStore()
            let source = ManifestDirectorySource(directory: dir, logger: logger)
            #expect(source.listedKinds == [.node, .service, .endpointSlice, .pod, .namespace, .networkPolicy, .serviceCIDR])
            #expect(ManifestDirectorySource(directory: dir, logger: logger, kinds: [.node, .pod]).listedKinds == [.node, .pod])
            #expect(ManifestDecoder.supportedKinds == [.node, .service, .endpointSlice, .pod, .namespace, .networkPolicy, .serviceCIDR])

            let problems = source.loadOnce(into: store)
            let snapshot = store.snapshot()
            #expect(snapshot.hasListed(.node, .service, .endpointSlice))
            #expect(Set(snapshot.services.keys.map(\.description)) == ["Service/shop/web"])
            #expect(snapshot.endpointSlices.count == 7 && snapshot.nodes.count == 1)
            #expect(snapshot.endpoints(of: ObjectKey(kind: .service, namespace: "shop", name: "web")).count == 5)
            #expect(problems.filter(\.isError).map(\.description) == [#"broken.yaml: Service "broken": spec.ports[0].port: 99999 is not a port number (1-65535)"#])
            #expect(log.all.contains { $0.level == .warning && $0.metadata["object.kind"] == "Service"
                && $0.metadata["field"] == "spec.ports[0].port" })

            // Removing the file removes its objects: the lists are complete.
            try FileManager.default.removeItem(atPath: dir + "/web.yaml")
            source.loadOnce(into: store)
            #expect(store.snapshot().services.isEmpty && store.snapshot().endpointSlices.isEmpty)
            #expect(store.snapshot().nodes.count == 1)
        }
    }
}
