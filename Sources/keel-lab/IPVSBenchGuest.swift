import Glibc
import Logging
import NFTables
import NetAddress
import Netlink
import ServiceProxy

/// `bench ipvs-guest`: the half of `bench ipvs` that runs inside the VM lane (Debian's stock kernel,
/// which has IPVS). Every run gets a fresh network namespace in the VM as its node. For each size, the
/// IPVS data plane and then the nftables data plane, each driven as keeld drives it:
///
/// - full sync: a fresh data plane applies N services × E endpoints to an empty kernel, `runs` times;
///   after the first, the kernel is read back and must hold exactly the desired state;
/// - one endpoint changed: the data plane of the last full sync gets `runs` successive states that each
///   move one endpoint of one service (`SyntheticServices.endpointMoves`); the kernel is checked again.
///
/// Why a fresh namespace rather than a flush between runs: IPVS keeps deleted destinations in a per-
/// namespace trash list for one to two minutes (ip_vs_ctl.c, IP_VS_DEST_TRASH_PERIOD) and walks that
/// list on every IPVS_CMD_NEW_DEST, so a full sync soon after `ipvsadm -C` of 100K destinations took
/// 150-190 s instead of 25 s here. That is a refill, not a sync from empty.
///
/// Results are console lines `KEEL-RESULT <plane>-<measure>-<size> <value>` for the host side
/// (`IPVSBench`); times are milliseconds, one per run.
struct IPVSGuestBench {
    let sizes: [Int]
    let endpointsPerService: Int
    let runs: Int

    enum Plane: String, CaseIterable { case ipvs, nftables }

    /// A fresh network namespace that plays the node for one data plane, with its sockets opened inside.
    struct Node {
        let name: String
        let namespace: NetworkNamespace
        let route: RouteSocket
        let nft: NFTablesSocket
        let ipvs: IPVSSocket
        var devices: KernelIPVSNodeDevices { KernelIPVSNodeDevices(route: route, nft: nft, namespace: namespace) }

        static func fresh(_ name: String) throws -> Node {
            try? NetworkNamespace.delete(named: name)   // a leftover of an earlier run in the same VM: none expected
            let namespace = try NetworkNamespace.create(named: name)
            return try namespace.run {
                Node(name: name, namespace: namespace, route: try RouteSocket(), nft: try NFTablesSocket(), ipvs: try IPVSSocket())
            }
        }

        /// Unnames the namespace; the kernel tears it down once this value's sockets are closed too.
        func remove() { try? NetworkNamespace.delete(named: name) }
    }

    func run() throws {
        Self.report("kernel", IPVSSysctl.currentKernelRelease())
        for size in sizes {
            let base = SyntheticServices.state(count: size, endpoints: endpointsPerService)
            let changes = SyntheticServices.endpointMoves(from: base, count: runs, endpoints: endpointsPerService)
            for plane in Plane.allCases {
                do {
                    try measure(plane, size: size, base: base, changes: changes)
                } catch {
                    Self.report("error", "\(plane) at \(size) services: \(error)")
                    throw error
                }
            }
        }
        Self.settle()
        Self.report("done", "yes")
    }

    func measure(_ plane: Plane, size: Int, base: ProxyState, changes: [ProxyState]) throws {
        func name(_ measure: String) -> String { "\(plane.rawValue)-\(measure)-\(size)" }

        var full: [Double] = []
        var kept: (node: Node, dataplane: any ServiceDataplane)?
        for run in 0..<runs {
            Self.settle()   // the namespace of the run before goes away in the background
            let node = try Node.fresh("keel-bench-\(plane.rawValue)-\(size)-\(run)")
            let dataplane = dataplane(plane, node)
            full.append(try Stopwatch.measure { try dataplane.apply(base) })
            if run == 0 {
                Self.report(name("full-ops"), operations(dataplane))
                Self.report(name("check-full"), try verify(plane, base, node))
            }
            Self.say("\(plane) full sync \(size) services, run \(run + 1): \(Self.ms(full.last!)) ms")
            if run == runs - 1 { kept = (node, dataplane) } else { node.remove() }
        }
        Self.report(name("full"), full.map(Self.ms).joined(separator: " "))

        let (node, synced) = kept!
        var change: [Double] = [], ops: [String] = []
        var previous = base
        for state in changes {
            // The service ports that differ, named as the controller names them (outside the measure).
            let changed = Set(zip(previous.services, state.services).filter { $0 != $1 }.map { $1.name })
            previous = state
            change.append(try Stopwatch.measure { try synced.apply(state, changed: changed) })
            ops.append(operations(synced))
        }
        Self.report(name("change-ops"), Set(ops).sorted().joined(separator: " | "))
        Self.report(name("check-change"), try verify(plane, changes.last!, node))
        Self.report(name("change"), change.map(Self.ms).joined(separator: " "))
        Self.say("\(plane) one endpoint changed at \(size): \(change.map(Self.ms).joined(separator: ", ")) ms")
        node.remove()
        if plane == .ipvs {   // after the runs: the first IPVS work after boot is slower (cold caches, first page faults)
            Self.settle()
            Self.report(name("parts"), try ipvsParts(base, size: size))
        }
    }

