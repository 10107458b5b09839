import Cluster
import Logging
import NFTables
import Synchronization

/// A policy whose rules the kernel refused: its pods allow nothing on the affected side until a
/// later sync programs it.
public struct UnprogrammablePolicy: Sendable, Hashable, CustomStringConvertible {
    public var policy: PolicyRef
    /// The kernel's refusal (operation, errno, its message).
    public var reason: String
    public var description: String { "\(policy.namespace ?? "")/\(policy.name): \(reason)" }
}

/// Applies the policy ruleset as a diff in one transaction: against what it applied last, or after
/// a start or a failure against what the kernel holds. Fail closed: the old rules stay in the kernel
/// until the new ones replace them atomically, so an isolated pod is never open in between.
///
/// A failure is contained. When the kernel refuses the transaction (and still refuses it against a
/// fresh read of the table), the sync finds the policies whose elements it refuses — from the
/// operation the kernel names, in a transaction with one element operation per rule, or else by
/// bisection over the policies — and applies everything else, with the pods those policies select
/// allowing nothing on the affected side. Every `apply` starts again from all policies: a refused
/// policy is retried at each sync. A refusal that no policy explains leaves the old rules in force
/// and throws.
public final class PolicySync: @unchecked Sendable {
    let nft: any NFTablesKernel
    let logger: Logger
    private let applied = Mutex<(ruleset: Ruleset?, last: Transaction?)>((nil, nil))

    public init(nft: any NFTablesKernel, logger: Logger) {
        self.nft = nft
        self.logger = logger
    }

    /// The last transaction sent (empty when nothing changed).
    public var lastTransaction: Transaction? { applied.withLock { $0.last } }

    /// Programs `pods`; returns the policies that could not be programmed (empty when all were).
    @discardableResult
    public func apply(_ pods: [CompiledPod]) throws -> [UnprogrammablePolicy] {
        try applied.withLock { (a: inout (ruleset: Ruleset?, last: Transaction?)) throws -> [UnprogrammablePolicy] in
            var base = try a.ruleset ?? nft.table(named: PolicyRuleset.table.name, family: PolicyRuleset.table.family)
            var excluded: [PolicyRef: String] = [:]
            var fresh = a.ruleset == nil   // base was just read from the kernel
            var desired = PolicyRuleset.ruleset(pods)
            while true {
                let tx = transaction(from: base, to: desired)
                do throws(NFTablesError) {
                    if !tx.isEmpty {
                        logger.trace("nftables transaction", metadata: ["transaction": "\(tx)"])
                        try nft.apply(tx)
                    }
                    a = (desired, tx)
                    return excluded.map { UnprogrammablePolicy(policy: $0.key, reason: $0.value) }.sorted { $0.description < $1.description }
                } catch {
                    a.ruleset = nil
                    // What we applied may not be what the kernel holds (a hand edit): diff against it once.
                    if !fresh {
                        base = try nft.table(named: PolicyRuleset.table.name, family: PolicyRuleset.table.family)
                        fresh = true
                        continue
                    }
                    let candidates = Set(pods.flatMap { ($0.ingress ?? []) + ($0.egress ?? []) }.compactMap(\.policy))
                        .subtracting(excluded.keys)
                    let blamed = blame(pods: pods, excluded: Set(excluded.keys), candidates: candidates, base: base)
                    guard !blamed.isEmpty else { throw error }
                    for policy in blamed { excluded[policy] = "\(error)" }
                    desired = PolicyRuleset.ruleset(pods.map { $0.failingClosed(excluding: Set(excluded.keys)) })
                }
            }
        }
    }

    /// The policies to leave out so that the kernel takes the rest. First the operation the kernel
    /// names in a transaction split per rule; if that names no single policy, bisection.
    private func blame(pods: [CompiledPod], excluded: Set<PolicyRef>, candidates: Set<PolicyRef>, base: Ruleset?) -> [PolicyRef] {
        guard !candidates.isEmpty else { return [] }
        func attempt(excluding more: Set<PolicyRef>) -> NFTablesError? {
            let desired = PolicyRuleset.ruleset(pods.map { $0.failingClosed(excluding: excluded.union(more)) })
            do throws(NFTablesError) {
                try nft.check(transaction(from: base, to: desired))
                return nil
            } catch {
                return error
            }
        }
        // The split transaction names the failing rule's elements.
        let desired = PolicyRuleset.ruleset(pods.map { $0.failingClosed(excluding: excluded) })
        let split = perRule(transaction(from: base, to: desired))
        var named: Set<PolicyRef> = []
        do throws(NFTablesError) { try nft.check(split) } catch {
            if let index = error.operationIndex, split.operations.indices.contains(index) {
                named = policies(of: split.operations[index], pods: pods).intersection(candidates)
            }
        }
        if named.count == 1 { return Array(named) }
        // Bisection: with `known` left out, find the policies of `group` that must go too.
        var budget = 4 * candidates.count + 8
        func culprits(_ group: [PolicyRef], known: Set<PolicyRef>) -> [PolicyRef] {
            budget -= 1
            guard budget > 0 else { return group }
            if attempt(excluding: known) == nil { return [] }
            if group.count == 1 { return group }
            let half = group.count / 2
            let (first, second) = (Array(group[..<half]), Array(group[half...]))
            let inSecond = culprits(second, known: known.union(first))
            return culprits(first, known: known.union(inSecond)) + inSecond
        }
        let all = (named.isEmpty ? candidates : named).sorted { "\($0)" < "\($1)" }
        // Nothing helps when even leaving every candidate out fails: not a policy's fault.
        guard attempt(excluding: Set(all)) == nil else { return [] }
        return culprits(all, known: [])
    }

