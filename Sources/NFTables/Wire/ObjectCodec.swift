import CNftnl

/// Tables, chains, rules and sets ↔ libnftnl objects. Objects returned by `make*` are owned by the
/// caller and freed with the matching `nftnl_*_free`.
enum ObjectCodec {
    // MARK: - Tables

    static func makeTable(_ t: Table) -> OpaquePointer {
        let o = nftnl_table_alloc()!
        nftnl_table_set_str(o, attr(NFTNL_TABLE_NAME), t.name)
        nftnl_table_set_u32(o, attr(NFTNL_TABLE_FAMILY), t.family.nftnlFamily)
        return o
    }

    static func decodeTable(_ o: OpaquePointer) -> Table? {
        guard let family = TableFamily(nfproto: nftnl_table_get_u32(o, attr(NFTNL_TABLE_FAMILY))),
              let name = nftnlString(nftnl_table_get_str(o, attr(NFTNL_TABLE_NAME))) else { return nil }
        return Table(family, name)
    }

    // MARK: - Chains

    /// A chain identified by name only (for delete and flush).
    static func makeChain(_ table: Table, _ name: String) -> OpaquePointer {
        let o = nftnl_chain_alloc()!
        nftnl_chain_set_str(o, attr(NFTNL_CHAIN_TABLE), table.name)
        nftnl_chain_set_str(o, attr(NFTNL_CHAIN_NAME), name)
        nftnl_chain_set_u32(o, attr(NFTNL_CHAIN_FAMILY), table.family.nftnlFamily)
        return o
    }

    static func makeChain(_ c: Chain) -> OpaquePointer {
        let o = makeChain(c.table, c.name)
        if let b = c.base {
            nftnl_chain_set_u32(o, attr(NFTNL_CHAIN_HOOKNUM), b.hook.number(in: c.table.family))
            nftnl_chain_set_s32(o, attr(NFTNL_CHAIN_PRIO), b.priority.rawValue)
            nftnl_chain_set_u32(o, attr(NFTNL_CHAIN_POLICY), b.policy.code)
            nftnl_chain_set_str(o, attr(NFTNL_CHAIN_TYPE), b.type.rawValue)
            if let device = b.device { nftnl_chain_set_str(o, attr(NFTNL_CHAIN_DEV), device) }
        }
        return o
    }

    static func decodeChain(_ o: OpaquePointer) -> Chain? {
        guard let family = TableFamily(nfproto: nftnl_chain_get_u32(o, attr(NFTNL_CHAIN_FAMILY))),
              let tableName = nftnlString(nftnl_chain_get_str(o, attr(NFTNL_CHAIN_TABLE))),
              let name = nftnlString(nftnl_chain_get_str(o, attr(NFTNL_CHAIN_NAME))) else { return nil }
        let table = Table(family, tableName)
        guard nftnl_chain_is_set(o, attr(NFTNL_CHAIN_HOOKNUM)) else { return Chain(table, name) }
        guard let hook = Hook(number: nftnl_chain_get_u32(o, attr(NFTNL_CHAIN_HOOKNUM)), family: family),
              let type = ChainType(rawValue: nftnlString(nftnl_chain_get_str(o, attr(NFTNL_CHAIN_TYPE))) ?? "filter")
        else { return nil }
        let policy: ChainPolicy = nftnl_chain_is_set(o, attr(NFTNL_CHAIN_POLICY))
            && nftnl_chain_get_u32(o, attr(NFTNL_CHAIN_POLICY)) == 0 ? .drop : .accept
        let device = nftnl_chain_is_set(o, attr(NFTNL_CHAIN_DEV)) ? nftnlString(nftnl_chain_get_str(o, attr(NFTNL_CHAIN_DEV))) : nil
        return Chain(table, name, type: type, hook: hook, priority: ChainPriority(rawValue: nftnl_chain_get_s32(o, attr(NFTNL_CHAIN_PRIO))),
                     policy: policy, device: device)
    }

    // MARK: - Rules

    static func makeRule(_ r: Rule, withHandle: Bool) -> OpaquePointer {
        let o = makeRule(r.table, chain: r.chain)
        if withHandle, let handle = r.handle { nftnl_rule_set_u64(o, attr(NFTNL_RULE_HANDLE), handle) }
        if let comment = r.comment {
            let udata = RuleUserData.encode(comment: comment)
            _ = udata.withUnsafeBytes { nftnl_rule_set_data(o, attr(NFTNL_RULE_USERDATA), $0.baseAddress, UInt32($0.count)) }
        }
        for e in r.expressions { nftnl_rule_add_expr(o, ExpressionCodec.make(e)) }
        return o
    }

    /// A rule object naming only table and chain (flush) or a handle too (delete).
    static func makeRule(_ table: Table, chain: String?, handle: UInt64? = nil) -> OpaquePointer {
        let o = nftnl_rule_alloc()!
        nftnl_rule_set_str(o, attr(NFTNL_RULE_TABLE), table.name)
        if let chain { nftnl_rule_set_str(o, attr(NFTNL_RULE_CHAIN), chain) }
        nftnl_rule_set_u32(o, attr(NFTNL_RULE_FAMILY), table.family.nftnlFamily)
        if let handle { nftnl_rule_set_u64(o, attr(NFTNL_RULE_HANDLE), handle) }
        return o
    }

    static func decodeRule(_ o: OpaquePointer) -> Rule? {
        guard let family = TableFamily(nfproto: nftnl_rule_get_u32(o, attr(NFTNL_RULE_FAMILY))),
              let tableName = nftnlString(nftnl_rule_get_str(o, attr(NFTNL_RULE_TABLE))),
              let chain = nftnlString(nftnl_rule_get_str(o, attr(NFTNL_RULE_CHAIN))) else { return nil }
        var expressions: [Expression] = []
        let iter = nftnl_expr_iter_create(o)
        defer { nftnl_expr_iter_destroy(iter) }
        while let e = nftnl_expr_iter_next(iter) { expressions.append(ExpressionCodec.decode(e)) }
        let udata = nftnlBytes { nftnl_rule_get_data(o, attr(NFTNL_RULE_USERDATA), $0) }
        let handle = nftnl_rule_is_set(o, attr(NFTNL_RULE_HANDLE)) ? nftnl_rule_get_u64(o, attr(NFTNL_RULE_HANDLE)) : nil
        return Rule(Table(family, tableName), chain: chain, comment: udata.flatMap(RuleUserData.comment(in:)),
                    handle: handle, expressions: expressions)
    }
}

/// nft's rule user data: TLVs of `u8 type, u8 length, value` (libnftnl's `struct nftnl_udata`).
/// The comment is type NFTNL_UDATA_RULE_COMMENT (0), NUL-terminated, so `nft list` shows it.
enum RuleUserData {
    static let commentType: UInt8 = 0

    static func encode(comment: String) -> [UInt8] {
        let value = Array(comment.utf8.prefix(253)) + [0]
        return [commentType, UInt8(value.count)] + value
    }

    static func comment(in data: [UInt8]) -> String? {
        var i = 0
        while i + 2 <= data.count {
            let type = data[i], length = Int(data[i + 1])
            guard i + 2 + length <= data.count else { return nil }
            if type == commentType {
                return String(decoding: data[(i + 2)..<(i + 2 + length)].prefix { $0 != 0 }, as: UTF8.self)
            }
            i += 2 + length
        }
        return nil
    }
}
