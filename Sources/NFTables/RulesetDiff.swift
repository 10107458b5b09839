/// The transaction that turns `applied` into `desired`, for the tables in either. Pure.
///
/// - `applied == nil` (nothing known, e.g. after a restart or a failed apply): each desired table is
///   added, deleted and re-created in the same batch, which replaces whatever the kernel had in it
///   atomically and leaves no stale chain, set or element behind.
/// - Otherwise only what differs: set and map elements are added and deleted one by one (a changed
///   map value is a delete plus an add), a chain whose rules differ is flushed and refilled, and new
///   and removed chains, sets and tables are added and deleted. The order keeps every reference
///   valid inside the batch: flush rules before deleting what they use, add chains before the
///   elements that jump to them, delete chains after the elements that jumped to them.
public func transaction(from applied: Ruleset?, to desired: Ruleset) -> Transaction {
    var tx = Transaction()
    guard let applied else {
        for table in desired.normalized.tables {
            tx.add(table)
            tx.delete(table)
            tx.append(contentsOf: creation(of: desired.filtered(to: table)))
        }
        return tx
    }
    let old = applied.normalized, new = desired.normalized
    let oldTables = Set(old.tables), newTables = Set(new.tables)

    for table in new.tables where !oldTables.contains(table) {
        tx.append(contentsOf: creation(of: new.filtered(to: table)))
    }
    for table in new.tables where oldTables.contains(table) {
        tx.append(contentsOf: update(from: old.filtered(to: table), to: new.filtered(to: table), table: table))
    }
    for table in old.tables where !newTables.contains(table) {
        tx.delete(table)
    }
    return tx
}

/// Table, chains, sets with their elements, then rules: a table from nothing.
private func creation(of r: Ruleset) -> Transaction {
    var tx = Transaction()
    for t in r.tables { tx.add(t) }
    for c in r.chains { tx.add(c) }
    for s in r.sets { tx.add(s) }
    for rule in r.rules { tx.add(rule) }
    return tx
}

private func update(from old: Ruleset, to new: Ruleset, table: Table) -> Transaction {
    var tx = Transaction()
    let oldChains = Dictionary(old.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let newChains = Dictionary(new.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let oldSets = Dictionary(old.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let newSets = Dictionary(new.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    // Grouped once: asking each ruleset for each chain's rules would be chains × rules (quadratic
    // at 10K services).
    let oldRules = Dictionary(grouping: old.rules.filter { $0.table == table }, by: \.chain)
    let newRules = Dictionary(grouping: new.rules.filter { $0.table == table }, by: \.chain)

    // A chain whose hook, type or priority changes is re-created; a policy change is an update.
    let recreated = Set(new.chains.compactMap { c -> String? in
        guard let o = oldChains[c.name], o != c else { return nil }
        var sameButPolicy = o
        sameButPolicy.base?.policy = c.base?.policy ?? .accept
        return sameButPolicy == c ? nil : c.name
    })
    let redefinedSets = Set(new.sets.compactMap { s -> String? in
        guard let o = oldSets[s.name], o.definition != s.definition else { return nil }
        return s.name
    })
    let removedChains = old.chains.map(\.name).filter { newChains[$0] == nil }
    let changedRules = new.chains.map(\.name).filter { name in
        oldChains[name] != nil && (recreated.contains(name) || (oldRules[name] ?? []) != (newRules[name] ?? []))
    }
    let changed = Set(changedRules)

    // 1. Empty the chains that change or go, so nothing they reference is still in use.
    for name in changedRules + removedChains { tx.flush(chain: name, in: table) }
    for name in recreated.sorted() { tx.delete(chain: name, in: table) }
    // 2. Chains that are new (or re-created, or only change policy) exist before anything jumps to them.
    for c in new.chains where oldChains[c.name] == nil || recreated.contains(c.name) || oldChains[c.name] != c { tx.add(c) }
    // 3. Sets: removed or redefined ones go, new ones come with their elements, the rest get element diffs.
    for s in old.sets where newSets[s.name] == nil || redefinedSets.contains(s.name) { tx.delete(set: s.name, in: table) }
    for s in new.sets {
        guard let o = oldSets[s.name], !redefinedSets.contains(s.name) else {
            tx.add(s)
            continue
        }
        let oldByKey = Dictionary(o.elements.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let newByKey = Dictionary(s.elements.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let gone = o.elements.filter { newByKey[$0.key] != $0 }
        let come = s.elements.filter { oldByKey[$0.key] != $0 }
        tx.delete(elements: gone.sorted { $0.description < $1.description }, from: s)
        tx.add(elements: come.sorted { $0.description < $1.description }, to: s)
    }
    // 4. Rules of new and changed chains.
    for c in new.chains where oldChains[c.name] == nil || changed.contains(c.name) {
        for rule in newRules[c.name] ?? [] { tx.add(rule) }
    }
    // 5. Chains nothing refers to any more.
    for name in removedChains { tx.delete(chain: name, in: table) }
    return tx
}
