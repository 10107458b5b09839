import Logging
import NFTables
import NetAddress
import Netlink
@testable import ServiceProxy
import Testing

/// SplitMix64: the same rounds for a seed on every machine.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random services over small pools of addresses, ports and backends, so that service ports share
/// dummy addresses, hairpin pairs and node ports, and now and then contest a virtual service.
struct RandomServices {
    var rng: SeededGenerator
    static let names: [ServicePortName] = (0..<24).map {
        ServicePortName(namespace: "ns\($0 % 3)", name: "svc\($0 / 2)", port: $0 % 2 == 0 ? "a" : "b", proto: $0 % 3 == 0 ? .udp : .tcp)
    }
    static let nodePortAddresses = [ip("192.168.50.11"), ip("10.0.0.5")]

    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
    mutating func pick<T>(_ list: [T]) -> T { list.randomElement(using: &rng)! }
    mutating func backends(_ count: ClosedRange<Int>) -> [Backend] {
        let n = Int.random(in: count, using: &rng)
        return Array(Set((0..<n).map { _ in Backend(ip("10.244.\(Int.random(in: 1...2, using: &rng)).\(Int.random(in: 1...4, using: &rng))"), 8080) })).sorted()
    }

    /// Node ports and external IPs are the port's own: Kubernetes allocates node ports uniquely, and
    /// two ports sharing a set key with different verdicts (an external IP's `drop` and another's
    /// `goto reject`) is a conflict the nftables table cannot express either way. Cluster IPs are
    /// drawn from a small pool, so ports share addresses and now and then contest a virtual service.
    mutating func port(_ name: ServicePortName) -> ServicePortState {
        let slot = Self.names.firstIndex(of: name)!
        let internalBackends = backends(0...4)
        let local = chance(0.2)
        let terminating = backends(0...2).filter { !internalBackends.contains($0) }
        let lbIPs = chance(0.15) ? [ip("198.51.100.\(slot + 1)")] : []
        return ServicePortState(
            name: name, clusterIPs: [ip("10.96.0.\(Int.random(in: 1...10, using: &rng))")], port: pick([80, 443, 53]),
            nodePort: chance(0.3) ? UInt16(30000 + slot) : nil,
            externalIPs: chance(0.2) ? [ip("203.0.113.\(slot + 1)")] : [],
            loadBalancerIPs: lbIPs, loadBalancerSourceRanges: !lbIPs.isEmpty && chance(0.5) ? [CIDR("172.16.0.0/12")!] : [],
            affinityTimeout: chance(0.2) ? 10800 : nil, internalBackends: internalBackends,
            externalBackends: local ? internalBackends.filter { $0.address.description.hasPrefix("10.244.1.") } : nil,
            externalLocal: local, terminatingInternalBackends: terminating)
    }

    /// A state with about half of the names.
    mutating func initial() -> [ServicePortName: ServicePortState] {
        var ports: [ServicePortName: ServicePortState] = [:]
        for name in Self.names where chance(0.5) { ports[name] = port(name) }
        return ports
    }

    /// One to four service ports added, changed (often their endpoints only) or removed.
    mutating func change(_ ports: inout [ServicePortName: ServicePortState]) -> Set<ServicePortName> {
        var changed = Set<ServicePortName>()
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let name = pick(Self.names)
            changed.insert(name)
            if ports[name] != nil, chance(0.25) {
                ports[name] = nil
            } else if var old = ports[name], chance(0.5) {
                old.internalBackends = backends(0...4)
                old.externalBackends = old.externalLocal ? old.internalBackends.filter { $0.address.description.hasPrefix("10.244.1.") } : old.internalBackends
                old.clusterBackends = old.internalBackends   // internalTrafficPolicy Cluster: every backend
                ports[name] = old
            } else {
                ports[name] = port(name)
            }
        }
        if chance(0.2) { changed.insert(pick(Self.names)) }   // the hint may name a port that did not change
        return changed
    }

    static func state(_ ports: [ServicePortName: ServicePortState]) -> ProxyState {
        ProxyState(services: Array(ports.values), nodePortAddresses: nodePortAddresses, clusterCIDR: CIDR("10.244.0.0/16")!)
    }
}

/// One in-memory kernel (IPVS table and node devices) and a data plane on it.
struct FakeNode {
    let log = EventLog()
    let ipvs: FakeIPVSTable
    let devices: FakeNodeDevices
    let dataplane: IPVSServiceDataplane

    init(clock: TestClock) {
        ipvs = FakeIPVSTable(log: log)
        devices = FakeNodeDevices(log: log)
        dataplane = IPVSServiceDataplane(ipvs: ipvs, node: devices, sysctls: IPVSSysctl.required(kernelRelease: "6.1.0-18-amd64"),
                                         now: { clock.now }, logger: Logger(label: "test"))
    }

