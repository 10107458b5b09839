/// Everything in one or more tables, as a value: what a controller wants, or what the kernel has.
///
/// Equality does not depend on the order in which tables, chains and sets are listed, nor on handles;
/// it does depend on the order of rules within each chain, which is what the kernel runs.
public struct Ruleset: Hashable, Sendable {
    public var tables: [Table]
    public var chains: [Chain]
    public var sets: [NFTSet]
    public var rules: [Rule]

    public init(tables: [Table] = [], chains: [Chain] = [], sets: [NFTSet] = [], rules: [Rule] = []) {
        self.tables = tables
        self.chains = chains
        self.sets = sets
        self.rules = rules
    }

    /// The objects of `table` only.
    public func filtered(to table: Table) -> Ruleset {
        Ruleset(tables: tables.filter { $0 == table }, chains: chains.filter { $0.table == table },
                sets: sets.filter { $0.table == table }, rules: rules.filter { $0.table == table })
    }

    public func chain(_ name: String, in table: Table) -> Chain? { chains.first { $0.table == table && $0.name == name } }
    public func set(_ name: String, in table: Table) -> NFTSet? { sets.first { $0.table == table && $0.name == name } }
    /// The rules of one chain, in order.
    public func rules(of chain: String, in table: Table) -> [Rule] { rules.filter { $0.table == table && $0.chain == chain } }

    /// Sorted tables, chains and sets; rules grouped by chain, keeping their order within a chain.
    public var normalized: Ruleset {
        var grouped: [ChainKey: [Rule]] = [:]
        for rule in rules { grouped[ChainKey(table: rule.table, name: rule.chain), default: []].append(rule) }
        let sortedRules = grouped.keys.sorted().flatMap { grouped[$0]! }
        return Ruleset(tables: Array(Set(tables)).sorted(),
                       chains: chains.sorted { ChainKey($0) < ChainKey($1) },
                       sets: sets.sorted { ($0.table, $0.name) < ($1.table, $1.name) },
                       rules: sortedRules)
    }

    public static func == (l: Ruleset, r: Ruleset) -> Bool {
        let a = l.normalized, b = r.normalized
        return a.tables == b.tables && a.chains == b.chains && a.sets == b.sets && a.rules == b.rules
    }

    public func hash(into hasher: inout Hasher) {
        let n = normalized
        hasher.combine(n.tables)
        hasher.combine(n.chains)
        hasher.combine(n.sets)
        hasher.combine(n.rules)
    }
}

/// A chain's identity: table and name.
struct ChainKey: Hashable, Comparable {
    var table: Table
    var name: String
    init(table: Table, name: String) { self.table = table; self.name = name }
    init(_ chain: Chain) { self.init(table: chain.table, name: chain.name) }
    static func < (l: Self, r: Self) -> Bool { (l.table, l.name) < (r.table, r.name) }
}
