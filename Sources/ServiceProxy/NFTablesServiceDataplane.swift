import Logging
import NFTables
import NetAddress
import Netlink
import Synchronization

/// The nftables data plane: applies `ProxyState` to the table `ip keel-proxy` in one transaction
/// per sync, then clears the conntrack entries that would keep UDP flows on removed backends.
///
/// The first sync (and any after a failure) renders the whole table and diffs it against what the
/// kernel holds — no flush, no moment without rules, no duplicates after a restart. Later syncs are
/// incremental: only the services whose state changed are rendered (`ServiceRuleset.contribution`),
/// and their old and new elements, plus the shared selector chains and hairpin pairs whose use
/// count crosses zero, make the transaction. Its cost follows what changed, not the table's size.
public final class NFTablesServiceDataplane: ServiceDataplane, @unchecked Sendable {
    let nft: NFTablesSocket
    let conntrack: ConntrackSocket?
    let logger: Logger

    /// What the kernel holds, as far as this data plane knows. (Not the `ProxyState` itself: the
    /// controller edits its services array in place between passes, which a second owner would
    /// turn into a copy of every service.)
    private struct Applied {
        var nodePortAddresses: [IPAddress]
        var clusterCIDR: CIDR?
        var serviceCIDRs: [CIDR]
        var services: [ServicePortName: ServicePortState]
        var contributions: [ServicePortName: ServiceRuleset.Contribution]
        var selectorUse: [ServiceRuleset.Selector: Int]
        var sharedUse: [String: [SetElement: Int]]
    }
    private let applied = Mutex<(known: Applied?, last: Transaction?)>((nil, nil))

    /// A service port whose state changed: before (nil: new) and after (nil: gone).
    typealias Transition = (old: ServicePortState?, new: ServicePortState?)

    public init(nft: NFTablesSocket, conntrack: ConntrackSocket?, logger: Logger) {
        self.nft = nft
        self.conntrack = conntrack
        self.logger = logger
    }

    /// The transaction the last `apply` sent (empty when nothing changed), for tests and logs.
    public var lastTransaction: Transaction? { applied.withLock { $0.last } }

    public func apply(_ state: ProxyState) throws { try apply(state, changed: nil) }

    public func apply(_ state: ProxyState, changed: Set<ServicePortName>?) throws {
        try applied.withLock { (a: inout (known: Applied?, last: Transaction?)) throws in
            // Taken out of the lock's storage so that updating it in place does not copy 10K entries.
            var known = a.known
            a.known = nil
            let tx: Transaction
            // Empty without a previous state (a start, or after a failure): nothing to compare with.
            var transitions: [Transition] = []
            var orphanedAffinity = false
            if var k = known, k.clusterCIDR == state.clusterCIDR, k.nodePortAddresses == state.nodePortAddresses,
               k.serviceCIDRs == state.serviceCIDRs {
                known = nil
                (tx, transitions) = incremental(&k, to: state, changed: changed)
                known = k
            } else {
                // A start, a failure, or a change of node-wide inputs: the whole table, diffed
                // against the kernel's.
                let previous = known?.services
                let k = Self.bookkeeping(state)
                let desired = ServiceRuleset.ruleset(state, contributions: state.services.compactMap { k.contributions[$0.name] })
                tx = transaction(from: try kernelRuleset(), to: desired)
                if let previous {
                    transitions = Set(previous.keys).union(k.services.keys).compactMap { name in
                        previous[name] == k.services[name] ? nil : (previous[name], k.services[name])
                    }
                } else {
                    // A start: the affinity map may hold entries of services changed while no agent ran.
                    orphanedAffinity = true
                }
                known = k
            }
            a.last = tx
            if !tx.isEmpty {
                logger.trace("nftables transaction", metadata: ["transaction": "\(tx)"])
                do { try nft.apply(tx) } catch {
                    a.known = nil
                    throw error
                }
            }
            a.known = known
            flushAffinity(transitions, nodePortAddresses: state.nodePortAddresses, orphansOf: orphanedAffinity ? state : nil)
            clearConntrack(transitions)
        }
    }

    /// Contributions and use counts of `state`.
    private static func bookkeeping(_ state: ProxyState) -> Applied {
        var a = Applied(nodePortAddresses: state.nodePortAddresses, clusterCIDR: state.clusterCIDR, serviceCIDRs: state.serviceCIDRs,
                        services: [:], contributions: [:],
                        selectorUse: [:], sharedUse: [:])
        for svc in state.services {
            let c = ServiceRuleset.contribution(svc)
            a.services[svc.name] = svc
            a.contributions[svc.name] = c
            for sel in c.selectors { a.selectorUse[sel, default: 0] += 1 }
            for (set, list) in c.shared { for e in Set(list) { a.sharedUse[set, default: [:]][e, default: 0] += 1 } }
        }
        return a
    }

