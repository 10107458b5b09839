import CNftnl

/// Turns transaction operations into nf_tables messages. Every message takes a fresh sequence
/// number from `sequence`, which the caller maps back to the operation for error reports.
struct OperationEncoder {
    let writer: BatchWriter
    private var nextSetID: UInt32 = 1

    init(writer: BatchWriter) { self.writer = writer }

    private static let create = NLM_F_CREATE
    private static let exclusive = NLM_F_EXCL

    mutating func encode(_ op: Transaction.Operation, sequence: () -> UInt32) {
        switch op {
        case .addTable(let t), .createTable(let t):
            let flags = Self.create | (isCreate(op) ? Self.exclusive : 0)
            table(t, .newTable, flags, sequence())
        case .deleteTable(let t):
            table(t, .delTable, 0, sequence())
        case .flushTable(let t):
            rule(ObjectCodec.makeRule(t, chain: nil), .delRule, t.family, 0, sequence())
        case .addChain(let c):
            let o = ObjectCodec.makeChain(c)
            defer { nftnl_chain_free(o) }
            writer.message(.newChain, family: c.table.family, flags: Self.create, sequence: sequence()) { nftnl_chain_nlmsg_build_payload($0, o) }
        case .deleteChain(let t, let name):
            let o = ObjectCodec.makeChain(t, name)
            defer { nftnl_chain_free(o) }
            writer.message(.delChain, family: t.family, flags: 0, sequence: sequence()) { nftnl_chain_nlmsg_build_payload($0, o) }
        case .flushChain(let t, let name):
            rule(ObjectCodec.makeRule(t, chain: name), .delRule, t.family, 0, sequence())
        case .addSet(let s):
            let o = SetCodec.makeSet(s, id: nextSetID)
            nextSetID += 1
            defer { nftnl_set_free(o) }
            writer.message(.newSet, family: s.table.family, flags: Self.create, sequence: sequence()) { nftnl_set_nlmsg_build_payload($0, o) }
            elements(s, Array(s.elements), .newSetElem, Self.create, sequence)
        case .deleteSet(let t, let name):
            let o = SetCodec.makeReference(t, name)
            defer { nftnl_set_free(o) }
            writer.message(.delSet, family: t.family, flags: 0, sequence: sequence()) { nftnl_set_nlmsg_build_payload($0, o) }
        case .flushSet(let t, let name):
            let o = SetCodec.makeReference(t, name)
            defer { nftnl_set_free(o) }
            writer.message(.delSetElem, family: t.family, flags: 0, sequence: sequence()) { nftnl_set_elems_nlmsg_build_payload($0, o) }
        case .addElements(let s, let list):
            elements(s, list, .newSetElem, Self.create, sequence)
        case .deleteElements(let s, let list):
            elements(s, list, .delSetElem, 0, sequence)
        case .addRule(let r):
            rule(ObjectCodec.makeRule(r, withHandle: false), .newRule, r.table.family, Self.create | NLM_F_APPEND, sequence())
        case .replaceRule(let r):
            rule(ObjectCodec.makeRule(r, withHandle: true), .newRule, r.table.family, NLM_F_REPLACE, sequence())
        case .deleteRule(let t, let chain, let handle):
            rule(ObjectCodec.makeRule(t, chain: chain, handle: handle), .delRule, t.family, 0, sequence())
        }
    }

    private func isCreate(_ op: Transaction.Operation) -> Bool {
        if case .createTable = op { return true }
        return false
    }

    private func table(_ t: Table, _ type: NFTMessage, _ flags: Int32, _ seq: UInt32) {
        let o = ObjectCodec.makeTable(t)
        defer { nftnl_table_free(o) }
        writer.message(type, family: t.family, flags: flags, sequence: seq) { nftnl_table_nlmsg_build_payload($0, o) }
    }

    private func rule(_ o: OpaquePointer, _ type: NFTMessage, _ family: TableFamily, _ flags: Int32, _ seq: UInt32) {
        defer { nftnl_rule_free(o) }
        writer.message(type, family: family, flags: flags, sequence: seq) { nftnl_rule_nlmsg_build_payload($0, o) }
    }

    /// Element lists go in as many messages as it takes to keep each one's element nest under
    /// `BatchWriter.maxElementPayload`.
    private func elements(_ s: NFTSet, _ list: [SetElement], _ type: NFTMessage, _ flags: Int32, _ sequence: () -> UInt32) {
        var start = 0
        while start < list.count {
            var size = 0
            var end = start
            while end < list.count {
                let next = SetCodec.estimatedSize(list[end], in: s)
                if end > start, size + next > BatchWriter.maxElementPayload { break }
                size += next
                end += 1
            }
            let o = SetCodec.makeReference(s.table, s.name)
            for e in list[start..<end] {
                for kernelElement in SetCodec.makeElements(e, in: s) { nftnl_set_elem_add(o, kernelElement) }
            }
            writer.message(type, family: s.table.family, flags: flags, sequence: sequence()) { nftnl_set_elems_nlmsg_build_payload($0, o) }
            nftnl_set_free(o)
            start = end
        }
    }
}
