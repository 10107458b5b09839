import Logging
import NFTables
import NetAddress
import Netlink
import Synchronization

/// The nftables data plane: renders `ProxyState` with `ServiceRuleset`, applies the difference to
/// what it applied last (or, after a start or a failure, to what the kernel holds) in one
/// transaction, then clears the conntrack entries that would keep UDP flows on removed backends.
public final class NFTablesServiceDataplane: ServiceDataplane, @unchecked Sendable {
    let nft: NFTablesSocket
    let conntrack: ConntrackSocket?
    let logger: Logger
    private struct Applied {
        var ruleset: Ruleset?
        var state: ProxyState?
        var lastTransaction: Transaction?
    }
    private let applied = Mutex(Applied())

    public init(nft: NFTablesSocket, conntrack: ConntrackSocket?, logger: Logger) {
        self.nft = nft
        self.conntrack = conntrack
        self.logger = logger
    }

    /// The transaction the last `apply` sent (empty when nothing changed), for tests and logs.
    public var lastTransaction: Transaction? { applied.withLock { $0.lastTransaction } }

    public func apply(_ state: ProxyState) throws {
        try applied.withLock { (a: inout Applied) throws in
            let desired = ServiceRuleset.ruleset(state)
            // After a restart or a failed sync we do not know what the kernel holds: read it, so the
            // first transaction is a diff too (no flush, no moment without rules, no duplicates).
            let base = try a.ruleset ?? kernelRuleset()
            let tx = transaction(from: base, to: desired)
            a.lastTransaction = tx
            if !tx.isEmpty {
                logger.trace("nftables transaction", metadata: ["transaction": "\(tx)"])
                do {
                    try nft.apply(tx)
                } catch {
                    a.ruleset = nil
                    throw error
                }
            }
            a.ruleset = desired
            let previous = a.state
            a.state = state
            flushAffinity(previous: previous, current: state)
            clearConntrack(previous: previous, current: state)
        }
    }

    /// The table as the kernel has it, without the affinity map's dynamic entries (they are the
    /// packet path's, never part of the desired state).
    func kernelRuleset() throws -> Ruleset? {
        guard var current = try nft.table(named: ServiceRuleset.table.name, family: ServiceRuleset.table.family) else { return nil }
        if let i = current.sets.firstIndex(where: { $0.name == "affinity" }) { current.sets[i].elements = [] }
        return current
    }

    /// A service whose backends changed forgets its clients' affinity (the remembered index may now
    /// name another backend). Best effort: entries that expire meanwhile are simply gone.
    func flushAffinity(previous: ProxyState?, current: ProxyState) {
        guard let previous else { return }
        let before = Dictionary(previous.services.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let changed = current.services.filter { s in
            guard s.affinityTimeout != nil, let old = before[s.name] else { return false }
            return old.internalBackends != s.internalBackends || old.externalBackends != s.externalBackends
        }
        guard !changed.isEmpty else { return }
        let ids = ServiceRuleset.selectionIDs(current.services.map(\.name))
        let stale = Set(changed.flatMap { [ids[$0.name]!, ids[$0.name]! + 1] })
        let map = NFTSet(ServiceRuleset.table, "affinity", key: [.mark, .ipv4Address], mapping: .data([.mark]),
                         flags: [.dynamic, .timeout], maxElements: 65535)
        do {
            let entries = try nft.elements(of: map).filter { e in e.key.first.map { stale.contains(markValue($0)) } ?? false }
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
    func clearConntrack(previous: ProxyState?, current: ProxyState) {
        guard let conntrack, let previous else { return }
        let before = Dictionary(previous.services.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for s in current.services where s.name.proto == .udp {
            let now = Set(s.internalBackends + s.externalBackends)
            // A service that is new since the last sync had no endpoints before it either: a client
            // that sent to its address before it existed holds an entry that was never DNATed and
            // keeps its flow away from the new backends (kube-proxy counts it as newly active too).
            // Skipping new services left such a flow black-holed for as long as it kept sending.
            let was = before[s.name].map { Set($0.internalBackends + $0.externalBackends) } ?? []
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
        // Services that disappeared entirely take their backends' UDP flows with them.
        let remaining = Set(current.services.map(\.name))
        for old in previous.services where old.name.proto == .udp && !remaining.contains(old.name) {
            for gone in Set(old.internalBackends + old.externalBackends) {
                _ = try? conntrack.deleteEntries(ofRemovedEndpoint: gone.address, port: gone.port, proto: .udp)  // logged above when it matters
            }
        }
    }
}

private func markValue(_ v: DataValue) -> UInt32 {
    guard v.bytes.count == 4 else { return 0 }
    return v.bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
}
