import SystemPackage
import Synchronization

/// An in-memory kernel: `Transaction`s applied to a `Ruleset` value the way the kernel applies a
/// batch — all or nothing, refusing what the kernel refuses — so that sync loops and their
/// incremental paths can be tested without root.
///
/// Refused, with the errno the kernel gives: a table, chain, set or element that an operation needs
/// and is missing (ENOENT); `create table` of one that exists, an element whose key is present with
/// another value, or an interval element the kernel finds overlapping another one (EEXIST; see
/// `refusedOverlap`); deleting a chain that
/// still has rules or that rules or verdict-map elements jump to, or a set that rules use (EBUSY);
/// a rule or verdict element naming a chain or set that does not exist (ENOENT); what `Transaction`
/// itself refuses (EINVAL). Adding an element that is there already, identical, is no error (the
/// batch's NEWSETELEM carries no NLM_F_EXCL). Rules are numbered by handle as they are added.
extension Ruleset {
    public func applying(_ transaction: Transaction) throws(NFTablesError) -> Ruleset {
        if let error = transaction.validationError { throw error }
        var next = InMemoryTables(self)
        for (index, op) in transaction.operations.enumerated() {
            if let (errno, reason) = next.apply(op) {
                throw NFTablesError(operation: op.summary, operationIndex: index, errno: errno, kernelMessage: reason)
            }
        }
        return next.ruleset
    }
}

/// `NFTablesKernel` over an in-memory ruleset: what a sync loop's test hands it instead of a socket.
public final class InMemoryNFTablesKernel: NFTablesKernel, Sendable {
    private let state: Mutex<(ruleset: Ruleset, applied: [Transaction])>

    public init(_ initial: Ruleset = Ruleset()) { state = Mutex((initial, [])) }

    /// What the kernel holds.
    public var ruleset: Ruleset { state.withLock { $0.ruleset } }
    /// Every transaction applied (not the refused ones, nor checks).
    public var applied: [Transaction] { state.withLock { $0.applied } }

    public func apply(_ transaction: Transaction) throws(NFTablesError) {
        try state.withLock { (s: inout (ruleset: Ruleset, applied: [Transaction])) throws(NFTablesError) in
            s.ruleset = try s.ruleset.applying(transaction)
            s.applied.append(transaction)
        }
    }

    public func check(_ transaction: Transaction) throws(NFTablesError) {
        _ = try ruleset.applying(transaction)
    }

    public func table(named name: String, family: TableFamily) throws(NFTablesError) -> Ruleset? {
        let r = ruleset
        guard let table = r.tables.first(where: { $0.name == name && $0.family == family }) else { return nil }
        return r.filtered(to: table)
    }
}

/// The tables being changed by one batch.
private struct InMemoryTables {
    var tables: Set<Table>
    var chains: [ChainKey: Chain]
    var sets: [SetKey: NFTSet]
    /// Rules per chain, in order.
    var rules: [ChainKey: [Rule]]
    var nextHandle: UInt64

    struct SetKey: Hashable { var table: Table; var name: String }

    init(_ r: Ruleset) {
        tables = Set(r.tables)
        chains = Dictionary(r.chains.map { (ChainKey($0), $0) }, uniquingKeysWith: { a, _ in a })
        sets = Dictionary(r.sets.map { (SetKey(table: $0.table, name: $0.name), $0) }, uniquingKeysWith: { a, _ in a })
        rules = Dictionary(grouping: r.rules, by: { ChainKey(table: $0.table, name: $0.chain) })
        nextHandle = (r.rules.compactMap(\.handle).max() ?? 0) + 1
    }

    var ruleset: Ruleset {
        Ruleset(tables: Array(tables), chains: Array(chains.values), sets: Array(sets.values),
                rules: rules.keys.sorted().flatMap { rules[$0]! })
    }

    typealias Refusal = (Errno, String)

