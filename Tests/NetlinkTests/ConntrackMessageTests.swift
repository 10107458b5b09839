import CMnl
import Glibc
import NetAddress
@testable import Netlink
import Testing

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func parsed(_ m: NetlinkMessageBuilder, sequence: UInt32 = 1) throws -> NetlinkMessage {
    let bytes = m.bytes(sequence: sequence)
    return try #require(bytes.withUnsafeBytes { NetlinkMessage.parse(UnsafeRawBufferPointer($0)) }.first)
}

/// A UDP flow client 10.1.0.2:40000 → VIP 10.96.0.10:53, DNATed to backend 10.2.0.2:8080.
private let dnatedUDP = ConntrackEntry(
    family: .ipv4, proto: .udp,
    original: ConntrackTuple(source: ip("10.1.0.2"), destination: ip("10.96.0.10"), sourcePort: 40000, destinationPort: 53),
    reply: ConntrackTuple(source: ip("10.2.0.2"), destination: ip("10.1.0.2"), sourcePort: 8080, destinationPort: 40000),
    mark: 0x4000, status: [.seenReply, .confirmed, .destinationNAT], timeout: 27, zone: 0, id: 0xdead_beef)

@Suite struct ConntrackMessageTests {
    @Test func deleteMessageCarriesTheOriginalTupleAndParsesBack() throws {
        let msg = try parsed(ConntrackMessage.deleteRequest(dnatedUDP), sequence: 9)
        #expect(msg.type == UInt16(NFNL_SUBSYS_CTNETLINK) << 8 | UInt16(IPCTNL_MSG_CT_DELETE.rawValue))
        #expect(msg.type == 0x0102)
        #expect(msg.flags == UInt16(NLM_F_REQUEST | NLM_F_ACK))
        let hdr = try #require(msg.familyHeader(nfgenmsg.self))
        #expect(hdr.nfgen_family == UInt8(AF_INET) && hdr.version == UInt8(NFNETLINK_V0) && hdr.res_id == 0)

        let attrs = msg.attributes(afterHeaderOf: MemoryLayout<nfgenmsg>.size)
        // A delete names the original direction only; the reply tuple, mark and status are not keys.
        #expect(attrs.ordered.map(\.type) == [UInt16(CTA_TUPLE_ORIG.rawValue), UInt16(CTA_ID.rawValue)])
        #expect(attrs.be32(UInt16(CTA_ID.rawValue)) == 0xdead_beef)
        let orig = try #require(attrs.nested(UInt16(CTA_TUPLE_ORIG.rawValue)))
        let back = try #require(ConntrackMessage.parseTuple(orig))
        #expect(back.proto == .udp)
        #expect(back.tuple == dnatedUDP.original)

        // Ports are big endian on the wire: 53 is 00 35.
        let l4 = try #require(orig.nested(UInt16(CTA_TUPLE_PROTO.rawValue)))
        #expect(l4[UInt16(CTA_PROTO_DST_PORT.rawValue)] == [0x00, 0x35])
        #expect(l4[UInt16(CTA_PROTO_NUM.rawValue)] == [17])
        let ipNest = try #require(orig.nested(UInt16(CTA_TUPLE_IP.rawValue)))
        #expect(ipNest[UInt16(CTA_IP_V4_DST.rawValue)] == [10, 96, 0, 10])

        // The nests carry NLA_F_NESTED, as the kernel's own messages do.
        let bytes = ConntrackMessage.deleteRequest(dnatedUDP).bytes(sequence: 1)
        let firstAttrType = UInt16(bytes[16 + 4 + 2]) | UInt16(bytes[16 + 4 + 3]) << 8
        #expect(firstAttrType == UInt16(NLA_F_NESTED) | UInt16(CTA_TUPLE_ORIG.rawValue))
    }

    @Test func deleteInAZoneNamesTheZoneAndIPv6UsesV6Attributes() throws {
        var e = dnatedUDP
        e.family = .ipv6
        e.original = ConntrackTuple(source: ip("fd00::2"), destination: ip("fd96::10"), sourcePort: 1, destinationPort: 2)
        e.zone = 7
        e.id = nil
        let attrs = try parsed(ConntrackMessage.deleteRequest(e)).attributes(afterHeaderOf: MemoryLayout<nfgenmsg>.size)
        #expect(attrs.be16(UInt16(CTA_ZONE.rawValue)) == 7)
        #expect(!attrs.has(UInt16(CTA_ID.rawValue)))
        let ipNest = try #require(attrs.nested(UInt16(CTA_TUPLE_ORIG.rawValue))?.nested(UInt16(CTA_TUPLE_IP.rawValue)))
        #expect(ipNest[UInt16(CTA_IP_V6_SRC.rawValue)] == ip("fd00::2").bytes)
        #expect(!ipNest.has(UInt16(CTA_IP_V4_SRC.rawValue)))
    }