    var nftTable: Ruleset? { try? devices.nftTable(IPVSRuleset.table) }
    var dummy: Set<IPAddress>? { try? devices.dummyAddresses() }
}

@Suite struct IPVSIncrementalSyncTests {
    /// Two kernels in lockstep: one synced with the changed service ports named, one by full passes
    /// over the same states (with the same connection counters, so the same destinations drain).
    /// After every round both hold the same, and the incremental sync's IPVS operations touch only
    /// the virtual services of the changed ports and those with a destination draining.
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func incrementalSyncsLeaveTheKernelAsFullSyncsDo(seed: UInt64) throws {
        let clock = TestClock()
        var random = RandomServices(rng: SeededGenerator(state: seed))
        let incremental = FakeNode(clock: clock), full = FakeNode(clock: clock)
        var ports = random.initial()
        var state = RandomServices.state(ports)
        try incremental.dataplane.apply(state, changed: nil)
        try full.dataplane.apply(state)
        var incrementalSyncs = 0, operationsSent = 0

        for round in 0..<80 {
            let before = IPVSDesiredState(state)
            // Destinations that are not what the state wants: draining, the incremental pass looks at them again.
            let draining = Set(incremental.ipvs.contents.filter { before.services[$0.key]?.destinations != $0.value.destinations }.keys)
            let changed = random.change(&ports)
            state = RandomServices.state(ports)
            let after = IPVSDesiredState(state)

            // Some TCP destinations keep connections: leaving, they drain instead of going at once.
            var counters: [IPVSDestinationID: IPVSDestinationStatistics] = [:]
            let contents = incremental.ipvs.contents
            for key in contents.keys.sorted() where key.proto == .tcp {   // sorted: the same draws for a seed in every process
                for d in contents[key]!.destinations where random.chance(0.3) {
                    counters[IPVSDestinationID(key, d)] = IPVSDestinationStatistics(activeConnections: 1)
                }
            }
            incremental.ipvs.kernel.withLock { $0.counters = counters }
            full.ipvs.kernel.withLock { $0.counters = counters }
            if round % 20 == 19 { clock.advance(.seconds(1000)) }   // past the drain timeout: held destinations go too

            try incremental.dataplane.apply(state, changed: changed)
            try full.dataplane.apply(state)

            let report = try #require(incremental.dataplane.lastReport)
            #expect(!report.fullSync)
            if report.ipvs.total > 0 || report.nftOperations > 0 { incrementalSyncs += 1 }
            operationsSent += incremental.dataplane.lastOperations.count
            #expect(incremental.ipvs.contents == full.ipvs.contents, "seed \(seed) round \(round): IPVS tables differ")
            #expect(incremental.dummy == full.dummy, "seed \(seed) round \(round): dummy addresses differ")
            #expect(incremental.nftTable == full.nftTable, "seed \(seed) round \(round): \(elementDifferences(incremental.nftTable, full.nftTable))")
            #expect(incremental.dataplane.lastReport?.draining == full.dataplane.lastReport?.draining)
            // And both are what the whole-state functions say (draining destinations aside).
            #expect(incremental.nftTable == IPVSRuleset.ruleset(state), "seed \(seed) round \(round): \(elementDifferences(incremental.nftTable, IPVSRuleset.ruleset(state)))")
            #expect(incremental.dummy == Set(after.dummyAddresses), "seed \(seed) round \(round)")
            #expect(Set(incremental.ipvs.contents.keys) == Set(after.services.keys), "seed \(seed) round \(round)")
            let ledger = IPVSDesiredState(IPVSPortLedger(state, scheduler: .roundRobin))
            #expect(ledger.services == after.services && ledger.owners == after.owners && ledger.dummyAddresses == after.dummyAddresses)
            #expect(Set(ledger.conflicts) == Set(after.conflicts))
            let ledgerTable = IPVSRuleset.ruleset(clusterCIDR: state.clusterCIDR, nodePortAddresses: state.nodePortAddresses,
                                                  serviceElements: IPVSPortLedger(state, scheduler: .roundRobin).elements)
            #expect(ledgerTable == IPVSRuleset.ruleset(state), "ledger table: \(elementDifferences(ledgerTable, IPVSRuleset.ruleset(state)))")

            let allowed = draining.union(Set(before.owners.filter { changed.contains($0.value) }.keys))
                .union(Set(after.owners.filter { changed.contains($0.value) }.keys))
            let touched = incremental.dataplane.lastOperations.map(\.serviceKey)
            #expect(touched.allSatisfy(allowed.contains), "seed \(seed) round \(round): \(touched.filter { !allowed.contains($0) }) not changed")
        }
        #expect(incrementalSyncs > 40 && operationsSent > 100, "the rounds changed something: \(incrementalSyncs) syncs, \(operationsSent) operations")

        // Once no connection is left, the kernel is exactly the desired state, as a fresh start makes it.
        incremental.ipvs.kernel.withLock { $0.counters = [:] }
        try incremental.dataplane.apply(state, changed: [])
        let desired = IPVSDesiredState(state)
        #expect(incremental.ipvs.contents == desired.services)
        #expect(incremental.dummy == Set(desired.dummyAddresses))
        #expect(incremental.nftTable == IPVSRuleset.ruleset(state))
        let fresh = FakeNode(clock: clock)
        try fresh.dataplane.apply(state)
        #expect(incremental.ipvs.contents == fresh.ipvs.contents && incremental.dummy == fresh.dummy && incremental.nftTable == fresh.nftTable)
    }

