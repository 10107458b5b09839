import Glibc
import Logging
import NFTables
import NetAddress
import Netlink
import ServiceProxy

/// `bench ipvs-guest`: the half of `bench ipvs` that runs inside the VM lane (Debian's stock kernel,
/// which has IPVS). The VM's own namespace is the node, and nothing else lives in it. For each size,
/// the IPVS data plane and then the nftables data plane, each driven as keeld drives it:
///
/// - full sync: a fresh data plane applies N services × E endpoints to an empty kernel, `runs` times,
///   flushed in between; after the first, the kernel is read back and must hold exactly the desired state;
/// - one endpoint changed: the data plane of the last full sync gets `runs` successive states that each
///   move one endpoint of one service (`SyntheticServices.endpointMoves`); the kernel is checked again.
///
/// Results are console lines `KEEL-RESULT <plane>-<measure>-<size> <value>` for the host side
/// (`IPVSBench`); times are milliseconds, one per run.
struct IPVSGuestBench {
    let sizes: [Int]
    let endpointsPerService: Int
    let runs: Int

    enum Plane: String, CaseIterable { case ipvs, nftables }

    /// The node's kernel (the VM's namespace), opened once for every data plane.
    struct Kernel {
        let route: RouteSocket
        let nft: NFTablesSocket
        let ipvs: IPVSSocket
        var devices: KernelIPVSNodeDevices { KernelIPVSNodeDevices(route: route, nft: nft) }
    }

    func run() throws {
        let kernel = Kernel(route: try RouteSocket(), nft: try NFTablesSocket(), ipvs: try IPVSSocket())
        Self.report("kernel", IPVSSysctl.currentKernelRelease())
        try flush(kernel)
        for size in sizes {
            let base = SyntheticServices.state(count: size, endpoints: endpointsPerService)
            let changes = SyntheticServices.endpointMoves(from: base, count: runs, endpoints: endpointsPerService)
            for plane in Plane.allCases {
                do {
                    try measure(plane, size: size, base: base, changes: changes, kernel: kernel)
                } catch {
                    Self.report("error", "\(plane) at \(size) services: \(error)")
                    throw error
                }
            }
        }
        Self.report("done", "yes")
    }

    func measure(_ plane: Plane, size: Int, base: ProxyState, changes: [ProxyState], kernel: Kernel) throws {
        func name(_ measure: String) -> String { "\(plane.rawValue)-\(measure)-\(size)" }

        var full: [Double] = []
        var dataplanes: [any ServiceDataplane] = []
        for run in 0..<runs {
            try flush(kernel)
            let dataplane = dataplane(plane, kernel)
            full.append(try Stopwatch.measure { try dataplane.apply(base) })
            if run == 0 {
                Self.report(name("full-ops"), operations(dataplane))
                Self.report(name("check-full"), try verify(plane, base, kernel))
            }
            Self.say("\(plane) full sync \(size) services, run \(run + 1): \(Self.ms(full.last!)) ms")
            dataplanes = [dataplane]   // the last one's tables stay for the changes
        }
        Self.report(name("full"), full.map(Self.ms).joined(separator: " "))

        let synced = dataplanes[0]
        var change: [Double] = [], ops: [String] = []
        for state in changes {
            change.append(try Stopwatch.measure { try synced.apply(state) })
            ops.append(operations(synced))
        }
        Self.report(name("change-ops"), Set(ops).sorted().joined(separator: " | "))
        Self.report(name("check-change"), try verify(plane, changes.last!, kernel))
        Self.report(name("change"), change.map(Self.ms).joined(separator: " "))
        Self.say("\(plane) one endpoint changed at \(size): \(change.map(Self.ms).joined(separator: ", ")) ms")
        try flush(kernel)
    }

