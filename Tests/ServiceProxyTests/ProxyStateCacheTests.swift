import Cluster
import NetAddress
import ServiceProxy
import Testing

/// The incremental proxy state: after any sequence of store changes it equals a full build, and it
/// names every service port that differs from the state before.
@Suite struct ProxyStateCacheTests {
    /// Deterministic randomness (SplitMix64), so that a failure replays.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let node = ProxyNodeConfig(nodeName: "node1", nodeAddresses: [IPAddress("192.168.50.11")!])
    static let namespaces = ["default", "a", "a-b"]

    static func service(_ i: Int, _ rng: inout Seeded) -> ClusterObject {
        let two = Bool.random(using: &rng)
        var ports = [ServicePort(name: two ? "http" : "", protocol: .tcp, port: 80, targetPort: .number(8080),
                                 nodePort: Bool.random(using: &rng) ? 30000 + UInt16(i) : nil)]
        if two { ports.append(ServicePort(name: "dns", protocol: .udp, port: 53, targetPort: .number(5353))) }
        let nodePort = ports[0].nodePort != nil
        return .service(Service(metadata: ObjectMeta(name: "svc-\(i % 7)", namespace: namespaces[i % 3]),
                                type: nodePort ? .nodePort : .clusterIP,
                                clusterIPs: [.v4(IPv4Address(0x0A60_0000 + UInt32(i) + 1))], ports: ports,
                                internalTrafficPolicy: Bool.random(using: &rng) ? .local : .cluster))
    }

    static func slice(_ j: Int, owner: Int, _ rng: inout Seeded) -> ClusterObject {
        let endpoints = (0..<Int.random(in: 0...3, using: &rng)).map { k in
            EndpointSlice.Endpoint(.v4(IPv4Address(0x0A80_0000 + UInt32(j * 16 + k))),
                                   conditions: EndpointConditions(ready: Int.random(in: 0..<4, using: &rng) != 0),
                                   nodeName: Bool.random(using: &rng) ? "node1" : "node2")
        }
        // A slice lives in its namespace; its label names a Service there (or none).
        let labels = owner < 0 ? [:] : [EndpointSlice.serviceNameLabel: "svc-\(owner % 7)"]
        return .endpointSlice(EndpointSlice(metadata: ObjectMeta(name: "slice-\(j)", namespace: namespaces[j % 3], labels: labels),
                                            addressType: .ipv4, endpoints: endpoints,
                                            ports: [EndpointPort(name: "http", protocol: .tcp, port: 8080),
                                                    EndpointPort(name: "", protocol: .tcp, port: 8080),
                                                    EndpointPort(name: "dns", protocol: .udp, port: 5353)]))
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func everyUpdateEqualsAFullBuildAndNamesWhatChanged(seed: UInt64) {
        var rng = Seeded(state: seed)
        let store = ClusterStore()
        store.replaceAll(.service, with: (0..<12).map { Self.service($0, &rng) })
        store.replaceAll(.endpointSlice, with: (0..<18).map { Self.slice($0, owner: $0, &rng) })
        var cache = ProxyStateCache()
        var (previous, changed) = cache.update(store.snapshot(), node: Self.node)
        #expect(changed == nil, "the first update is a full build")
        #expect(previous == ProxyState(snapshot: store.snapshot(), node: Self.node))
        for _ in 0..<150 {
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<21, using: &rng)
                switch Int.random(in: 0..<7, using: &rng) {
                case 0: store.upsert(Self.service(i, &rng))
                case 1: store.delete(ObjectKey(kind: .service, namespace: Self.namespaces[i % 3], name: "svc-\(i % 7)"))
                case 2, 3: store.upsert(Self.slice(i, owner: Int.random(in: -1..<21, using: &rng), &rng))   // also relabels
                case 4: store.delete(ObjectKey(kind: .endpointSlice, namespace: Self.namespaces[i % 3], name: "slice-\(i)"))
                case 5:
                    // Service ranges: node-wide, no service port changes with them.
                    let key = ObjectKey(kind: .serviceCIDR, name: "range-\(i % 3)")
                    if Bool.random(using: &rng) { store.delete(key) } else {
                        store.upsert(.serviceCIDR(ServiceCIDR(metadata: ObjectMeta(name: key.name),
                                                              cidrs: [CIDR("10.\(96 + i % 2).\(i).0/\(16 + i % 9)")!.masked])))
                    }
                default: store.upsert(.pod(Pod(metadata: ObjectMeta(name: "p\(i)", namespace: "default"))))   // not the proxy's
                }
            }
            let snapshot = store.snapshot()
            let (state, changed) = cache.update(snapshot, node: Self.node)
            #expect(state == ProxyState(snapshot: snapshot, node: Self.node))
            let before = Dictionary(uniqueKeysWithValues: previous.services.map { ($0.name, $0) })
            let after = Dictionary(uniqueKeysWithValues: state.services.map { ($0.name, $0) })
            let differing = Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }
            #expect(changed.map(differing.isSubset(of:)) ?? false, "every differing port is named: \(differing)")
            previous = state
        }
    }

    @Test func aNewNodeConfigurationOrAnOverrunLogIsAFullBuild() {
        var rng = Seeded(state: 9)
        let store = ClusterStore()
        store.replaceAll(.service, with: [Self.service(0, &rng)])
        store.replaceAll(.endpointSlice, with: [Self.slice(0, owner: 0, &rng)])
        var cache = ProxyStateCache()
        _ = cache.update(store.snapshot(), node: Self.node)
        #expect(cache.update(store.snapshot(), node: Self.node).changed == [], "nothing changed, nothing named")

        var moved = Self.node
        moved.nodeAddresses = [IPAddress("192.168.50.12")!]
        let (state, changed) = cache.update(store.snapshot(), node: moved)
        #expect(changed == nil)
        #expect(state.nodePortAddresses == [IPAddress("192.168.50.12")!])

        // More changes than the store's log keeps: the cache cannot know which, so it rebuilds.
        for n in 0..<9000 { store.upsert(.pod(Pod(metadata: ObjectMeta(name: "p\(n)", namespace: "default")))) }
        #expect(store.snapshot().changedKeys(since: 0) == nil)
        let rebuilt = cache.update(store.snapshot(), node: moved)
        #expect(rebuilt.changed == nil)
        #expect(rebuilt.state == ProxyState(snapshot: store.snapshot(), node: moved))
    }

    @Test func portNamesSortAsTheirDescriptions() {
        var rng = Seeded(state: 3)
        let pieces = ["a", "a-b", "a.b", "ab", "b", "a0", "", "web", "web-1"]
        let names = (0..<300).map { _ in
            ServicePortName(namespace: pieces.filter { !$0.isEmpty }.randomElement(using: &rng)!,
                            name: pieces.filter { !$0.isEmpty }.randomElement(using: &rng)!,
                            port: pieces.randomElement(using: &rng)!, proto: ServiceProtocol.allCases.randomElement(using: &rng)!)
        }
        for (l, r) in zip(names, names.shuffled(using: &rng)) {
            #expect((l < r) == (l.description < r.description), "\(l) vs \(r)")
        }
    }
}