    @Test func flushHasNoTupleAndDumpAsksForTheFamily() throws {
        let flush = try parsed(ConntrackMessage.flushRequest(family: .ipv6))
        #expect(flush.type == 0x0102)
        #expect(flush.familyHeader(nfgenmsg.self)?.nfgen_family == UInt8(AF_INET6))
        #expect(flush.attributes(afterHeaderOf: MemoryLayout<nfgenmsg>.size).ordered.isEmpty)

        let dump = try parsed(ConntrackMessage.dumpRequest(family: nil))
        #expect(dump.type == 0x0101)   // IPCTNL_MSG_CT_GET
        #expect(dump.flags & UInt16(NLM_F_DUMP) == UInt16(NLM_F_DUMP))
        #expect(dump.familyHeader(nfgenmsg.self)?.nfgen_family == UInt8(AF_UNSPEC))
    }

    /// An IPCTNL_MSG_CT_NEW as the kernel dumps it (ctnetlink_fill_info): both tuples, then
    /// status, timeout, mark, counters and protoinfo we don't model, use, id and a zone.
    @Test func dumpedEntryParses() throws {
        let m = NetlinkMessageBuilder(type: UInt16(NFNL_SUBSYS_CTNETLINK) << 8 | UInt16(IPCTNL_MSG_CT_NEW.rawValue), flags: [.init(rawValue: UInt16(NLM_F_MULTI))])
        m.putFamilyHeader(nfgenmsg(nfgen_family: UInt8(AF_INET), version: 0, res_id: 0))
        func tuple(_ attr: ctattr_type, _ src: [UInt8], _ dst: [UInt8], _ sport: UInt16, _ dport: UInt16) {
            m.nest(UInt16(attr.rawValue)) {
                m.nest(UInt16(CTA_TUPLE_IP.rawValue)) {
                    m.put(UInt16(CTA_IP_V4_SRC.rawValue), bytes: src)
                    m.put(UInt16(CTA_IP_V4_DST.rawValue), bytes: dst)
                }
                m.nest(UInt16(CTA_TUPLE_PROTO.rawValue)) {
                    m.put(UInt16(CTA_PROTO_NUM.rawValue), u8: 17)
                    m.put(UInt16(CTA_PROTO_SRC_PORT.rawValue), bytes: [UInt8(sport >> 8), UInt8(sport & 0xff)])
                    m.put(UInt16(CTA_PROTO_DST_PORT.rawValue), bytes: [UInt8(dport >> 8), UInt8(dport & 0xff)])
                }
            }
        }
        tuple(CTA_TUPLE_ORIG, [10, 1, 0, 2], [10, 96, 0, 10], 40000, 53)
        tuple(CTA_TUPLE_REPLY, [10, 2, 0, 2], [10, 1, 0, 2], 8080, 40000)
        m.put(UInt16(CTA_STATUS.rawValue), bytes: [0, 0, 0, 0x2a])           // SEEN_REPLY | CONFIRMED | DST_NAT
        m.put(UInt16(CTA_TIMEOUT.rawValue), bytes: [0, 0, 0, 27])
        m.put(UInt16(CTA_MARK.rawValue), bytes: [0, 0, 0x40, 0])
        m.nest(UInt16(CTA_COUNTERS_ORIG.rawValue)) { m.put(1, bytes: [UInt8](repeating: 0, count: 8)) }
        m.put(UInt16(CTA_USE.rawValue), bytes: [0, 0, 0, 1])
        m.put(UInt16(CTA_ID.rawValue), bytes: [0xde, 0xad, 0xbe, 0xef])
        let entry = try #require(ConntrackMessage.parse(try parsed(m)))
        #expect(entry == dnatedUDP)
        #expect(entry.status.contains(.destinationNAT) && !entry.status.contains(.sourceNAT))
        #expect(entry.description == "udp 10.1.0.2:40000 -> 10.96.0.10:53 reply 10.2.0.2:8080 -> 10.1.0.2:40000 mark 16384")

        // What we would send to delete it names the same tuple.
        let del = try parsed(ConntrackMessage.deleteRequest(entry)).attributes(afterHeaderOf: MemoryLayout<nfgenmsg>.size)
        #expect(del.nested(UInt16(CTA_TUPLE_ORIG.rawValue)).flatMap(ConntrackMessage.parseTuple)?.tuple == entry.original)
    }