    func dataplane(_ plane: Plane, _ kernel: Kernel) -> any ServiceDataplane {
        var logger = Logger(label: "bench.ipvs")
        logger.logLevel = .warning
        switch plane {
        case .ipvs: return IPVSServiceDataplane(ipvs: kernel.ipvs, node: kernel.devices, logger: logger)
        // No conntrack socket, as in `bench proxy`: it only clears UDP flows, and these services are TCP.
        case .nftables: return NFTablesServiceDataplane(nft: kernel.nft, conntrack: nil, logger: logger)
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

    /// Removes everything either data plane made: Keel's IPVS services (the VM has no others), the
    /// dummy interface with its addresses, and both nftables tables.
    func flush(_ kernel: Kernel) throws {
        try kernel.ipvs.flush()
        // (try?: a missing link is the only expected failure. A typed catch here crashes Swift 6.3.1's
        // MandatoryAllocBoxToStack pass in release builds.)
        if (try? kernel.route.link(.name(KernelIPVSNodeDevices.dummyName))) != nil {
            try kernel.route.deleteLink(.name(KernelIPVSNodeDevices.dummyName))
        }
        let present = Set(try kernel.nft.tables())
        var tx = Transaction()
        for table in [IPVSRuleset.table, ServiceRuleset.table] where present.contains(table) { tx.delete(table) }
        if !tx.isEmpty { try kernel.nft.apply(tx) }
    }

    // MARK: - Checks

    /// The kernel holds exactly what `state` asks of `plane`; a summary for the report, or a throw
    /// naming what differs.
    func verify(_ plane: Plane, _ state: ProxyState, _ kernel: Kernel) throws -> String {
        switch plane {
        case .ipvs:
            let desired = IPVSDesiredState(state)
            // Read back over netlink and diffed as the data plane diffs: nothing may be left to do.
            var table: [IPVSServiceKey: IPVSVirtualService] = [:]
            for service in try kernel.ipvs.services() {
                table[service.key] = IPVSVirtualService(service: service, destinations: try kernel.ipvs.destinations(of: service.key))
            }
            let everyone = IPVSOwnership(addresses: Set(table.keys.map(\.address)), nodePortAddresses: [])
            let every = Set(table.flatMap { key, v in v.destinations.map { IPVSDestinationID(key, $0) } })
            let fix = ipvsOperations(from: table, to: desired.services, ownership: everyone, removable: every)
            guard fix.isEmpty else {
                throw BenchCheckError(plane: plane, what: "IPVS table", detail: "\(fix.count) operations from the desired state, first \(fix[0])")
            }
            // The kernel's own text, independent of Keel's parser: counts and weights.
            let proc = try ProcIPVS.read()
            let destinations = desired.services.values.reduce(0) { $0 + $1.destinations.count }
            guard proc.services == desired.services.count, proc.destinations == destinations, proc.weightNotOne == 0 else {
                throw BenchCheckError(plane: plane, what: "/proc/net/ip_vs", detail: "\(proc) but want \(desired.services.count) services, \(destinations) destinations of weight 1")
            }
            let dummy = try kernel.devices.dummyAddresses() ?? []
            guard dummy == Set(desired.dummyAddresses) else {
                throw BenchCheckError(plane: plane, what: "\(KernelIPVSNodeDevices.dummyName) addresses", detail: "\(dummy.count), want \(desired.dummyAddresses.count)")
            }
            try sameTable(IPVSRuleset.ruleset(state), IPVSRuleset.table, kernel, plane)
            return "ok services=\(proc.services) destinations=\(proc.destinations) dummy-addresses=\(dummy.count) table=identical"
        case .nftables:
            let expected = ServiceRuleset.ruleset(state)
            let got = try sameTable(expected, ServiceRuleset.table, kernel, plane)
            let counts = got.sets.filter { !$0.elements.isEmpty }.map { "\($0.name)=\($0.elements.count)" }.sorted()
            return "ok \(counts.joined(separator: " ")) table=identical"
        }
    }

    /// The kernel's `table` is `expected` to the element: the diff from one to the other is empty.
    @discardableResult
    func sameTable(_ expected: Ruleset, _ table: Table, _ kernel: Kernel, _ plane: Plane) throws -> Ruleset {
        // A dump right after a large insert can miss elements while the kernel's rhashtable is still
        // resizing (the walk restarts and the dump skips by count): read again before calling it wrong.
        var difference = 0
        for attempt in 0..<10 {
            guard let got = try kernel.nft.table(named: table.name, family: table.family) else {
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

    static func read(path: String = "/proc/net/ip_vs") throws -> ProcIPVS {
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