    /// Where an IPVS full sync's time goes, from the data plane's public parts in a namespace of their
    /// own, in the data plane's order: the pure desired state (IPVS services, nftables ruleset and its
    /// transaction, IPVS operations), the nftables batch, the dummy's addresses (one pipelined request list, as
    /// `KernelIPVSNodeDevices` adds them) and the IPVS operations in one pipelined apply.
    func ipvsParts(_ state: ProxyState, size: Int) throws -> String {
        let node = try Node.fresh("keel-bench-parts-\(size)")
        defer { node.remove() }
        var addresses: [IPAddress] = [], operations: [IPVSOperation] = [], tx = Transaction()
        let pure = Stopwatch.measure {
            let desired = IPVSDesiredState(state)
            tx = transaction(from: nil, to: IPVSRuleset.ruleset(state))
            addresses = desired.dummyAddresses
            operations = ipvsOperations(from: [:], to: desired.services, ownership: IPVSOwnership(addresses: Set(addresses), nodePortAddresses: []))
        }
        let nft = try Stopwatch.measure { try node.nft.apply(tx) }
        let dummy = try Stopwatch.measure { try node.devices.updateDummy(adding: addresses, removing: []) }
        let ipvs = try Stopwatch.measure { try node.ipvs.apply(operations) }
        return "pure \(Self.ms(pure)) ms, nftables batch \(Self.ms(nft)) ms, \(addresses.count) dummy addresses "
            + "\(Self.ms(dummy)) ms, \(operations.count) IPVS operations \(Self.ms(ipvs)) ms"
    }

    func dataplane(_ plane: Plane, _ node: Node) -> any ServiceDataplane {
        var logger = Logger(label: "bench.ipvs")
        logger.logLevel = .warning
        switch plane {
        case .ipvs: return IPVSServiceDataplane(ipvs: node.ipvs, node: node.devices, logger: logger)
        // No conntrack socket, as in `bench proxy`: it only clears UDP flows, and these services are TCP.
        case .nftables: return NFTablesServiceDataplane(nft: node.nft, conntrack: nil, logger: logger)
        }
    }

    /// What the last sync sent, as the data plane counts it.
    func operations(_ dataplane: any ServiceDataplane) -> String {
        if let ipvs = dataplane as? IPVSServiceDataplane, let r = ipvs.lastReport {
            return "ipvs: \(r.ipvs); nft operations \(r.nftOperations); addresses +\(r.addressesAdded) -\(r.addressesRemoved)"
        }
        if let nft = dataplane as? NFTablesServiceDataplane {
            return "nft operations \(nft.lastTransaction?.operations.count ?? 0)"
        }
        return "?"
    }

    /// Waits (up to two minutes) until the VM's CPU has been idle for half a second: the kernel tears
    /// a removed namespace down in a workqueue (10K addresses, 100K destinations), and on one vCPU
    /// that work would land in the next measurement.
    static func settle() {
        func sample() -> (idle: Double, total: Double)? {
            guard let file = fopen("/proc/stat", "r") else { return nil }
            defer { fclose(file) }
            var buffer = [CChar](repeating: 0, count: 512)
            guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
            // cpu  user nice system idle iowait irq softirq steal ...
            let ticks = String(cString: buffer).split(separator: " ").dropFirst().compactMap { Double($0.filter(\.isNumber)) }
            guard ticks.count >= 5 else { return nil }
            return (ticks[3] + ticks[4], ticks.prefix(8).reduce(0, +))
        }
        let started = Stopwatch.now()
        while Stopwatch.now() - started < 120, let a = sample() {
            usleep(500_000)
            guard let b = sample() else { return }
            if (b.idle - a.idle) / max(1, b.total - a.total) >= 0.9 { break }
        }
        let waited = Stopwatch.now() - started
        if waited > 1.5 { say("(waited \(format2(waited)) s for the kernel to tear down the namespace before)") }
    }

    // MARK: - Checks