    mutating func apply(_ op: Transaction.Operation) -> Refusal? {
        switch op {
        case .addTable(let t):
            tables.insert(t)
        case .createTable(let t):
            guard tables.insert(t).inserted else { return (.fileExists, "table \(t) exists") }
        case .deleteTable(let t):
            guard tables.remove(t) != nil else { return (.noSuchFileOrDirectory, "no table \(t)") }
            chains = chains.filter { $0.key.table != t }
            sets = sets.filter { $0.key.table != t }
            rules = rules.filter { $0.key.table != t }
        case .flushTable(let t):
            guard tables.contains(t) else { return (.noSuchFileOrDirectory, "no table \(t)") }
            rules = rules.filter { $0.key.table != t }
        case .addChain(let c):
            guard tables.contains(c.table) else { return (.noSuchFileOrDirectory, "no table \(c.table)") }
            if let old = chains[ChainKey(c)], old.base?.hook != c.base?.hook || old.base?.type != c.base?.type {
                return (.notSupported, "chain \(c.name) exists with another hook or type")
            }
            chains[ChainKey(c)] = c
        case .deleteChain(let t, let name):
            let key = ChainKey(table: t, name: name)
            guard chains[key] != nil else { return (.noSuchFileOrDirectory, "no chain \(name)") }
            guard (rules[key] ?? []).isEmpty else { return (.resourceBusy, "chain \(name) has rules") }
            if referencesChain(name, in: t) { return (.resourceBusy, "chain \(name) is jumped to") }
            chains[key] = nil
        case .flushChain(let t, let name):
            let key = ChainKey(table: t, name: name)
            guard chains[key] != nil else { return (.noSuchFileOrDirectory, "no chain \(name)") }
            rules[key] = nil
        case .addSet(let s):
            guard tables.contains(s.table) else { return (.noSuchFileOrDirectory, "no table \(s.table)") }
            let key = SetKey(table: s.table, name: s.name)
            if let old = sets[key] {
                guard old.definition == s.definition else { return (.fileExists, "set \(s.name) exists with another definition") }
            } else {
                sets[key] = s.definition
            }
            return add(Array(s.elements), to: key)
        case .deleteSet(let t, let name):
            let key = SetKey(table: t, name: name)
            guard sets[key] != nil else { return (.noSuchFileOrDirectory, "no set \(name)") }
            if rules.filter({ $0.key.table == t }).values.joined().contains(where: { Self.sets(usedBy: $0).contains(name) }) {
                return (.resourceBusy, "set \(name) is used by a rule")
            }
            sets[key] = nil
        case .flushSet(let t, let name):
            let key = SetKey(table: t, name: name)
            guard sets[key] != nil else { return (.noSuchFileOrDirectory, "no set \(name)") }
            sets[key]!.elements = []
        case .addElements(let s, let elements):
            return add(elements, to: SetKey(table: s.table, name: s.name))
        case .deleteElements(let s, let elements):
            let key = SetKey(table: s.table, name: s.name)
            guard var set = sets[key] else { return (.noSuchFileOrDirectory, "no set \(s.name)") }
            let byKey = Dictionary(set.elements.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
            for e in elements {
                guard let present = byKey[e.key], set.elements.contains(present) else {
                    return (.noSuchFileOrDirectory, "no element \(e) in \(s.name)")
                }
                set.elements.remove(present)
            }
            sets[key] = set
        case .addRule(let r):
            let key = ChainKey(table: r.table, name: r.chain)
            guard chains[key] != nil else { return (.noSuchFileOrDirectory, "no chain \(r.chain)") }
            for name in Self.sets(usedBy: r) where sets[SetKey(table: r.table, name: name)] == nil {
                return (.noSuchFileOrDirectory, "rule uses the missing set \(name)")
            }
            for name in Self.chains(targetedBy: r) where chains[ChainKey(table: r.table, name: name)] == nil {
                return (.noSuchFileOrDirectory, "rule jumps to the missing chain \(name)")
            }
            var rule = r
            rule.handle = nextHandle
            nextHandle += 1
            rules[key, default: []].append(rule)
        case .replaceRule(let r):
            let key = ChainKey(table: r.table, name: r.chain)
            guard let i = rules[key]?.firstIndex(where: { $0.handle == r.handle }) else {
                return (.noSuchFileOrDirectory, "no rule with handle \(r.handle.map(String.init) ?? "none") in \(r.chain)")
            }
            rules[key]![i] = r
        case .deleteRule(let t, let chain, let handle):
            let key = ChainKey(table: t, name: chain)
            guard let i = rules[key]?.firstIndex(where: { $0.handle == handle }) else {
                return (.noSuchFileOrDirectory, "no rule with handle \(handle) in \(chain)")
            }
            rules[key]!.remove(at: i)
        }
        return nil
    }

    private mutating func add(_ elements: [SetElement], to key: SetKey) -> Refusal? {
        guard var set = sets[key] else { return (.noSuchFileOrDirectory, "no set \(key.name)") }
        var byKey = Dictionary(set.elements.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        for e in elements {
            if case .verdict(let v)? = e.value, let target = Self.chain(of: v), chains[ChainKey(table: key.table, name: target)] == nil {
                return (.noSuchFileOrDirectory, "element \(e) jumps to the missing chain \(target)")
            }
            if let present = byKey[e.key] {
                if present == e { continue }
                return (.fileExists, "key of \(e) is in \(key.name) with another value or range")
            }
            byKey[e.key] = e
            set.elements.insert(e)
        }
        if set.flags.contains(.interval), let (a, b) = Self.refusedOverlap(in: set, adding: elements) {
            return (.fileExists, "elements \(a) and \(b) of \(key.name) overlap")
        }
        sets[key] = set
        return nil
    }

    /// The overlap the kernel refuses when `added` join `set` (which holds them already). A
    /// single-field interval set (rbtree) refuses any overlap. A concatenated one (pipapo) refuses a
    /// new element whose start or end lies inside another element (kernel 6.x, `nft_pipapo_insert`):
    /// a new box strictly around or across another one without either corner inside it is taken.
    private static func refusedOverlap(in set: NFTSet, adding added: [SetElement]) -> (SetElement, SetElement)? {
        guard set.keyType.count > 1 else { return set.overlappingElements(limit: 1).first }
        func bytes(_ v: [DataValue]) -> [[UInt8]] { v.map(\.bytes) }
        func inside(_ point: [[UInt8]], _ e: SetElement) -> Bool {
            let low = bytes(e.key), high = bytes(e.keyEnd ?? e.key)
            return point.indices.allSatisfy { !point[$0].lexicographicallyPrecedes(low[$0]) && !high[$0].lexicographicallyPrecedes(point[$0]) }
        }
        let addedSet = Set(added)
        for new in addedSet {
            let corners = [bytes(new.key), bytes(new.keyEnd ?? new.key)]
            for other in set.elements where other != new {
                // Each pair once among the added ones: the later element is the one refused.
                if addedSet.contains(other), other.description > new.description { continue }
                if corners.contains(where: { inside($0, other) }) { return (other, new) }
            }
        }
        return nil
    }

    private func referencesChain(_ name: String, in table: Table) -> Bool {
        rules.filter { $0.key.table == table }.values.joined().contains { Self.chains(targetedBy: $0).contains(name) }
            || sets.filter { $0.key.table == table }.values.contains { set in
                set.elements.contains { if case .verdict(let v)? = $0.value { Self.chain(of: v) == name } else { false } }
            }
    }

    private static func chain(of verdict: Verdict) -> String? {
        switch verdict {
        case .jump(let c), .goto(let c): c
        default: nil
        }
    }

    static func sets(usedBy rule: Rule) -> [String] {
        rule.expressions.compactMap { e in
            switch e {
            case .lookup(let set, _, _, _): set
            case .dynset(let d): d.set
            default: nil
            }
        }
    }

    static func chains(targetedBy rule: Rule) -> [String] {
        rule.expressions.compactMap { e in if case .verdict(let v) = e { chain(of: v) } else { nil } }
    }
}
