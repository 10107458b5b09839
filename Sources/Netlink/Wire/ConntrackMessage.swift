import CMnl
import Glibc
import NetAddress

/// ctnetlink (NFNL_SUBSYS_CTNETLINK on NETLINK_NETFILTER) encoding and decoding.
///
/// Layout: nlmsghdr (type = subsystem << 8 | IPCTNL_MSG_CT_*) + nfgenmsg (family, NFNETLINK_V0,
/// res_id 0), then CTA_* attributes. Tuples are nests: CTA_TUPLE_IP { CTA_IP_V4_SRC/DST or
/// CTA_IP_V6_SRC/DST } and CTA_TUPLE_PROTO { CTA_PROTO_NUM (u8), CTA_PROTO_SRC_PORT/DST_PORT
/// (be16) or the ICMP id/type/code }. Every scalar of ctnetlink is big endian: status, mark,
/// timeout, id (be32) and zone (be16).
enum ConntrackMessage {
    static func type(_ message: cntl_msg_types) -> UInt16 {
        u16(NFNL_SUBSYS_CTNETLINK) << 8 | u16(message)
    }

    /// IPCTNL_MSG_CT_GET with NLM_F_DUMP: every entry of `family` (nil: both).
    static func dumpRequest(family: AddressFamily?) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: type(IPCTNL_MSG_CT_GET), flags: .dump)
        m.putFamilyHeader(header(family))
        return m
    }

    /// IPCTNL_MSG_CT_DELETE naming one entry by its original tuple (and zone, and id when known).
    static func deleteRequest(_ entry: ConntrackEntry) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: type(IPCTNL_MSG_CT_DELETE), flags: [.ack])
        m.putFamilyHeader(header(entry.family))
        putTuple(m, u16(CTA_TUPLE_ORIG), entry.original, proto: entry.proto)
        if entry.zone != 0 { m.put(u16(CTA_ZONE), be16: entry.zone) }
        if let id = entry.id { m.put(u16(CTA_ID), u32: id.bigEndian) }
        return m
    }

    /// IPCTNL_MSG_CT_DELETE without a tuple: the kernel flushes the table (entries of `family`).
    static func flushRequest(family: AddressFamily?) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: type(IPCTNL_MSG_CT_DELETE), flags: [.ack])
        m.putFamilyHeader(header(family))
        return m
    }

    /// An entry from an IPCTNL_MSG_CT_NEW message (what dumps and GET answer with); nil for other
    /// messages and for entries without both tuples.
    static func parse(_ message: NetlinkMessage) -> ConntrackEntry? {
        guard message.type == type(IPCTNL_MSG_CT_NEW), let hdr = message.familyHeader(nfgenmsg.self) else { return nil }
        let family: AddressFamily
        switch Int32(hdr.nfgen_family) {
        case AF_INET: family = .ipv4
        case AF_INET6: family = .ipv6
        default: return nil
        }
        let attrs = message.attributes(afterHeaderOf: MemoryLayout<nfgenmsg>.size)
        guard let orig = attrs.nested(u16(CTA_TUPLE_ORIG)).flatMap(parseTuple),
              let reply = attrs.nested(u16(CTA_TUPLE_REPLY)).flatMap(parseTuple) else { return nil }
        return ConntrackEntry(family: family, proto: orig.proto, original: orig.tuple, reply: reply.tuple,
                              mark: attrs.be32(u16(CTA_MARK)) ?? 0,
                              status: ConntrackStatus(rawValue: attrs.be32(u16(CTA_STATUS)) ?? 0),
                              timeout: attrs.be32(u16(CTA_TIMEOUT)),
                              zone: attrs.be16(u16(CTA_ZONE)) ?? 0,
                              id: attrs.be32(u16(CTA_ID)))
    }

    // MARK: - Tuples

    static func putTuple(_ m: NetlinkMessageBuilder, _ attribute: UInt16, _ t: ConntrackTuple, proto: ConntrackProtocol) {
        m.nest(attribute) {
            m.nest(u16(CTA_TUPLE_IP)) {
                m.put(t.source.isIPv4 ? u16(CTA_IP_V4_SRC) : u16(CTA_IP_V6_SRC), bytes: t.source.bytes)
                m.put(t.destination.isIPv4 ? u16(CTA_IP_V4_DST) : u16(CTA_IP_V6_DST), bytes: t.destination.bytes)
            }
            m.nest(u16(CTA_TUPLE_PROTO)) {
                m.put(u16(CTA_PROTO_NUM), u8: proto.rawValue)
                if let icmp = t.icmp {
                    let v6 = proto == .icmpv6
                    m.put(u16(v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID), be16: icmp.id)
                    m.put(u16(v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE), u8: icmp.type)
                    m.put(u16(v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE), u8: icmp.code)
                } else {
                    if let p = t.sourcePort { m.put(u16(CTA_PROTO_SRC_PORT), be16: p) }
                    if let p = t.destinationPort { m.put(u16(CTA_PROTO_DST_PORT), be16: p) }
                }
            }
        }
    }

    static func parseTuple(_ attrs: NetlinkAttributes) -> (tuple: ConntrackTuple, proto: ConntrackProtocol)? {
        guard let ip = attrs.nested(u16(CTA_TUPLE_IP)), let l4 = attrs.nested(u16(CTA_TUPLE_PROTO)),
              let num = l4.u8(u16(CTA_PROTO_NUM)) else { return nil }
        let src = (ip[u16(CTA_IP_V4_SRC)] ?? ip[u16(CTA_IP_V6_SRC)]).flatMap { IPAddress(bytes: $0) }
        let dst = (ip[u16(CTA_IP_V4_DST)] ?? ip[u16(CTA_IP_V6_DST)]).flatMap { IPAddress(bytes: $0) }
        guard let src, let dst else { return nil }
        let proto = ConntrackProtocol(rawValue: num)
        var icmp: ConntrackTuple.ICMPKey?
        let v6 = proto == .icmpv6
        if let id = l4.be16(u16(v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID)) {
            icmp = .init(id: id, type: l4.u8(u16(v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE)) ?? 0,
                         code: l4.u8(u16(v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE)) ?? 0)
        }
        return (ConntrackTuple(source: src, destination: dst, sourcePort: l4.be16(u16(CTA_PROTO_SRC_PORT)),
                               destinationPort: l4.be16(u16(CTA_PROTO_DST_PORT)), icmp: icmp), proto)
    }

    static func header(_ family: AddressFamily?) -> nfgenmsg {
        nfgenmsg(nfgen_family: family?.rawValue ?? UInt8(AF_UNSPEC), version: UInt8(NFNETLINK_V0), res_id: 0)
    }
}

extension NetlinkAttributes {
    /// A 32-bit value in network byte order (every ctnetlink scalar).
    func be32(_ type: UInt16) -> UInt32? { u32(type).map { UInt32(bigEndian: $0) } }
}
