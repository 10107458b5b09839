import CMnl
import CNftnl
import Netlink

/// GET requests with NLM_F_DUMP and the decoding of their answers through libnftnl's parsers.
enum DumpReader {
    /// A dump request for `type` in `family` (0 = every family), with optional table/set filters.
    static func request(_ type: NFTMessage, family: UInt8, table: String? = nil, set: String? = nil) -> NetlinkMessageBuilder {
        let b = NetlinkMessageBuilder(type: keel_nft_msg_type(Int32(type.rawValue)), flags: .dump)
        b.putFamilyHeader(nfgenmsg(nfgen_family: family, version: UInt8(NFNETLINK_V0), res_id: 0))
        switch type {
        case .getSetElem:
            if let table { b.put(UInt16(NFTA_SET_ELEM_LIST_TABLE.rawValue), string: table) }
            if let set { b.put(UInt16(NFTA_SET_ELEM_LIST_SET.rawValue), string: set) }
        case .getRule:
            if let table { b.put(UInt16(NFTA_RULE_TABLE.rawValue), string: table) }
        default:
            break
        }
        return b
    }

    /// Runs `parse` on every message with a fresh libnftnl object, keeping the non-nil results.
    static func decode<T>(_ messages: [NetlinkMessage], alloc: () -> OpaquePointer, free: (OpaquePointer) -> Void,
                          parse: (UnsafePointer<CNftnl.nlmsghdr>, OpaquePointer) -> Int32,
                          _ body: (OpaquePointer) -> T?) -> [T] {
        var out: [T] = []
        for m in messages {
            let o = alloc()
            defer { free(o) }
            let ok = m.withRawMessage { nlh in
                parse(UnsafeRawPointer(nlh).assumingMemoryBound(to: CNftnl.nlmsghdr.self), o) >= 0
            }
            if ok, let value = body(o) { out.append(value) }
        }
        return out
    }
}
