/// A rule in a chain: kernel expressions, an optional comment (kept in the rule's user data, as nft
/// does, so `nft list` shows it) and, once read back, the kernel's handle.
///
/// Equality and hashing ignore `handle`: a rule read back from the kernel equals the rule that was
/// applied. Rules are compared as content; handles only address them for replace and delete.
public struct Rule: Hashable, Sendable, CustomStringConvertible {
    public var table: Table
    public var chain: String
    public var expressions: [Expression]
    public var comment: String?
    public var handle: UInt64?

    /// A rule from statements, expanded for `chain`'s table family.
    public init(_ chain: Chain, comment: String? = nil, _ statements: [Statement]) {
        self.init(chain.table, chain: chain.name, comment: comment, statements)
    }

    public init(_ table: Table, chain: String, comment: String? = nil, _ statements: [Statement]) {
        var compiler = RuleCompiler(family: table.family)
        self.init(table, chain: chain, comment: comment, expressions: compiler.compile(statements))
    }

    /// A rule from kernel expressions as they are.
    public init(_ table: Table, chain: String, comment: String? = nil, handle: UInt64? = nil, expressions: [Expression]) {
        self.table = table
        self.chain = chain
        self.expressions = expressions
        self.comment = comment
        self.handle = handle
    }

    public static func == (l: Rule, r: Rule) -> Bool {
        l.table == r.table && l.chain == r.chain && l.expressions == r.expressions && l.comment == r.comment
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(table)
        hasher.combine(chain)
        hasher.combine(expressions)
        hasher.combine(comment)
    }

    public var description: String { "rule \(table) \(chain) \(expressionText)" }
}
