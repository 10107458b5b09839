import Logging
import NFTables
import NetAddress
import Netlink
@testable import ServiceProxy
import Synchronization
import SystemPackage
import Testing

// MARK: - In-memory kernel

/// What the fakes did, in order, across the IPVS table and the node devices.
final class EventLog: Sendable {
    private let events = Mutex<[String]>([])
    func record(_ e: String) { events.withLock { $0.append(e) } }
    var all: [String] { events.withLock { $0 } }
    func clear() { events.withLock { $0 = [] } }
}

/// The kernel's IPVS table in memory, with the kernel's checks: EEXIST for a service or destination
/// that exists, ESRCH for a missing service, ENOENT for a missing destination. Like `IPVSSocket.apply`
/// it is not atomic: operations before a failure stay.
final class FakeIPVSTable: IPVSTable, IPVSConnectionCounting, Sendable {
    struct Kernel {
        var services: [IPVSServiceKey: IPVSService] = [:]
        var destinations: [IPVSServiceKey: [IPVSDestination]] = [:]
        var counters: [IPVSDestinationID: IPVSDestinationStatistics] = [:]
        var failAtOperation: Int?
    }
    let kernel = Mutex(Kernel())
    let log: EventLog
    init(log: EventLog) { self.log = log }

    func services() throws -> [IPVSService] {
        kernel.withLock { k in k.services.values.map { s in var s = s; s.flags.insert(.hashed); return s } }   // as the kernel reports them
    }
    func destinations(of service: IPVSServiceKey) throws -> [IPVSDestination] {
        try kernel.withLock { k in
            guard let d = k.destinations[service] else { throw NetlinkError(.other("IPVS_CMD_GET_DEST"), "\(service)", errno: .noSuchProcess) }
            return d
        }
    }
    func statistics(of service: IPVSServiceKey) throws -> [Backend: IPVSDestinationStatistics] {
        kernel.withLock { k in
            Dictionary(uniqueKeysWithValues: (k.destinations[service] ?? []).map {
                (Backend($0.address, $0.port), k.counters[IPVSDestinationID(service, $0)] ?? IPVSDestinationStatistics())
            })
        }
    }
    func apply(_ operations: [IPVSOperation]) throws {
        try kernel.withLock { k in
            for (i, op) in operations.enumerated() {
                if k.failAtOperation == i {
                    k.failAtOperation = nil
                    throw NetlinkError(.other("IPVS"), "\(op)", errno: .noMemory)
                }
                func fail(_ errno: Errno) -> NetlinkError { NetlinkError(.other("IPVS"), "\(op)", errno: errno) }
                switch op {
                case .addService(let s):
                    guard k.services[s.key] == nil else { throw fail(.fileExists) }
                    k.services[s.key] = s
                    k.destinations[s.key] = []
                case .updateService(let s):
                    guard k.services[s.key] != nil else { throw fail(.noSuchProcess) }
                    k.services[s.key] = s
                case .deleteService(let key):
                    guard k.services.removeValue(forKey: key) != nil else { throw fail(.noSuchProcess) }
                    k.destinations[key] = nil
                case .addDestination(let key, let d):
                    guard var list = k.destinations[key] else { throw fail(.noSuchProcess) }
                    guard !list.contains(where: { $0.address == d.address && $0.port == d.port }) else { throw fail(.fileExists) }
                    list.append(d)
                    k.destinations[key] = list
                case .updateDestination(let key, let d):
                    guard var list = k.destinations[key] else { throw fail(.noSuchProcess) }
                    guard let j = list.firstIndex(where: { $0.address == d.address && $0.port == d.port }) else { throw fail(.noSuchFileOrDirectory) }
                    list[j] = d
                    k.destinations[key] = list
                case .deleteDestination(let key, let address, let port):
                    guard var list = k.destinations[key] else { throw fail(.noSuchProcess) }
                    guard let j = list.firstIndex(where: { $0.address == address && $0.port == port }) else { throw fail(.noSuchFileOrDirectory) }
                    list.remove(at: j)
                    k.destinations[key] = list
                }
                log.record("ipvs \(op)")
            }
        }
    }

    /// Keys, settings and destinations, as the diff compares them.
    var contents: [IPVSServiceKey: IPVSVirtualService] {
        kernel.withLock { k in
            Dictionary(uniqueKeysWithValues: k.services.map { ($0.key, IPVSVirtualService(service: $0.value, destinations: k.destinations[$0.key] ?? [])) })
        }
    }
}

