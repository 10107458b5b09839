/// A table: the unit of ownership. Keel writes only into tables it owns, so every object in this
/// module names its table, and a `Ruleset` read back for one table is everything that owner made.
public struct Table: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var family: TableFamily
    public var name: String

    public init(_ family: TableFamily, _ name: String) {
        self.family = family
        self.name = name
    }

    /// "inet keel", the way nft names a table on its command line.
    public var description: String { "\(family) \(name)" }
    public static func < (l: Self, r: Self) -> Bool { (l.family, l.name) < (r.family, r.name) }
}
