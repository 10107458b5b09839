/// nft-like text for each operation. Elements are sorted so the text does not depend on the order of
/// a `Set`; rules are shown as their kernel expressions (see `Rule.expressionText`).
extension Transaction.Operation {
    public var text: String {
        switch self {
        case .addTable(let t): return "add table \(t)"
        case .createTable(let t): return "create table \(t)"
        case .deleteTable(let t): return "delete table \(t)"
        case .flushTable(let t): return "flush table \(t)"
        case .addChain(let c):
            guard let b = c.base else { return "add chain \(c.table) \(c.name)" }
            let device = b.device.map { " device \"\($0)\";" } ?? ""
            return "add chain \(c.table) \(c.name) { type \(b.type.rawValue) hook \(b.hook.rawValue)\(device) priority \(b.priority); policy \(b.policy.rawValue); }"
        case .deleteChain(let t, let n): return "delete chain \(t) \(n)"
        case .flushChain(let t, let n): return "flush chain \(t) \(n)"
        case .addSet(let s):
            var text = "add \(s.isMap ? "map" : "set") \(s.table) \(s.name) { \(s.definitionText) }"
            if !s.elements.isEmpty { text += "\n" + Self.addElements(s, Array(s.elements)).text }
            return text
        case .deleteSet(let t, let n): return "delete set \(t) \(n)"
        case .flushSet(let t, let n): return "flush set \(t) \(n)"
        case .addElements(let s, let elements):
            return "add element \(s.table) \(s.name) { \(elements.map(\.description).sorted().joined(separator: ", ")) }"
        case .deleteElements(let s, let elements):
            return "delete element \(s.table) \(s.name) { \(elements.map(\.description).sorted().joined(separator: ", ")) }"
        case .addRule(let r): return "add rule \(r.table) \(r.chain) \(r.expressionText)"
        case .replaceRule(let r): return "replace rule \(r.table) \(r.chain) handle \(r.handle ?? 0) \(r.expressionText)"
        case .deleteRule(let t, let chain, let handle): return "delete rule \(t) \(chain) handle \(handle)"
        }
    }

    /// The text cut short, for error messages about transactions with thousands of elements.
    var summary: String {
        let full = text
        return full.count <= 400 ? full : String(full.prefix(400)) + "…"
    }
}

extension NFTSet {
    /// `type k1 . k2 : v; flags …; timeout …; size …;`
    var definitionText: String {
        var text = "type " + keyType.map(\.description).joined(separator: " . ")
        switch mapping {
        case .verdict?: text += " : verdict"
        case .data(let types)?: text += " : " + types.map(\.description).joined(separator: " . ")
        case nil: break
        }
        text += ";"
        var flagNames: [String] = []
        if flags.contains(.constant) { flagNames.append("constant") }
        if flags.contains(.interval) { flagNames.append("interval") }
        if flags.contains(.timeout) { flagNames.append("timeout") }
        if flags.contains(.dynamic) { flagNames.append("dynamic") }
        if !flagNames.isEmpty { text += " flags " + flagNames.joined(separator: ",") + ";" }
        if let timeout { text += " timeout \(timeout.milliseconds)ms;" }
        if let maxElements { text += " size \(maxElements);" }
        return text
    }
}