/// The same table without connection counters: leaving destinations wait for the drain timeout.
struct CounterlessIPVSTable: IPVSTable {
    let inner: FakeIPVSTable
    func services() throws -> [IPVSService] { try inner.services() }
    func destinations(of service: IPVSServiceKey) throws -> [IPVSDestination] { try inner.destinations(of: service) }
    func apply(_ operations: [IPVSOperation]) throws { try inner.apply(operations) }
}

/// Dummy interface, sysctls and nftables tables in memory; transactions are interpreted the way
/// the kernel would apply them (enough of it for what `transaction(from:to:)` emits).
final class FakeNodeDevices: IPVSNodeDevices, Sendable {
    struct Node {
        var dummy: Set<IPAddress>?
        var sysctls: [String: String] = [:]
        var tables: [Table: Ruleset] = [:]
        var sysctlWrites = 0
    }
    let node = Mutex(Node())
    let log: EventLog
    init(log: EventLog) { self.log = log }

    func dummyAddresses() throws -> Set<IPAddress>? { node.withLock { $0.dummy } }
    func updateDummy(adding: [IPAddress], removing: [IPAddress]) throws {
        node.withLock { n in
            n.dummy = (n.dummy ?? []).union(adding).subtracting(removing)
        }
        for a in adding { log.record("dummy +\(a)") }
        for a in removing { log.record("dummy -\(a)") }
    }
    func readSysctl(_ name: String) throws -> String {
        try node.withLock { n in
            guard let v = n.sysctls[name] else { throw NetlinkError(.sysctl, name, errno: .noSuchFileOrDirectory) }
            return v
        }
    }
    func writeSysctl(_ name: String, _ value: String) throws {
        node.withLock { n in
            n.sysctls[name] = value
            n.sysctlWrites += 1
        }
    }
    func nftTable(_ table: Table) throws -> Ruleset? { node.withLock { $0.tables[table] } }
    func apply(_ transaction: Transaction) throws {
        node.withLock { n in
            for op in transaction.operations { Self.apply(op, to: &n.tables) }
        }
        log.record("nft \(transaction.operations.count) operations")
    }

    static func apply(_ op: Transaction.Operation, to tables: inout [Table: Ruleset]) {
        switch op {
        case .addTable(let t), .createTable(let t):
            if tables[t] == nil { tables[t] = Ruleset(tables: [t]) }
        case .deleteTable(let t): tables[t] = nil
        case .flushTable(let t): tables[t]?.rules = []
        case .addChain(let c):
            if tables[c.table]?.chain(c.name, in: c.table) == nil { tables[c.table]?.chains.append(c) }
        case .deleteChain(let t, let name): tables[t]?.chains.removeAll { $0.name == name }
        case .flushChain(let t, let name): tables[t]?.rules.removeAll { $0.chain == name }
        case .addSet(let s):
            if let i = tables[s.table]?.sets.firstIndex(where: { $0.name == s.name }) {
                tables[s.table]!.sets[i].elements.formUnion(s.elements)
            } else {
                tables[s.table]?.sets.append(s)
            }
        case .deleteSet(let t, let name): tables[t]?.sets.removeAll { $0.name == name }
        case .flushSet(let t, let name):
            if let i = tables[t]?.sets.firstIndex(where: { $0.name == name }) { tables[t]!.sets[i].elements = [] }
        case .addElements(let s, let e):
            if let i = tables[s.table]?.sets.firstIndex(where: { $0.name == s.name }) { tables[s.table]!.sets[i].elements.formUnion(e) }
        case .deleteElements(let s, let e):
            if let i = tables[s.table]?.sets.firstIndex(where: { $0.name == s.name }) { tables[s.table]!.sets[i].elements.subtract(e) }
        case .addRule(let r): tables[r.table]?.rules.append(r)
        case .replaceRule, .deleteRule: Issue.record("the fake does not apply \(op)")
        }
    }
}

/// A clock the test moves.
final class TestClock: Sendable {
    let start = ContinuousClock.now
    private let offset = Mutex<Duration>(.zero)
    func advance(_ d: Duration) { offset.withLock { $0 += d } }
    var now: ContinuousClock.Instant { start + offset.withLock { $0 } }
}

// MARK: - Tests

@Suite struct IPVSServiceDataplaneTests {
    let log = EventLog()
    let ipvs: FakeIPVSTable
    let node: FakeNodeDevices
    let clock = TestClock()
    let sysctls = IPVSSysctl.required(kernelRelease: "6.1.0-18-amd64")

