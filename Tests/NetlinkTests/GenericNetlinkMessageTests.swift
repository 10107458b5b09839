import NetAddress
@testable import Netlink
import Testing

// Netlink framing written out by hand from include/uapi/linux/netlink.h and genetlink.h, independent of
// NetlinkMessageBuilder: attributes are (u16 length incl. its 4-byte header, u16 type) + payload,
// padded to 4 bytes; a nest carries NLA_F_NESTED (0x8000) as the kernel's nla_nest_start sets it.
// Everything is host order (little endian here) except where the protocol says network order.

/// Hand-written netlink bytes (shared by the generic netlink and IPVS message tests).
enum UAPIBytes {
    /// One attribute.
    static func nla(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let length = 4 + payload.count
        let parts: [[UInt8]] = [le16(UInt16(length)), le16(type), payload, [UInt8](repeating: 0, count: (4 - length % 4) % 4)]
        return parts.flatMap { $0 }
    }
    /// A nested attribute holding `attributes`.
    static func nest(_ type: UInt16, _ attributes: [UInt8]...) -> [UInt8] { nla(type | 0x8000, attributes.flatMap { $0 }) }
    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xff) } }
    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func cString(_ s: String) -> [UInt8] { Array(s.utf8) + [0] }

    /// A whole generic netlink message: nlmsghdr {len, type, flags, seq, pid} + genlmsghdr {cmd, version, 0}.
    static func genlMessage(type: UInt16, flags: UInt16, sequence: UInt32 = 1, portID: UInt32 = 0, command: UInt8, version: UInt8,
                            _ attributes: [UInt8]...) -> [UInt8] {
        let body: [UInt8] = [command, version, 0, 0] + attributes.flatMap { $0 }
        let header: [[UInt8]] = [le32(UInt32(16 + body.count)), le16(type), le16(flags), le32(sequence), le32(portID)]
        return header.flatMap { $0 } + body
    }

    /// Parses bytes as the kernel's answer would be parsed.
    static func kernelMessage(_ bytes: [UInt8]) throws -> NetlinkMessage {
        try #require(bytes.withUnsafeBytes { NetlinkMessage.parse($0) }.first)
    }

    // NLM_F_* (netlink.h).
    static let flagRequest: UInt16 = 0x1, flagMulti: UInt16 = 0x2, flagAck: UInt16 = 0x4, flagDump: UInt16 = 0x300
}

private typealias U = UAPIBytes

