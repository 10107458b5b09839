/// One nftables change, applied by `NFTablesSocket.apply` as a single batch: the kernel takes all of
/// it or none of it.
///
/// Like knftables' transaction, validation is sticky: the first operation that cannot be valid
/// (an element that does not fit its set, a replace without a handle) is recorded in
/// `validationError`, later operations are ignored, and `apply` throws it without sending anything.
/// Callers build a whole transaction without checking each step.
public struct Transaction: Sendable, CustomStringConvertible {
    public enum Operation: Hashable, Sendable {
        /// NFT_MSG_NEWTABLE (NLM_F_CREATE): `add table`; no error if it exists.
        case addTable(Table)
        /// NFT_MSG_NEWTABLE (NLM_F_CREATE | NLM_F_EXCL): `create table`; EEXIST if it exists.
        case createTable(Table)
        /// NFT_MSG_DELTABLE: `delete table`, with everything in it.
        case deleteTable(Table)
        /// NFT_MSG_DELRULE for the table: `flush table` removes every rule, keeps chains and sets.
        case flushTable(Table)
        /// NFT_MSG_NEWCHAIN (NLM_F_CREATE): `add chain`; updates a base chain's policy if it exists.
        case addChain(Chain)
        /// NFT_MSG_DELCHAIN: `delete chain`; the chain must be empty and unreferenced.
        case deleteChain(Table, String)
        /// NFT_MSG_DELRULE for the chain: `flush chain`.
        case flushChain(Table, String)
        /// NFT_MSG_NEWSET (NLM_F_CREATE), then NFT_MSG_NEWSETELEM for its elements.
        case addSet(NFTSet)
        /// NFT_MSG_DELSET.
        case deleteSet(Table, String)
        /// NFT_MSG_DELSETELEM without elements: `flush set`.
        case flushSet(Table, String)
        /// NFT_MSG_NEWSETELEM (NLM_F_CREATE), split over as many messages as the size limit needs.
        case addElements(NFTSet, [SetElement])
        /// NFT_MSG_DELSETELEM.
        case deleteElements(NFTSet, [SetElement])
        /// NFT_MSG_NEWRULE (NLM_F_CREATE | NLM_F_APPEND): appends to the chain.
        case addRule(Rule)
        /// NFT_MSG_NEWRULE (NLM_F_REPLACE) on the rule's handle.
        case replaceRule(Rule)
        /// NFT_MSG_DELRULE on a handle.
        case deleteRule(Table, chain: String, handle: UInt64)
    }

    public private(set) var operations: [Operation] = []
    /// The first validation failure; `apply` throws it and sends nothing.
    public private(set) var validationError: NFTablesError?

    public init() {}

    public var isEmpty: Bool { operations.isEmpty && validationError == nil }

    // MARK: - Tables

    public mutating func add(_ table: Table) { append(.addTable(table)) }
    public mutating func create(_ table: Table) { append(.createTable(table)) }
    public mutating func delete(_ table: Table) { append(.deleteTable(table)) }
    public mutating func flush(_ table: Table) { append(.flushTable(table)) }

    // MARK: - Chains

    public mutating func add(_ chain: Chain) { append(.addChain(chain)) }
    public mutating func delete(chain name: String, in table: Table) { append(.deleteChain(table, name)) }
    public mutating func flush(chain name: String, in table: Table) { append(.flushChain(table, name)) }

    // MARK: - Sets and maps

    /// Adds the set (if missing) and its `elements`.
    public mutating func add(_ set: NFTSet) { append(.addSet(set)) }
    public mutating func delete(set name: String, in table: Table) { append(.deleteSet(table, name)) }
    public mutating func flush(set name: String, in table: Table) { append(.flushSet(table, name)) }
    /// Adds elements to `set` (whose definition says how to encode them; its own elements are ignored).
    public mutating func add(elements: some Collection<SetElement>, to set: NFTSet) {
        guard !elements.isEmpty else { return }
        append(.addElements(set.definition, Array(elements)))
    }
    public mutating func delete(elements: some Collection<SetElement>, from set: NFTSet) {
        guard !elements.isEmpty else { return }
        append(.deleteElements(set.definition, Array(elements)))
    }

    // MARK: - Rules

    /// Appends `rule` to its chain.
    public mutating func add(_ rule: Rule) { append(.addRule(rule)) }
    /// Replaces the rule with `rule.handle` by `rule`.
    public mutating func replace(_ rule: Rule) { append(.replaceRule(rule)) }
    /// Deletes the rule with `rule.handle`.
    public mutating func delete(_ rule: Rule) {
        guard let handle = rule.handle else {
            fail(.invalid("delete \(rule.description)", index: operations.count, "a rule is deleted by handle; this one has none"))
            return
        }
        append(.deleteRule(rule.table, chain: rule.chain, handle: handle))
    }