    init() {
        ipvs = FakeIPVSTable(log: log)
        node = FakeNodeDevices(log: log)
    }

    func dataplane(table: (any IPVSTable)? = nil) -> IPVSServiceDataplane {
        let clock = self.clock
        return IPVSServiceDataplane(ipvs: table ?? ipvs, node: node, sysctls: sysctls, now: { clock.now }, logger: Logger(label: "test"))
    }
    func changed(_ change: (inout ProxyState) -> Void) -> ProxyState {
        var s = ipvsFixture
        change(&s)
        return s
    }
    func index(_ name: ServicePortName) -> Int { ipvsFixture.services.firstIndex { $0.name == name }! }

    @Test func firstSyncProgramsEverythingAndARestartChangesNothing() throws {
        let desired = IPVSDesiredState(ipvsFixture)
        let first = dataplane()
        try first.apply(ipvsFixture)
        #expect(ipvs.contents == desired.services)
        #expect(try node.dummyAddresses() == Set(desired.dummyAddresses))
        #expect(try node.nftTable(IPVSRuleset.table) == IPVSRuleset.ruleset(ipvsFixture))
        #expect(sysctls.allSatisfy { (try? node.readSysctl($0.name)) == $0.value })
        let report = try #require(first.lastReport)
        #expect(report.fullSync && report.ipvs.servicesAdded == desired.services.count && report.addressesAdded == desired.dummyAddresses.count)
        #expect(report.sysctlsWritten == sysctls.count)

        log.clear()
        try first.apply(ipvsFixture)
        #expect(first.lastOperations.isEmpty && first.lastReport?.changedSomething == false && first.lastReport?.fullSync == false)

        // A restarted keeld: a new data plane that knows nothing reads the kernel and sends nothing.
        let restarted = dataplane()
        try restarted.apply(ipvsFixture)
        #expect(restarted.lastReport?.fullSync == true)
        #expect(restarted.lastOperations.isEmpty && restarted.lastReport?.changedSomething == false, "\(String(describing: restarted.lastReport))")
        #expect(log.all.isEmpty, "nothing sent to any fake: \(log.all)")
    }

