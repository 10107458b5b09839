import Logging
import NFTables
import NetAddress
import Netlink
import Synchronization

/// An IPVS table that also reports each destination's connection counters
/// (IPVS_DEST_ATTR_ACTIVE_CONNS / INACT_CONNS / PERSIST_CONNS). With it, a leaving TCP destination
/// is deleted as soon as it is idle; without it, after the drain timeout.
public protocol IPVSConnectionCounting: Sendable {
    func statistics(of service: IPVSServiceKey) throws -> [Backend: IPVSDestinationStatistics]
}

/// What one IPVS sync did, for logs and metrics.
public struct IPVSSyncReport: Sendable, Hashable, CustomStringConvertible {
    /// The kernel was read (first sync, or after a failure) rather than trusted from the last sync.
    public var fullSync = false
    public var ipvs = IPVSChangeCounts()
    public var nftOperations = 0
    public var addressesAdded = 0
    public var addressesRemoved = 0
    public var sysctlsWritten = 0
    /// TCP destinations kept at weight 0 until their connections end.
    public var draining = 0
    public var conflicts = 0

    public init() {}
    public var changedSomething: Bool {
        ipvs.total + nftOperations + addressesAdded + addressesRemoved + sysctlsWritten > 0
    }
    public var description: String {
        "\(fullSync ? "full" : "incremental") sync: \(ipvs); nftables operations \(nftOperations); "
            + "addresses +\(addressesAdded) -\(addressesRemoved); sysctls \(sysctlsWritten); draining \(draining)"
    }
}

/// The IPVS data plane (kube-proxy's IPVS mode, with nftables where kube-proxy uses iptables and
/// ipsets). Each sync, in this order:
///
/// 1. on a full sync, the sysctls IPVS mode needs (`IPVSSysctl.required`), written only where they differ;
/// 2. the nftables table `ip keel-ipvs` (`IPVSRuleset`) in one batch — and, on a full sync, the
///    deletion of the nftables plane's table if a previous run left it (both would act on one packet);
/// 3. the dummy interface `keel-ipvs0` gains the new service addresses;
/// 4. the IPVS services and destinations (`ipvsOperations`), through the injected `IPVSTable`;
/// 5. the dummy interface loses the addresses no service uses any more.
///
/// The first sync, and the first after any failure, reads the kernel (dummy addresses, the table,
/// Keel's IPVS services and their destinations) and diffs against it, so a restart over an intact
/// kernel state sends nothing. Later syncs diff against what this data plane applied: the whole
/// state when the caller cannot say what changed (or the node-port addresses or the cluster CIDR
/// did), otherwise only the changed service ports (`IPVSPortLedger`), plus the services that have
/// a destination draining, so that a one-endpoint change costs one service's work, not 10 000.
public final class IPVSServiceDataplane: ServiceDataplane, @unchecked Sendable {
    let ipvs: any IPVSTable
    let node: any IPVSNodeDevices
    let scheduler: IPVSScheduler
    let nodePortRange: ClosedRange<UInt16>
    let sysctls: [IPVSSysctl]
    let staleTables: [Table]
    let drainTimeout: Duration
    let now: @Sendable () -> ContinuousClock.Instant
    let logger: Logger
    let onSync: @Sendable (IPVSSyncReport) -> Void

    /// What the kernel holds, as far as this data plane knows.
    private struct Applied {
        var ipvs: [IPVSServiceKey: IPVSVirtualService]
        var ruleset: Ruleset
        var dummy: Set<IPAddress>
        var nodePortAddresses: Set<IPAddress>
        var clusterCIDR: CIDR?
        /// Per service port: what an incremental sync compares with and updates.
        var ledger: IPVSPortLedger
    }
    private struct State {
        var applied: Applied?
        /// Leaving TCP destinations held at weight 0, and since when.
        var draining: [IPVSDestinationID: ContinuousClock.Instant] = [:]
        var conflicts: [IPVSKeyConflict] = []
        var last: IPVSSyncReport?
        var lastOperations: [IPVSOperation] = []
    }
    private let state = Mutex(State())