    /// Appends every operation of `other` (and its validation error, if any).
    public mutating func append(contentsOf other: Transaction) {
        for op in other.operations { append(op) }
        if let e = other.validationError { fail(e) }
    }

    // MARK: - Validation

    /// Appends one operation (validated like the others).
    public mutating func append(_ op: Operation) {
        guard validationError == nil else { return }
        if let reason = Self.problem(with: op) {
            fail(.invalid(op.text, index: operations.count, reason))
            return
        }
        operations.append(op)
    }

    private mutating func fail(_ error: NFTablesError) {
        if validationError == nil { validationError = error }
    }

    /// NFT_NAME_MAXLEN is 256 including the NUL.
    private static func badName(_ name: String) -> Bool { name.isEmpty || name.utf8.count > 255 }

    static func problem(with op: Operation) -> String? {
        switch op {
        case .addTable(let t), .createTable(let t), .deleteTable(let t), .flushTable(let t):
            return badName(t.name) ? "table name must be 1…255 bytes" : nil
        case .addChain(let c):
            if badName(c.table.name) || badName(c.name) { return "chain name must be 1…255 bytes" }
            if let base = c.base, base.type == .nat, base.policy == .drop { return "a nat chain cannot have policy drop" }
            if let base = c.base, c.table.family == .netdev, base.device == nil { return "a netdev base chain needs a device" }
            return nil
        case .deleteChain(let t, let n), .flushChain(let t, let n), .deleteSet(let t, let n), .flushSet(let t, let n):
            return badName(t.name) || badName(n) ? "names must be 1…255 bytes" : nil
        case .addSet(let s):
            if badName(s.table.name) || badName(s.name) { return "set name must be 1…255 bytes" }
            if s.keyType.isEmpty { return "a set needs a key type" }
            if s.keyType.kernelLength > 64 { return "key of \(s.keyType.kernelLength) bytes exceeds 64" }
            if s.timeout != nil, !s.flags.contains(.timeout) { return "a default timeout needs the timeout flag" }
            if case .data(let types)? = s.mapping, types.isEmpty || types.kernelLength > 64 { return "bad map data type" }
            return elementProblem(s, Array(s.elements))
        case .addElements(let s, let elements), .deleteElements(let s, let elements):
            return elementProblem(s, elements)
        case .addRule(let r):
            if badName(r.chain) { return "chain name must be 1…255 bytes" }
            if r.expressions.isEmpty { return "a rule needs at least one expression" }
            if r.expressions.contains(where: { if case .unsupported = $0 { true } else { false } }) {
                return "a rule with an unsupported expression cannot be written"
            }
            return nil
        case .replaceRule(let r):
            if r.handle == nil { return "a rule is replaced by handle; this one has none" }
            return problem(with: .addRule(r))
        case .deleteRule(_, let chain, _):
            return badName(chain) ? "chain name must be 1…255 bytes" : nil
        }
    }

    private static func elementProblem(_ set: NFTSet, _ elements: [SetElement]) -> String? {
        var seen = Set<[DataValue]>()
        for e in elements {
            if e.key.map(\.type) != set.keyType { return "element \(e) does not match key type \(set.keyType)" }
            if let end = e.keyEnd {
                if !set.flags.contains(.interval) { return "element \(e) is a range but the set has no interval flag" }
                if end.map(\.type) != set.keyType { return "range end of \(e) does not match key type" }
                if end.map(\.bytes).lexicographicallyPrecedes(e.key.map(\.bytes), by: { $0.lexicographicallyPrecedes($1) }) {
                    return "range \(e) ends before it starts"
                }
            }
            switch (set.mapping, e.value) {
            case (nil, nil), (.verdict?, .verdict?): break
            case (.data(let types)?, .data(let values)?):
                if values.map(\.type) != types { return "value of \(e) does not match map type \(types)" }
            case (nil, _?): return "element \(e) has a value but \(set.name) is a set"
            case (_?, nil): return "element \(e) has no value but \(set.name) is a map"
            default: return "element \(e) has the wrong kind of value for \(set.name)"
            }
            if e.timeout != nil, !set.flags.contains(.timeout) { return "element \(e) has a timeout but the set has no timeout flag" }
            if !seen.insert(e.key).inserted { return "key \(e.key.map(\.description).joined(separator: " . ")) appears twice" }
        }
        return nil
    }

    /// The transaction as nft-like text, one operation a line (for logs and golden files).
    public var description: String {
        operations.map(\.text).joined(separator: "\n")
    }
}