    /// The policies whose rules own the elements of `op`.
    private func policies(of op: Transaction.Operation, pods: [CompiledPod]) -> Set<PolicyRef> {
        let elements: [SetElement]
        switch op {
        case .addElements(_, let e): elements = e
        case .addSet(let s): elements = Array(s.elements)
        default: return []
        }
        let ids = RuleIDs(pods)
        let marks = Set(elements.compactMap(\.key.first))
        var found: Set<PolicyRef> = []
        for pod in pods {
            for rule in (pod.ingress ?? []) + (pod.egress ?? []) where marks.contains(.mark(ids[rule])) {
                if let p = rule.policy { found.insert(p) }
            }
        }
        return found
    }

    /// `tx` with each element addition to the rule sets split into one operation per rule id, so
    /// that the operation the kernel blames names one rule.
    private func perRule(_ tx: Transaction) -> Transaction {
        var split = Transaction()
        for op in tx.operations {
            let set: NFTSet, elements: [SetElement]
            switch op {
            case .addElements(let s, let e) where s.name.hasSuffix("-rules"): (set, elements) = (s, e)
            case .addSet(let s) where s.name.hasSuffix("-rules") && !s.elements.isEmpty:
                var empty = s
                empty.elements = []
                split.append(.addSet(empty))
                (set, elements) = (s, Array(s.elements))
            default:
                split.append(op)
                continue
            }
            var byRule: [[UInt8]: [SetElement]] = [:]
            for e in elements { byRule[e.key.first?.bytes ?? [], default: []].append(e) }
            for key in byRule.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) { split.add(elements: byRule[key]!, to: set) }
        }
        return split
    }
}

/// What one policy sync did, for logs and metrics.
public struct PolicySyncReport: Sendable {
    public var succeeded: Bool
    public var isolatedPods: Int
    public var operations: Int
    /// Policies the kernel refused this time (their pods fail closed on the affected side).
    public var unprogrammable: [UnprogrammablePolicy]
}

/// Keeps the policy table equal to the NetworkPolicies, Pods and Namespaces in the store, for the
/// pods of this node. Programs nothing before all three kinds were listed once.
public final class PolicyController: @unchecked Sendable {
    let store: ClusterStore
    let sync: PolicySync
    let nodeName: String
    let logger: Logger
    let compile: @Sendable (ClusterSnapshot, String) -> [CompiledPod]
    let report: @Sendable (PolicySyncReport) -> Void
    /// Held for a whole pass: the store version of the last successful sync.
    private let synced = Mutex<UInt64?>(nil)

    public init(store: ClusterStore, sync: PolicySync, nodeName: String, logger: Logger,
                compile: @escaping @Sendable (ClusterSnapshot, String) -> [CompiledPod],
                report: @escaping @Sendable (PolicySyncReport) -> Void = { _ in }) {
        self.store = store
        self.sync = sync
        self.nodeName = nodeName
        self.logger = logger
        self.compile = compile
        self.report = report
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
            let pods = compile(snapshot, nodeName)
            do {
                let refused = try sync.apply(pods)
                let operations = sync.lastTransaction?.operations.count ?? 0
                for r in refused {
                    logger.error("NetworkPolicy could not be programmed; the pods it selects allow nothing on its side until it is",
                                 metadata: ["policy": "\(r.policy.namespace ?? "")/\(r.policy.name)", "reason": "\(r.reason)"])
                }
                // A refused policy is retried at the next pass (the resync at the latest).
                synced = refused.isEmpty ? snapshot.version : nil
                report(PolicySyncReport(succeeded: true, isolatedPods: pods.count, operations: operations, unprogrammable: refused))
                logger.debug("policy rules synced", metadata: [
                    "pods.isolated": "\(pods.count)", "operations": "\(operations)", "policies.refused": "\(refused.count)"])
                return true
            } catch {
                logger.error("policy sync failed; the previous rules stay in force", metadata: ["error": "\(error)"])
                report(PolicySyncReport(succeeded: false, isolatedPods: pods.count, operations: 0, unprogrammable: []))
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