    /// The transaction for the services that changed between `known` and `state` (among `changed`,
    /// when given), the bookkeeping after it (updated for those services only), and their transitions.
    private func incremental(_ known: inout Applied, to state: ProxyState, changed: Set<ServicePortName>?) -> (Transaction, [Transition]) {
        let table = ServiceRuleset.table
        let sets = Dictionary(uniqueKeysWithValues: ServiceRuleset.sets.map { ($0.name, $0) })
        var current: [ServicePortName: ServicePortState] = [:]
        let names: Set<ServicePortName>
        if let changed {
            for name in changed { current[name] = state.service(named: name) }
            names = changed.filter { known.services[$0] != current[$0] }
        } else {
            for svc in state.services { current[svc.name] = svc }
            names = Set(known.services.keys).union(current.keys).filter { known.services[$0] != current[$0] }
        }
        let before = known.selectorUse
        guard !names.isEmpty else { return (Transaction(), []) }
        let transitions = names.map { (known.services[$0], current[$0]) }

        var selectorUse = known.selectorUse
        var sharedUse = known.sharedUse
        known.sharedUse = [:]   // sole owner now: updated in place, not copied
        var remove: [String: Set<SetElement>] = [:], insert: [String: Set<SetElement>] = [:]
        for name in names {
            let old = known.contributions[name] ?? ServiceRuleset.Contribution()
            let new = current[name].map(ServiceRuleset.contribution) ?? ServiceRuleset.Contribution()
            known.services[name] = current[name]
            known.contributions[name] = current[name] == nil ? nil : new
            for (set, list) in old.elements { remove[set, default: []].formUnion(list) }
            for (set, list) in new.elements { insert[set, default: []].formUnion(list) }
            for sel in old.selectors { selectorUse[sel, default: 0] -= 1 }
            for sel in new.selectors { selectorUse[sel, default: 0] += 1 }
            for (set, list) in old.shared {
                for e in Set(list) {
                    sharedUse[set, default: [:]][e, default: 0] -= 1
                    if sharedUse[set]![e]! == 0 {
                        sharedUse[set]![e] = nil
                        remove[set, default: []].insert(e)
                    }
                }
            }
            for (set, list) in new.shared {
                for e in Set(list) {
                    if sharedUse[set, default: [:]][e, default: 0] == 0 { insert[set, default: []].insert(e) }
                    sharedUse[set, default: [:]][e, default: 0] += 1
                }
            }
        }
        var tx = Transaction()
        // Selector chains that come into use exist before the elements that jump to them.
        let added = selectorUse.filter { $0.value > 0 && (before[$0.key] ?? 0) == 0 }.keys.sorted()
        let dropped = before.filter { $0.value > 0 && (selectorUse[$0.key] ?? 0) == 0 }.keys.sorted()
        for sel in added {
            let (chain, rules) = ServiceRuleset.selectorChain(sel, clusterCIDR: state.clusterCIDR)
            tx.add(chain)
            for r in rules { tx.add(r) }
        }
        // An element whose value is unchanged stays; a changed one is a delete plus an add.
        for set in Set(remove.keys).union(insert.keys).sorted() {
            let gone = remove[set, default: []].subtracting(insert[set, default: []])
            let come = insert[set, default: []].subtracting(remove[set, default: []])
            guard let definition = sets[set] else { continue }
            if !gone.isEmpty { tx.delete(elements: gone.sorted { $0.description < $1.description }, from: definition) }
            if !come.isEmpty { tx.add(elements: come.sorted { $0.description < $1.description }, to: definition) }
        }
        // Chains no element jumps to any more go last.
        for sel in dropped {
            tx.flush(chain: sel.chain, in: table)
            tx.delete(chain: sel.chain, in: table)
        }
        known.selectorUse = selectorUse.filter { $0.value > 0 }
        known.sharedUse = sharedUse
        return (tx, transitions)
    }

    /// The table as the kernel has it, without the affinity map's dynamic entries (they are the
    /// packet path's, never part of the desired state).
    func kernelRuleset() throws -> Ruleset? {
        guard var current = try nft.table(named: ServiceRuleset.table.name, family: ServiceRuleset.table.family) else { return nil }
        if let i = current.sets.firstIndex(where: { $0.name == "affinity" }) { current.sets[i].elements = [] }
        return current
    }