@Suite struct GenericNetlinkMessageTests {
    @Test func getFamilyRequestIsTheLayoutNlctrlExpects() {
        let bytes = GenericNetlinkMessage.getFamilyRequest(name: "IPVS").bytes(sequence: 7)
        #expect(bytes == [
            32, 0, 0, 0,          // nlmsg_len: 16 + 4 + 12
            0x10, 0x00,           // nlmsg_type: GENL_ID_CTRL
            0x01, 0x00,           // NLM_F_REQUEST (NetlinkSocket.get adds NLM_F_ACK when it sends)
            7, 0, 0, 0,           // nlmsg_seq
            0, 0, 0, 0,           // nlmsg_pid
            3, 2, 0, 0,           // genlmsghdr: CTRL_CMD_GETFAMILY, version 2, reserved
            9, 0, 2, 0,           // CTRL_ATTR_FAMILY_NAME, 4 + 5 bytes
            0x49, 0x50, 0x56, 0x53, 0, 0, 0, 0,   // "IPVS\0" + 3 bytes of padding
        ])
        // The same through the test's own framing.
        #expect(bytes == U.genlMessage(type: 0x10, flags: U.flagRequest, sequence: 7, command: 3, version: 2, U.nla(2, U.cString("IPVS"))))
    }

    /// CTRL_CMD_NEWFAMILY as ctrl_fill_info writes it for nlctrl itself: name, id, version, hdrsize,
    /// maxattr, the ops list, then the multicast groups (a nest of nests numbered from 1).
    static let nlctrlReply = U.genlMessage(
        type: 0x10, flags: 0, sequence: 7, portID: 4242, command: 1, version: 2,
        U.nla(2, U.cString("nlctrl")), U.nla(1, U.le16(0x10)), U.nla(3, U.le32(2)), U.nla(4, U.le32(0)), U.nla(5, U.le32(10)),
        U.nest(6, U.nest(1, U.nla(1, U.le32(3)), U.nla(2, U.le32(0x0e))), U.nest(2, U.nla(1, U.le32(10)), U.nla(2, U.le32(0x0c)))),
        U.nest(7, U.nest(1, U.nla(2, U.le32(0x10)), U.nla(1, U.cString("notify")))))

    @Test func newFamilyReplyParsesIntoTheFamily() throws {
        let family = try #require(GenericNetlinkMessage.parseFamily(try U.kernelMessage(Self.nlctrlReply)))
        #expect(family == GenericNetlinkFamily(name: "nlctrl", id: 0x10, version: 2, headerSize: 0, maxAttribute: 10,
                                               multicastGroups: [.init(name: "notify", id: 0x10)]))
        #expect(family.description == "nlctrl (id 16, version 2)")
    }

    @Test func anIPVSFamilyWithAnAssignedIDParses() throws {
        let reply = U.genlMessage(type: 0x10, flags: 0, command: 1, version: 2,
                                U.nla(2, U.cString("IPVS")), U.nla(1, U.le16(0x23)), U.nla(3, U.le32(1)), U.nla(4, U.le32(0)), U.nla(5, U.le32(17)))
        let family = try #require(GenericNetlinkMessage.parseFamily(try U.kernelMessage(reply)))
        #expect(family.id == 0x23 && family.name == "IPVS" && family.version == 1 && family.maxAttribute == 17)
        #expect(family.multicastGroups.isEmpty)
    }

    @Test func otherMessagesAreNotFamilies() throws {
        // A GETFAMILY request (command 3), a message of another family, one without an id.
        #expect(GenericNetlinkMessage.parseFamily(try U.kernelMessage(GenericNetlinkMessage.getFamilyRequest(name: "IPVS").bytes(sequence: 1))) == nil)
        let otherType = U.genlMessage(type: 0x23, flags: 0, command: 1, version: 2, U.nla(2, U.cString("x")), U.nla(1, U.le16(0x23)))
        #expect(GenericNetlinkMessage.parseFamily(try U.kernelMessage(otherType)) == nil)
        let noID = U.genlMessage(type: 0x10, flags: 0, command: 1, version: 2, U.nla(2, U.cString("x")))
        #expect(GenericNetlinkMessage.parseFamily(try U.kernelMessage(noID)) == nil)
        let truncated = U.le32(18) + U.le16(0x10) + U.le16(0) + U.le32(1) + U.le32(0) + [1, 2]   // genlmsghdr cut short
        #expect(GenericNetlinkMessage.header(try U.kernelMessage(truncated)) == nil)
    }

    @Test func familyNotFoundSaysWhatIsMissing() {
        let plain = GenericNetlinkError.familyNotFound(family: "keel-none", module: nil)
        #expect(plain.isFamilyNotFound)
        #expect(plain.description == "generic netlink family \"keel-none\" does not exist in this kernel (CTRL_CMD_GETFAMILY: ENOENT)")
        let ipvs = GenericNetlinkError.familyNotFound(family: "IPVS", module: "ip_vs")
        #expect(ipvs.description.hasPrefix("IPVS is not available in this kernel: kernel module ip_vs is not loaded (modprobe ip_vs"))
        let other = GenericNetlinkError.netlink(NetlinkError(.getFamily, "generic netlink family IPVS", errno: .permissionDenied))
        #expect(!other.isFamilyNotFound)
        #expect(other.description.hasPrefix("CTRL_CMD_GETFAMILY generic netlink family IPVS: "))
    }
}