    /// The kernel holds exactly what `state` asks of `plane`; a summary for the report, or a throw
    /// naming what differs.
    func verify(_ plane: Plane, _ state: ProxyState, _ node: Node) throws -> String {
        switch plane {
        case .ipvs:
            let desired = IPVSDesiredState(state)
            // Read back over netlink and diffed as the data plane diffs: nothing may be left to do.
            var table: [IPVSServiceKey: IPVSVirtualService] = [:]
            for service in try node.ipvs.services() {
                table[service.key] = IPVSVirtualService(service: service, destinations: try node.ipvs.destinations(of: service.key))
            }
            let everyone = IPVSOwnership(addresses: Set(table.keys.map(\.address)), nodePortAddresses: [])
            let every = Set(table.flatMap { key, v in v.destinations.map { IPVSDestinationID(key, $0) } })
            let fix = ipvsOperations(from: table, to: desired.services, ownership: everyone, removable: every)
            guard fix.isEmpty else {
                throw BenchCheckError(plane: plane, what: "IPVS table", detail: "\(fix.count) operations from the desired state, first \(fix[0])")
            }
            // The kernel's own text, independent of Keel's parser: counts and weights.
            let proc = try node.namespace.run { try ProcIPVS.read(path: "/proc/thread-self/net/ip_vs") }
            let destinations = desired.services.values.reduce(0) { $0 + $1.destinations.count }
            guard proc.services == desired.services.count, proc.destinations == destinations, proc.weightNotOne == 0 else {
                throw BenchCheckError(plane: plane, what: "/proc/net/ip_vs", detail: "\(proc) but want \(desired.services.count) services, \(destinations) destinations of weight 1")
            }
            let dummy = try node.devices.dummyAddresses() ?? []
            guard dummy == Set(desired.dummyAddresses) else {
                throw BenchCheckError(plane: plane, what: "\(KernelIPVSNodeDevices.dummyName) addresses", detail: "\(dummy.count), want \(desired.dummyAddresses.count)")
            }
            try sameTable(IPVSRuleset.ruleset(state), IPVSRuleset.table, node, plane)
            return "ok services=\(proc.services) destinations=\(proc.destinations) dummy-addresses=\(dummy.count) table=identical"
        case .nftables:
            let expected = ServiceRuleset.ruleset(state)
            let got = try sameTable(expected, ServiceRuleset.table, node, plane)
            let counts = got.sets.filter { !$0.elements.isEmpty }.map { "\($0.name)=\($0.elements.count)" }.sorted()
            return "ok \(counts.joined(separator: " ")) table=identical"
        }
    }

    /// The kernel's `table` is `expected` to the element: the diff from one to the other is empty.
    @discardableResult
    func sameTable(_ expected: Ruleset, _ table: Table, _ node: Node, _ plane: Plane) throws -> Ruleset {
        // A dump right after a large insert can miss elements while the kernel's rhashtable is still
        // resizing (the walk restarts and the dump skips by count): read again before calling it wrong.
        var difference = 0
        for attempt in 0..<10 {
            guard let got = try node.nft.table(named: table.name, family: table.family) else {
                throw BenchCheckError(plane: plane, what: "table \(table)", detail: "missing")
            }
            difference = transaction(from: got, to: expected).operations.count
            if difference == 0 {
                if attempt > 0 { Self.say("(\(table) read back complete after \(attempt + 1) dumps)") }
                return got
            }
            usleep(300_000)
        }
        throw BenchCheckError(plane: plane, what: "table \(table)", detail: "\(difference) operations away from the rendered ruleset")
    }

    // MARK: - Output

    static func report(_ key: String, _ value: String) {
        print("KEEL-RESULT \(key) \(value)")
        fflush(nil)
    }
    static func say(_ line: String) {
        print("guest: \(line)")
        fflush(nil)
    }
    static func ms(_ seconds: Double) -> String { format2(seconds * 1000) }
}

/// A kernel state that is not what the data plane was asked for.
struct BenchCheckError: Error, CustomStringConvertible {
    var plane: IPVSGuestBench.Plane
    var what: String
    var detail: String
    var description: String { "\(plane) data plane: \(what): \(detail)" }
}

/// Counts from `/proc/net/ip_vs`, the kernel's text view of its IPVS table (ip_vs_ctl.c,
/// ip_vs_info_seq_show): a service line starts with its protocol, a real server line with "  ->".
struct ProcIPVS: CustomStringConvertible {
    var services = 0
    var destinations = 0
    var weightNotOne = 0
    var description: String { "\(services) services, \(destinations) destinations (\(weightNotOne) of weight ≠ 1)" }

    static func read(path: String) throws -> ProcIPVS {
        guard let file = fopen(path, "r") else { throw BenchCheckError(plane: .ipvs, what: path, detail: "cannot open (errno \(errno))") }
        defer { fclose(file) }
        var counts = ProcIPVS()
        var buffer = [CChar](repeating: 0, count: 512)   // the longest line is well under 100 bytes
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            let fields = String(cString: buffer).split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard let first = fields.first else { continue }
            if ["TCP", "UDP", "SCTP", "FWM"].contains(first) {
                counts.services += 1
            } else if first == "->", fields.count >= 4, fields[1] != "RemoteAddress:Port" {
                counts.destinations += 1
                if fields[3] != "1" { counts.weightNotOne += 1 }
            }
        }
        return counts
    }
}