    /// - Parameters:
    ///   - ipvs: the kernel's IPVS table (`IPVSSocket`), or a fake in tests.
    ///   - node: the dummy interface, sysctls and nftables of the same namespace.
    ///   - nodePortRange: which ports on node-port addresses Keel owns (`IPVSOwnership`).
    ///   - staleTables: tables of the other data plane that a full sync deletes when present.
    ///   - drainTimeout: how long a leaving TCP destination stays at weight 0 at most.
    public init(ipvs: any IPVSTable, node: any IPVSNodeDevices, scheduler: IPVSScheduler = .roundRobin,
                nodePortRange: ClosedRange<UInt16> = IPVSOwnership.defaultNodePortRange,
                sysctls: [IPVSSysctl] = IPVSSysctl.required(kernelRelease: IPVSSysctl.currentKernelRelease()),
                staleTables: [Table] = [ServiceRuleset.table], drainTimeout: Duration = .seconds(900),
                now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now },
                logger: Logger, onSync: @escaping @Sendable (IPVSSyncReport) -> Void = { _ in }) {
        self.ipvs = ipvs
        self.node = node
        self.scheduler = scheduler
        self.nodePortRange = nodePortRange
        self.sysctls = sysctls
        self.staleTables = staleTables
        self.drainTimeout = drainTimeout
        self.now = now
        self.logger = logger
        self.onSync = onSync
    }

    /// The report of the last successful sync.
    public var lastReport: IPVSSyncReport? { state.withLock { $0.last } }
    /// The IPVS operations the last successful sync sent (empty when nothing changed).
    public var lastOperations: [IPVSOperation] { state.withLock { $0.lastOperations } }

    public func apply(_ proxy: ProxyState) throws { try apply(proxy, changed: nil) }

    public func apply(_ proxy: ProxyState, changed: Set<ServicePortName>?) throws {
        let report = try state.withLock { (s: inout State) throws -> IPVSSyncReport in
            // Taken out of the lock's storage, so that updating it in place copies nothing; nil until
            // this sync succeeds: a failure part-way means "read the kernel next time".
            var known = s.applied
            s.applied = nil
            if let changed, var k = known, k.clusterCIDR == proxy.clusterCIDR,
               k.nodePortAddresses == Set(proxy.nodePortAddresses.filter(\.isIPv4)) {
                known = nil
                let report = try syncIncrementally(&k, proxy, changed: changed, &s)
                s.applied = k
                return report
            }
            return try syncFully(known, proxy, &s)
        }
        // Logged on every sync, "nothing changed" included: it is how an operator (and the VM test)
        // sees that a restart or a one-endpoint change touched only what it should.
        let operations = lastOperations
        var metadata: Logger.Metadata = [
            "sync": "\(report.fullSync ? "full" : "incremental")", "ipvs.changes": "\(report.ipvs)",
            "nft.operations": "\(report.nftOperations)", "addresses.added": "\(report.addressesAdded)",
            "addresses.removed": "\(report.addressesRemoved)", "draining": "\(report.draining)",
        ]
        if !operations.isEmpty, operations.count <= 10 {
            metadata["ipvs.operations"] = "\(operations.map(\.description).joined(separator: "; "))"
        }
        logger.debug("IPVS synced", metadata: metadata)
        onSync(report)
    }

    /// The whole state, diffed against the kernel (`known` nil) or against what was applied.
    private func syncFully(_ known: Applied?, _ proxy: ProxyState, _ s: inout State) throws -> IPVSSyncReport {
        // The per-port account first: the whole desired state and table are read off it, and the
        // next incremental sync starts from it.
        let ledger = IPVSPortLedger(proxy, scheduler: scheduler)
        let desired = IPVSDesiredState(ledger)
        let ruleset = IPVSRuleset.ruleset(clusterCIDR: proxy.clusterCIDR, nodePortAddresses: proxy.nodePortAddresses,
                                          serviceElements: ledger.elements)
        var report = IPVSSyncReport()
        report.fullSync = known == nil
        report.conflicts = desired.conflicts.count
        if Set(desired.conflicts) != Set(s.conflicts) {
            for c in desired.conflicts { logger.info("IPVS service conflict", metadata: ["conflict": "\(c)"]) }
            s.conflicts = desired.conflicts
        }

        if known == nil {
            for sysctl in sysctls where (try? node.readSysctl(sysctl.name)) != sysctl.value {   // unreadable: write it, which reports
                try node.writeSysctl(sysctl.name, sysctl.value)
                report.sysctlsWritten += 1
            }
        }

        var tx = transaction(from: try known.map { $0.ruleset } ?? node.nftTable(IPVSRuleset.table), to: ruleset)
        if known == nil {
            for table in staleTables where try node.nftTable(table) != nil { tx.delete(table) }
        }
        if !tx.isEmpty {
            logger.trace("nftables transaction", metadata: ["transaction": "\(tx)"])
            try node.apply(tx)
        }
        report.nftOperations = tx.operations.count

        let wantedAddresses = Set(desired.dummyAddresses)
        let dummyBefore: Set<IPAddress>
        if let known { dummyBefore = known.dummy } else { dummyBefore = try node.dummyAddresses() ?? [] }
        let adding = wantedAddresses.subtracting(dummyBefore).sorted()
        let removing = dummyBefore.subtracting(wantedAddresses).sorted()
        if known == nil || !adding.isEmpty {
            try node.updateDummy(adding: adding, removing: [])   // a full sync also makes sure the link exists
        }
        report.addressesAdded = adding.count

        let ownership = IPVSOwnership(addresses: dummyBefore.union(wantedAddresses),
                                      nodePortAddresses: Set(desired.nodePortAddresses).union(known?.nodePortAddresses ?? []),
                                      nodePortRange: nodePortRange, keys: Set(known.map { Array($0.ipvs.keys) } ?? []))
        let current = try known?.ipvs ?? readKernelServices(ownership)
        let removable = removableDestinations(current: current, desired: desired.services, draining: s.draining)
        let operations = ipvsOperations(from: current, to: desired.services, ownership: ownership, removable: removable)
        if !operations.isEmpty {
            logger.trace("IPVS operations", metadata: ["operations": "\(operations.map(\.description))"])
            try ipvs.apply(operations)
        }
        report.ipvs = IPVSChangeCounts(operations)
        let after = current.applying(operations)

        if !removing.isEmpty { try node.updateDummy(adding: [], removing: removing) }
        report.addressesRemoved = removing.count

        s.draining = draining(after: after, desired: desired.services, keys: Set(desired.services.keys), before: s.draining)
            .filter { desired.services[$0.key.service] != nil }
        report.draining = s.draining.count
        s.applied = Applied(ipvs: after.filter { desired.services[$0.key] != nil }, ruleset: ruleset, dummy: wantedAddresses,
                            nodePortAddresses: Set(desired.nodePortAddresses), clusterCIDR: proxy.clusterCIDR,
                            ledger: ledger)
        s.last = report
        s.lastOperations = operations
        return report
    }

    /// Only the service ports in `changed` whose state differs from the applied one, and the services
    /// with a draining destination; `k` is updated in place as the kernel is.
    private func syncIncrementally(_ k: inout Applied, _ proxy: ProxyState, changed: Set<ServicePortName>, _ s: inout State) throws -> IPVSSyncReport {
        var report = IPVSSyncReport()
        let updates = changed.sorted().compactMap { name -> (ServicePortName, ServicePortState?)? in
            let new = proxy.service(named: name)
            return k.ledger.ports[name]?.state == new ? nil : (name, new)
        }
        let change = k.ledger.replace(updates)
        if !change.keys.isEmpty {
            let conflicts = k.ledger.conflicts
            if Set(conflicts) != Set(s.conflicts) {
                for c in Set(conflicts).subtracting(s.conflicts).sorted(by: { $0.description < $1.description }) {
                    logger.info("IPVS service conflict", metadata: ["conflict": "\(c)"])
                }
                s.conflicts = conflicts
            }
        }
        report.conflicts = s.conflicts.count

        // 1. The set elements that came into or went out of use, deletions first (a verdict map's
        //    key whose verdict changed is a delete and an add).
        var tx = Transaction()
        for set in IPVSRuleset.sets {
            if let gone = change.elementsRemoved[set.name], !gone.isEmpty {
                tx.delete(elements: gone.sorted { $0.description < $1.description }, from: set)
            }
            if let come = change.elementsAdded[set.name], !come.isEmpty {
                tx.add(elements: come.sorted { $0.description < $1.description }, to: set)
            }
        }
        if !tx.isEmpty {
            logger.trace("nftables transaction", metadata: ["transaction": "\(tx)"])
            try node.apply(tx)
            for i in k.ruleset.sets.indices {
                let name = k.ruleset.sets[i].name
                if let gone = change.elementsRemoved[name] { k.ruleset.sets[i].elements.subtract(gone) }
                if let come = change.elementsAdded[name] { k.ruleset.sets[i].elements.formUnion(come) }
            }
        }
        report.nftOperations = tx.operations.count

        // 2. New addresses before their services.
        let adding = change.addressesAdded.subtracting(k.dummy).sorted()
        if !adding.isEmpty { try node.updateDummy(adding: adding, removing: []) }
        k.dummy.formUnion(adding)
        report.addressesAdded = adding.count

        // 3. The IPVS services of the changed ports and of the draining destinations.
        let keys = change.keys.union(s.draining.keys.map(\.service))
        var current: [IPVSServiceKey: IPVSVirtualService] = [:], desired: [IPVSServiceKey: IPVSVirtualService] = [:]
        for key in keys {
            current[key] = k.ipvs[key]
            desired[key] = k.ledger.desired(key)
        }
        // Everything in `current` was applied by this data plane: Keel's to change or delete.
        let ownership = IPVSOwnership(addresses: [], nodePortAddresses: [], nodePortRange: nodePortRange, keys: Set(current.keys))
        let removable = removableDestinations(current: current, desired: desired, draining: s.draining)
        let operations = ipvsOperations(from: current, to: desired, ownership: ownership, removable: removable)
        if !operations.isEmpty {
            logger.trace("IPVS operations", metadata: ["operations": "\(operations.map(\.description))"])
            try ipvs.apply(operations)
        }
        report.ipvs = IPVSChangeCounts(operations)
        let after = current.applying(operations)
        for key in keys { k.ipvs[key] = desired[key] == nil ? nil : after[key] }

        // 4. Addresses no port uses any more, after their services.
        let removing = change.addressesRemoved.intersection(k.dummy).sorted()
        if !removing.isEmpty { try node.updateDummy(adding: [], removing: removing) }
        k.dummy.subtract(removing)
        report.addressesRemoved = removing.count

        s.draining = draining(after: after, desired: desired, keys: keys, before: s.draining)
        report.draining = s.draining.count
        s.last = report
        s.lastOperations = operations
        return report
    }

    /// The leaving TCP destinations still in `after` (services among `keys`), with since when they
    /// drain; entries of other services are kept as they are.
    private func draining(after: [IPVSServiceKey: IPVSVirtualService], desired: [IPVSServiceKey: IPVSVirtualService], keys: Set<IPVSServiceKey>,
                          before: [IPVSDestinationID: ContinuousClock.Instant]) -> [IPVSDestinationID: ContinuousClock.Instant] {
        var draining = before.filter { !keys.contains($0.key.service) }
        let instant = now()
        for (key, want) in desired where key.proto == .tcp && keys.contains(key) {
            guard let have = after[key] else { continue }
            let wanted = Set(want.destinations.map { Backend($0.address, $0.port) })
            for d in have.destinations where !wanted.contains(Backend(d.address, d.port)) {
                let id = IPVSDestinationID(key, d)
                draining[id] = before[id] ?? instant
            }
        }
        return draining
    }

    /// Keel's services in the kernel, with their destinations. Services `ownership` does not cover
    /// are not even read further: they are someone else's.
    private func readKernelServices(_ ownership: IPVSOwnership) throws -> [IPVSServiceKey: IPVSVirtualService] {
        var table: [IPVSServiceKey: IPVSVirtualService] = [:]
        for service in try ipvs.services() where ownership.owns(service.key) {
            table[service.key] = IPVSVirtualService(service: service, destinations: try ipvs.destinations(of: service.key))
        }
        return table
    }

    /// The leaving TCP destinations that may go now: idle by the kernel's counters (when the table
    /// reports them), or draining for `drainTimeout` already. A destination first seen leaving
    /// (weight 1 still) with no connections goes at once, as in kube-proxy.
    private func removableDestinations(current: [IPVSServiceKey: IPVSVirtualService], desired: [IPVSServiceKey: IPVSVirtualService],
                                       draining: [IPVSDestinationID: ContinuousClock.Instant]) -> Set<IPVSDestinationID> {
        let instant = now()
        let counting = ipvs as? any IPVSConnectionCounting
        var removable = Set<IPVSDestinationID>()
        for (key, want) in desired where key.proto == .tcp {
            guard let have = current[key] else { continue }
            let wanted = Set(want.destinations.map { Backend($0.address, $0.port) })
            let leaving = have.destinations.filter { !wanted.contains(Backend($0.address, $0.port)) }
            guard !leaving.isEmpty else { continue }
            var counters: [Backend: IPVSDestinationStatistics]?
            if let counting {
                do { counters = try counting.statistics(of: key) } catch {
                    // Harmless: without counters the destination waits for the drain timeout instead.
                    logger.debug("IPVS counters unreadable", metadata: ["service": "\(key)", "error": "\(error)"])
                }
            }
            for d in leaving {
                let id = IPVSDestinationID(key, d)
                if let since = draining[id], instant - since >= drainTimeout {
                    removable.insert(id)
                } else if let c = counters?[Backend(d.address, d.port)], c.activeConnections == 0, c.inactiveConnections == 0 {
                    removable.insert(id)
                }
            }
        }
        return removable
    }
}