    /// The affinity map's keys are client . destination . protocol . port; these are a service
    /// port's destination . protocol . port (its addresses, and its node port on every node address).
    static func affinityDestinations(_ s: ServicePortState, nodePortAddresses: [IPAddress]) -> Set<[DataValue]> {
        let proto = DataValue.proto(IPProtocol(rawValue: s.name.proto.number))
        var keys = Set<[DataValue]>()
        for ip in s.clusterIPs + s.externalIPs + s.loadBalancerIPs where ip.isIPv4 { keys.insert([.ip(ip), proto, .port(s.port)]) }
        if let np = s.nodePort { for ip in nodePortAddresses where ip.isIPv4 { keys.insert([.ip(ip), proto, .port(np)]) } }
        return keys
    }

    /// The affinity entries (the packet path's, in the shared `affinity` map) that no longer hold:
    /// those of a service port whose backends changed (the remembered one may be gone), whose
    /// affinity was turned off or got another timeout (entries would linger up to the old timeout
    /// and be used again if affinity came back), or that went away; only that port's destinations.
    /// With `orphansOf` (a start), also every entry whose destination no affinity service of that
    /// state has. Best effort: entries that expire meanwhile are simply gone.
    func flushAffinity(_ transitions: [Transition], nodePortAddresses: [IPAddress], orphansOf state: ProxyState? = nil) {
        var stale = Set<[DataValue]>()
        for case let (old?, new) in transitions where old.affinityTimeout != nil {
            var kept = Set<[DataValue]>()
            if let new, new.affinityTimeout == old.affinityTimeout, new.internalBackends == old.internalBackends,
               new.externalBackends == old.externalBackends, new.clusterBackends == old.clusterBackends {
                kept = Self.affinityDestinations(new, nodePortAddresses: nodePortAddresses)
            }
            stale.formUnion(Self.affinityDestinations(old, nodePortAddresses: nodePortAddresses).subtracting(kept))
        }
        var live: Set<[DataValue]>?
        if let state {
            live = state.services.filter { $0.affinityTimeout != nil }
                .reduce(into: Set<[DataValue]>()) { $0.formUnion(Self.affinityDestinations($1, nodePortAddresses: state.nodePortAddresses)) }
        }
        guard !stale.isEmpty || live != nil, let map = ServiceRuleset.sets.first(where: { $0.name == "affinity" }) else { return }
        do {
            let entries = try nft.elements(of: map).filter { e in
                let destination = Array(e.key.dropFirst())
                return stale.contains(destination) || live.map { !$0.contains(destination) } == true
            }
            guard !entries.isEmpty else { return }
            var tx = Transaction()
            tx.delete(elements: entries.map { SetElement($0.key, value: $0.value) }, from: map)
            try nft.apply(tx)
        } catch {
            logger.debug("affinity entries not flushed", metadata: ["error": "\(error)"])
        }
    }

    /// UDP has no close: conntrack keeps steering a client's flow to a backend that is gone, or away
    /// from a service that was rejecting until it got backends. kube-proxy clears both; so do we.
    /// A service port's backends are those of every path, the short-circuit's (every backend of the
    /// cluster, for pods reaching an externalTrafficPolicy Local service) included.
    func clearConntrack(_ transitions: [Transition]) {
        guard let conntrack else { return }
        for (old, new) in transitions {
            guard let s = new else {
                // A service that disappeared entirely takes its backends' UDP flows with it.
                guard let old, old.name.proto == .udp else { continue }
                for gone in Set(old.internalBackends + old.externalBackends + old.clusterBackends) {
                    _ = try? conntrack.deleteEntries(ofRemovedEndpoint: gone.address, port: gone.port, proto: .udp)  // logged below when it matters
                }
                continue
            }
            guard s.name.proto == .udp else { continue }
            let now = Set(s.internalBackends + s.externalBackends + s.clusterBackends)
            // A service that is new since the last sync had no endpoints before it either: a client
            // that sent to its address before it existed holds an entry that was never DNATed and
            // keeps its flow away from the new backends (kube-proxy counts it as newly active too).
            // Skipping new services left such a flow black-holed for as long as it kept sending.
            let was = old.map { Set($0.internalBackends + $0.externalBackends + $0.clusterBackends) } ?? []
            do {
                for gone in was.subtracting(now) {
                    try conntrack.deleteEntries(ofRemovedEndpoint: gone.address, port: gone.port, proto: .udp)
                }
                if was.isEmpty && !now.isEmpty {
                    for vip in s.clusterIPs + s.externalIPs + s.loadBalancerIPs {
                        try conntrack.deleteEntries(ofServiceGainingEndpoints: vip, port: s.port, proto: .udp)
                    }
                }
            } catch {
                logger.warning("stale UDP conntrack entries not cleared", metadata: ["service": "\(s.name)", "error": "\(error)"])
            }
        }
    }
}