    /// A change of one port among many sends its operations only, and the nftables elements and
    /// addresses it alone changes.
    @Test func oneEndpointChangeTouchesOnlyItsService() throws {
        let clock = TestClock()
        let node = FakeNode(clock: clock)
        var state = ipvsFixture
        try node.dataplane.apply(state)
        let i = state.services.firstIndex { $0.name == ipvsDNS }!
        state.services[i].internalBackends = [Backend(ip("10.244.1.10"), 5353)]
        node.log.clear()
        try node.dataplane.apply(state, changed: [ipvsDNS])
        #expect(node.dataplane.lastOperations == [.addDestination(udp("10.96.0.53", 53), dest("10.244.1.10", 5353)),
                                                  .deleteDestination(udp("10.96.0.53", 53), address: ip("10.244.1.9"), port: 5353)])
        #expect(node.dataplane.lastReport?.nftOperations == 2, "the hairpin pair out and in")
        #expect(node.log.all.filter { $0.hasPrefix("dummy") }.isEmpty)
        #expect(node.nftTable == IPVSRuleset.ruleset(state))
    }

    /// A port that loses a contested virtual service to one sorting first gets it when that one goes.
    @Test func aContestedServicePassesToTheNextClaimant() throws {
        let clock = TestClock()
        let node = FakeNode(clock: clock)
        let first = ServicePortName(namespace: "a", name: "first", port: "", proto: .tcp)
        let second = ServicePortName(namespace: "b", name: "second", port: "", proto: .tcp)
        let both = ProxyState(services: [
            ServicePortState(name: first, clusterIPs: [ip("10.96.0.1")], port: 80, internalBackends: [Backend(ip("10.244.1.1"), 80)]),
            ServicePortState(name: second, clusterIPs: [ip("10.96.0.2")], port: 80, externalIPs: [ip("10.96.0.1")],
                             internalBackends: [Backend(ip("10.244.1.2"), 80)]),
        ])
        try node.dataplane.apply(both)
        #expect(node.ipvs.contents[tcp("10.96.0.1", 80)]?.destinations == [dest("10.244.1.1", 80)])
        #expect(node.dataplane.lastReport?.conflicts == 1)
        let onlySecond = ProxyState(services: [both.services[1]])
        try node.dataplane.apply(onlySecond, changed: [first])
        #expect(node.ipvs.contents == IPVSDesiredState(onlySecond).services)
        #expect(node.ipvs.contents[tcp("10.96.0.1", 80)]?.destinations == [dest("10.244.1.2", 80)])
        #expect(node.dummy == [ip("10.96.0.1"), ip("10.96.0.2")], "10.96.0.1 is still the second's external IP")
        #expect(node.dataplane.lastReport?.conflicts == 0)
    }
}

/// The set elements only one of two tables has, per set (what the tables' descriptions leave out).
func elementDifferences(_ a: Ruleset?, _ b: Ruleset?) -> String {
    var lines: [String] = []
    for set in a?.sets ?? [] {
        let other = b?.sets.first { $0.name == set.name }?.elements ?? []
        let onlyA = set.elements.subtracting(other), onlyB = other.subtracting(set.elements)
        if !onlyA.isEmpty || !onlyB.isEmpty { lines.append("\(set.name): only first \(onlyA), only second \(onlyB)") }
    }
    return lines.joined(separator: "; ")
}

extension IPVSOperation {
    /// The virtual service an operation acts on.
    var serviceKey: IPVSServiceKey {
        switch self {
        case .addService(let s), .updateService(let s): s.key
        case .deleteService(let key), .addDestination(let key, _), .updateDestination(let key, _), .deleteDestination(let key, _, _): key
        }
    }
}