    @Test func anEndpointChangeSendsOnlyItsOperations() throws {
        let dp = dataplane()
        try dp.apply(ipvsFixture)
        try dp.apply(changed { $0.services[index(ipvsDNS)].internalBackends = [Backend(ip("10.244.1.10"), 5353)] })
        #expect(dp.lastOperations == [.addDestination(udp("10.96.0.53", 53), dest("10.244.1.10", 5353)),
                                      .deleteDestination(udp("10.96.0.53", 53), address: ip("10.244.1.9"), port: 5353)])
        #expect(dp.lastReport?.nftOperations == 2, "the hairpin pair out and in")
        #expect(dp.lastReport?.addressesAdded == 0 && dp.lastReport?.sysctlsWritten == 0)
    }

    @Test func aLeavingTCPDestinationIsDeletedOnceIdle() throws {
        let dp = dataplane()
        try dp.apply(ipvsFixture)
        let key = tcp("10.96.0.77", 80), gone = IPVSDestinationID(service: tcp("10.96.0.77", 80), address: ip("10.244.2.7"), port: 80)
        ipvs.kernel.withLock { $0.counters[gone] = IPVSDestinationStatistics(activeConnections: 2) }
        let without = changed { $0.services[index(ipvsLocal)].internalBackends = [Backend(ip("10.244.1.5"), 80)] }
        try dp.apply(without)
        #expect(dp.lastOperations == [.updateDestination(key, dest("10.244.2.7", 80, weight: 0))])
        #expect(dp.lastReport?.draining == 1)
        try dp.apply(without)
        #expect(dp.lastOperations.isEmpty, "still connected: it waits")
        ipvs.kernel.withLock { $0.counters[gone] = IPVSDestinationStatistics() }
        try dp.apply(without)
        #expect(dp.lastOperations == [.deleteDestination(key, address: ip("10.244.2.7"), port: 80)])
        #expect(dp.lastReport?.draining == 0)
        #expect(ipvs.contents == IPVSDesiredState(without).services)
    }

    @Test func withoutCountersTheDrainTimeoutDecides() throws {
        let dp = dataplane(table: CounterlessIPVSTable(inner: ipvs))
        try dp.apply(ipvsFixture)
        let without = changed { $0.services[index(ipvsLocal)].internalBackends = [Backend(ip("10.244.1.5"), 80)] }
        try dp.apply(without)
        #expect(dp.lastOperations.count == 1)
        clock.advance(.seconds(899))
        try dp.apply(without)
        #expect(dp.lastOperations.isEmpty)
        clock.advance(.seconds(2))
        try dp.apply(without)
        #expect(dp.lastOperations == [.deleteDestination(tcp("10.96.0.77", 80), address: ip("10.244.2.7"), port: 80)])
    }

    @Test func othersServicesSurviveEverySync() throws {
        let strangers = [tcp("10.1.2.3", 80), tcp("192.168.50.11", 22)]
        try ipvs.apply(strangers.flatMap { [.addService(IPVSService(key: $0, scheduler: "wlc")), .addDestination($0, dest("10.9.9.9", 80))] })
        let before = ipvs.contents.filter { strangers.contains($0.key) }
        let dp = dataplane()
        try dp.apply(ipvsFixture)
        try dp.apply(ProxyState(services: [], nodePortAddresses: ipvsFixture.nodePortAddresses))
        #expect(ipvs.contents == before, "every Keel service gone, the others untouched")
        // A restart over a kernel with Keel's leftovers on keel-ipvs0 and a node port: those go, the others stay.
        try dataplane().apply(ipvsFixture)
        try dataplane().apply(ProxyState(services: [], nodePortAddresses: ipvsFixture.nodePortAddresses))
        #expect(ipvs.contents == before)
        #expect(try node.dummyAddresses() == [])
    }

    /// A node port outside the default range is Keel's because Keel made it: removed with its service.
    @Test func aNodePortOutsideTheRangeGoesWithItsService() throws {
        let dp = dataplane()
        let odd = changed { $0.services[index(ipvsEmpty)].nodePort = 8099 }
        try dp.apply(odd)
        #expect(ipvs.contents[tcp("192.168.50.11", 8099)] != nil)
        try dp.apply(changed { $0.services.remove(at: index(ipvsEmpty)) })
        #expect(ipvs.contents[tcp("192.168.50.11", 8099)] == nil && ipvs.contents[tcp("10.0.0.5", 8099)] == nil)
    }

    @Test func serviceAddressesComeBeforeTheirServicesAndGoAfter() throws {
        let dp = dataplane()
        try dp.apply(ipvsFixture)
        #expect(log.all.firstIndex(of: "dummy +10.96.0.99")! < log.all.firstIndex(of: "ipvs add service TCP 10.96.0.99:80 rr")!)
        log.clear()
        try dp.apply(changed { $0.services.remove(at: index(ipvsEmpty)) })
        #expect(log.all.firstIndex(of: "ipvs delete service TCP 10.96.0.99:80")! < log.all.firstIndex(of: "dummy -10.96.0.99")!)
        #expect(dp.lastReport?.addressesRemoved == 1 && dp.lastReport?.ipvs.servicesDeleted == 3)
    }

    @Test func aFailedSyncReadsTheKernelNextTimeAndConverges() throws {
        ipvs.kernel.withLock { $0.failAtOperation = 5 }
        let dp = dataplane()
        #expect(throws: NetlinkError.self) { try dp.apply(ipvsFixture) }
        #expect(!ipvs.contents.isEmpty, "the first five operations stayed, as with the real socket")
        try dp.apply(ipvsFixture)
        #expect(dp.lastReport?.fullSync == true)
        #expect(ipvs.contents == IPVSDesiredState(ipvsFixture).services)
    }

    @Test func theNFTablesPlanesTableIsDeletedOnTheFirstSync() throws {
        node.node.withLock { $0.tables[ServiceRuleset.table] = ServiceRuleset.ruleset(ipvsFixture) }
        try dataplane().apply(ipvsFixture)
        #expect(try node.nftTable(ServiceRuleset.table) == nil)
        #expect(try node.nftTable(IPVSRuleset.table) != nil)
    }

    @Test(arguments: [("6.1.0-18-amd64", false), ("5.4.0-100-generic", true), ("5.9.0", false), ("4.19.0", true), ("3.10.0-1160.el7", false)])
    func connReuseModeAsKubeProxyChooses(release: String, setsIt: Bool) {
        let names = IPVSSysctl.required(kernelRelease: release).map(\.name)
        #expect(names.contains("net.ipv4.vs.conn_reuse_mode") == setsIt)
        #expect(names.contains("net.ipv4.vs.conntrack") && names.contains("net.ipv4.ip_forward"))
    }
}
