import CNftnl

/// Views of what the wire layer produces without a kernel: libnftnl's own text for a rule (the
/// `nft --debug=netlink` notation) and encode → netlink message → libnftnl parse → decode round
/// trips. Unit tests compare these with literals; `keelctl` can print them.
enum WireInspection {
    /// libnftnl's rendering of the rule as it would be sent (`nftnl_rule_snprintf`).
    static func nftnlText(_ rule: Rule) -> String {
        let o = ObjectCodec.makeRule(rule, withHandle: false)
        defer { nftnl_rule_free(o) }
        var buffer = [CChar](repeating: 0, count: 16384)
        _ = nftnl_rule_snprintf(&buffer, buffer.count, o, UInt32(NFTNL_OUTPUT_DEFAULT.rawValue), 0)
        return String(cString: buffer)
    }

    /// The rule written into a NEWRULE message and parsed back by libnftnl.
    static func roundTrip(_ rule: Rule) -> Rule? {
        let o = ObjectCodec.makeRule(rule, withHandle: true)
        defer { nftnl_rule_free(o) }
        return viaMessage(.newRule, rule.table.family, { nftnl_rule_nlmsg_build_payload($0, o) }) { nlh in
            let parsed = nftnl_rule_alloc()!
            defer { nftnl_rule_free(parsed) }
            guard nftnl_rule_nlmsg_parse(nlh, parsed) >= 0 else { return nil }
            return ObjectCodec.decodeRule(parsed)
        }
    }

    /// The set definition written into a NEWSET message and parsed back (elements not included).
    static func roundTrip(definition s: NFTSet) -> NFTSet? {
        let o = SetCodec.makeSet(s, id: 1)
        defer { nftnl_set_free(o) }
        return viaMessage(.newSet, s.table.family, { nftnl_set_nlmsg_build_payload($0, o) }) { nlh in
            let parsed = nftnl_set_alloc()!
            defer { nftnl_set_free(parsed) }
            guard nftnl_set_nlmsg_parse(nlh, parsed) >= 0 else { return nil }
            return SetCodec.decodeSet(parsed)
        }
    }

    /// The elements written into NEWSETELEM messages and parsed back for `s`. One kernel element
    /// per message: libnftnl numbers the element nests 1, 2, … when it builds (the kernel ignores
    /// the number) but its parser accepts only NFTA_LIST_ELEM (1).
    static func roundTrip(elements: [SetElement], of s: NFTSet) -> Set<SetElement>? {
        let parsed = SetCodec.makeReference(s.table, s.name)
        defer { nftnl_set_free(parsed) }
        for e in elements {
            for k in SetCodec.makeElements(e, in: s) {
                let o = SetCodec.makeReference(s.table, s.name)
                defer { nftnl_set_free(o) }
                nftnl_set_elem_add(o, k)
                let ok = viaMessage(.newSetElem, s.table.family, { nftnl_set_elems_nlmsg_build_payload($0, o) }) { nlh in
                    nftnl_set_elems_nlmsg_parse(nlh, parsed) >= 0 ? true : nil
                }
                guard ok == true else { return nil }
            }
        }
        return SetCodec.decodeElements(parsed, of: s)
    }

    /// The messages of a transaction's batch (without BATCH_BEGIN/END), as (type, flags, length).
    static func messages(_ tx: Transaction) -> [(type: UInt16, flags: UInt16, length: Int)] {
        let writer = BatchWriter()
        var encoder = OperationEncoder(writer: writer)
        var seq: UInt32 = 0
        for op in tx.operations { encoder.encode(op) { seq += 1; return seq } }
        writer.requestAckOnLastCommand()
        var out: [(UInt16, UInt16, Int)] = []
        var offset = 0
        let bytes = writer.bytes
        while offset + 16 <= bytes.count {
            let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
            let type = UInt16(bytes[offset + 4]) | UInt16(bytes[offset + 5]) << 8
            let flags = UInt16(bytes[offset + 6]) | UInt16(bytes[offset + 7]) << 8
            out.append((type, flags, length))
            offset += (length + 3) & ~3
        }
        return out
    }

    private static func viaMessage<T>(_ type: NFTMessage, _ family: TableFamily, _ fill: (UnsafeMutablePointer<nlmsghdr>) -> Void,
                                      _ parse: (UnsafePointer<nlmsghdr>) -> T?) -> T? {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: BatchWriter.scratchSize, alignment: 8)
        defer { buffer.deallocate() }
        let nlh = nftnl_nlmsg_build_hdr(buffer.assumingMemoryBound(to: CChar.self), type.rawValue, UInt16(family.nfproto), 0, 1)!
        fill(nlh)
        return parse(UnsafePointer(nlh))
    }
}