    @Test func icmpEntryKeepsIdTypeCodeForItsDelete() throws {
        let echo = ConntrackEntry(family: .ipv4, proto: .icmp,
            original: ConntrackTuple(source: ip("10.1.0.2"), destination: ip("10.2.0.2"), icmp: .init(id: 77, type: 8, code: 0)),
            reply: ConntrackTuple(source: ip("10.2.0.2"), destination: ip("10.1.0.2"), icmp: .init(id: 77, type: 0, code: 0)))
        let attrs = try parsed(ConntrackMessage.deleteRequest(echo)).attributes(afterHeaderOf: MemoryLayout<nfgenmsg>.size)
        let l4 = try #require(attrs.nested(UInt16(CTA_TUPLE_ORIG.rawValue))?.nested(UInt16(CTA_TUPLE_PROTO.rawValue)))
        #expect(l4.be16(UInt16(CTA_PROTO_ICMP_ID.rawValue)) == 77)
        #expect(l4.u8(UInt16(CTA_PROTO_ICMP_TYPE.rawValue)) == 8)
        #expect(!l4.has(UInt16(CTA_PROTO_SRC_PORT.rawValue)))
    }

    @Test func messagesOfOtherTypesAreNotEntries() throws {
        #expect(ConntrackMessage.parse(try parsed(ConntrackMessage.deleteRequest(dnatedUDP))) == nil)
        let noTuples = NetlinkMessageBuilder(type: 0x0100)
        noTuples.putFamilyHeader(nfgenmsg(nfgen_family: UInt8(AF_INET), version: 0, res_id: 0))
        #expect(ConntrackMessage.parse(try parsed(noTuples)) == nil)
    }

    @Test func deleteErrorsAreTypedAndENOENTIsAlreadyGone() {
        let gone = NetlinkError(.delConntrack, dnatedUDP.description, errno: .noSuchFileOrDirectory)
        #expect(gone.isAlreadyGone)
        #expect(gone.description.hasPrefix("IPCTNL_MSG_CT_DELETE udp 10.1.0.2:40000 -> 10.96.0.10:53"))
        #expect(!NetlinkError(.delConntrack, "x", errno: .permissionDenied).isAlreadyGone)
        #expect(!NetlinkError(.dump("conntrack"), "conntrack", errno: .noSuchFileOrDirectory).isAlreadyGone)
    }
}

@Suite struct ConntrackFilterTests {
    static let tcpSameFlow: ConntrackEntry = {
        var e = dnatedUDP
        e.proto = .tcp
        return e
    }()
    static let notDNATed: ConntrackEntry = {
        var e = dnatedUDP
        e.reply.source = e.original.destination
        e.reply.sourcePort = 53
        return e
    }()

    @Test(arguments: [
        ("removed endpoint matches its DNATed flow", ConntrackFilter.removedEndpoint(ip("10.2.0.2")), dnatedUDP, true),
        ("… narrowed to service and ports", .removedEndpoint(ip("10.2.0.2"), port: 8080, service: ip("10.96.0.10"), servicePort: 53), dnatedUDP, true),
        ("… another endpoint port", .removedEndpoint(ip("10.2.0.2"), port: 9090), dnatedUDP, false),
        ("… another service", .removedEndpoint(ip("10.2.0.2"), service: ip("10.96.0.11")), dnatedUDP, false),
        ("… another endpoint", .removedEndpoint(ip("10.2.0.3")), dnatedUDP, false),
        ("UDP-only filter leaves TCP", .removedEndpoint(ip("10.2.0.2")), tcpSameFlow, false),
        ("service matches entries to VIP:port", .service(ip("10.96.0.10"), port: 53), notDNATed, true),
        ("… and DNATed ones without a keep list", .service(ip("10.96.0.10"), port: 53), dnatedUDP, true),
        ("… keeping serving endpoints", .service(ip("10.96.0.10"), port: 53, keeping: [ip("10.2.0.2")]), dnatedUDP, false),
        ("… other port", .service(ip("10.96.0.10"), port: 54), notDNATed, false),
        ("family mismatch", ConntrackFilter(family: .ipv6), dnatedUDP, false),
        ("mark", ConntrackFilter(mark: 0x4000), dnatedUDP, true),
        ("empty filter matches all", ConntrackFilter(), tcpSameFlow, true),
    ])
    func matches(name: String, filter: ConntrackFilter, entry: ConntrackEntry, expected: Bool) {
        #expect(filter.matches(entry) == expected, "\(name)")
    }

    @Test func describesItselfAsConntrackOptions() {
        #expect(ConntrackFilter.removedEndpoint(ip("10.2.0.2"), service: ip("10.96.0.10"), servicePort: 53).description
            == "-f ipv4 -p udp --orig-dst 10.96.0.10 --reply-src 10.2.0.2 --orig-port-dst 53")
        #expect(ConntrackFilter().description == "(all)")
    }
}
