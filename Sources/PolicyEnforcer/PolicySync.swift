import Cluster
import Logging
import NFTables
import Synchronization

/// Applies the policy ruleset as a diff in one transaction: against what it applied last, or after
/// a start or a failure against what the kernel holds. Fail closed: the old rules stay in the kernel
/// until the new ones replace them atomically, so an isolated pod is never open in between.
public final class PolicySync: @unchecked Sendable {
    let nft: NFTablesSocket
    let logger: Logger
    private let applied = Mutex<(ruleset: Ruleset?, last: Transaction?)>((nil, nil))

    public init(nft: NFTablesSocket, logger: Logger) {
        self.nft = nft
        self.logger = logger
    }

    /// The last transaction sent (empty when nothing changed).
    public var lastTransaction: Transaction? { applied.withLock { $0.last } }

    public func apply(_ pods: [CompiledPod]) throws {
        try applied.withLock { (a: inout (ruleset: Ruleset?, last: Transaction?)) throws in
            let desired = PolicyRuleset.ruleset(pods)
            let base = try a.ruleset ?? nft.table(named: PolicyRuleset.table.name, family: PolicyRuleset.table.family)
            let tx = transaction(from: base, to: desired)
            a.last = tx
            guard !tx.isEmpty else { a.ruleset = desired; return }
            logger.trace("nftables transaction", metadata: ["transaction": "\(tx)"])
            do { try nft.apply(tx) } catch {
                a.ruleset = nil
                throw error
            }
            a.ruleset = desired
        }
    }
}

/// Keeps the policy table equal to the NetworkPolicies, Pods and Namespaces in the store, for the
/// pods of this node. Programs nothing before all three kinds were listed once.
public final class PolicyController: @unchecked Sendable {
    let store: ClusterStore
    let sync: PolicySync
    let nodeName: String
    let logger: Logger
    let compile: @Sendable (ClusterSnapshot, String) -> [CompiledPod]
    /// Held for a whole pass: the store version of the last successful sync.
    private let synced = Mutex<UInt64?>(nil)

    public init(store: ClusterStore, sync: PolicySync, nodeName: String, logger: Logger,
                compile: @escaping @Sendable (ClusterSnapshot, String) -> [CompiledPod]) {
        self.store = store
        self.sync = sync
        self.nodeName = nodeName
        self.logger = logger
        self.compile = compile
    }

    public static let kinds: Set<ObjectKind> = [.pod, .namespace, .networkPolicy]

    @discardableResult
    public func syncOnce() -> Bool {
        synced.withLock { synced in
            let snapshot = store.snapshot()
            guard Self.kinds.allSatisfy(snapshot.hasListed) else { return false }
            // The rules depend on these kinds only: after changes to others (a wake-up already
            // served, a resync with nothing new) the last sync stands.
            if let version = synced, let keys = snapshot.changedKeys(since: version), !keys.contains(where: { Self.kinds.contains($0.kind) }) {
                return true
            }
            do {
                let pods = compile(snapshot, nodeName)
                try sync.apply(pods)
                synced = snapshot.version
                logger.debug("policy rules synced", metadata: [
                    "pods.isolated": "\(pods.count)", "operations": "\(sync.lastTransaction?.operations.count ?? 0)"])
                return true
            } catch {
                logger.error("policy sync failed; the previous rules stay in force", metadata: ["error": "\(error)"])
                synced = nil
                return false
            }
        }
    }

    /// Syncs after changes of the three kinds (at once when idle, bursts coalesced) and every
    /// `resync`, until cancelled.
    public func run(resync: Duration = .seconds(30), minInterval: Duration = .milliseconds(50)) async {
        await store.runCoalesced(on: Self.kinds, resync: resync, minInterval: minInterval) { [self] in syncOnce() }
    }
}
