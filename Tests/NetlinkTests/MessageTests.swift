import CMnl
import Glibc
import NetAddress
@testable import Netlink
import SystemPackage
import Testing

@Suite struct MessageBuildingTests {
    @Test func headerAndAttributesAreAlignedAndLengthed() throws {
        let m = NetlinkMessageBuilder(type: UInt16(RTM_NEWLINK), flags: [.ack, .create, .exclusive])
        m.putFamilyHeader(ifinfomsg(ifi_family: 0, __ifi_pad: 0, ifi_type: 0, ifi_index: 7, ifi_flags: 0, ifi_change: 0))
        m.put(3, string: "abc")          // 4 + 4 bytes ("abc\0"): no padding
        m.put(4, u8: 9)                  // 4 + 1 bytes, padded to 8
        m.put(5, u32: 0xdead_beef)       // 4 + 4
        let bytes = m.bytes(sequence: 77)
        // nlmsghdr (16) + ifinfomsg (16) + 8 + 8 + 8
        #expect(bytes.count == 56)
        let msg = try #require(NetlinkMessage.parse(bytes.withUnsafeBytes { UnsafeRawBufferPointer($0) }).first)
        #expect(msg.type == UInt16(RTM_NEWLINK))
        #expect(msg.sequence == 77)
        #expect(msg.flags == UInt16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL))
        #expect(msg.familyHeader(ifinfomsg.self)?.ifi_index == 7)
        let attrs = msg.attributes(afterHeaderOf: MemoryLayout<ifinfomsg>.size)
        #expect(attrs.string(3) == "abc")
        #expect(attrs.u8(4) == 9)
        #expect(attrs.u32(5) == 0xdead_beef)
        // The u8 attribute is padded: its length field says 5, the next attribute starts 8 bytes later.
        #expect(bytes[48] == 8 && bytes[40] == 5)
    }

    @Test func nestedAttributesCarryTheirTotalLength() throws {
        let m = NetlinkMessageBuilder(type: 16)
        m.putFamilyHeader(UInt32(0))
        m.nest(18) {
            m.put(1, string: "vxlan")
            m.nest(2) {
                m.put(1, u32: 42)
                m.put(15, be16: 8472)
            }
        }
        let bytes = m.bytes(sequence: 1)
        let msg = try #require(NetlinkMessage.parse(bytes.withUnsafeBytes { UnsafeRawBufferPointer($0) }).first)
        let top = msg.attributes(afterHeaderOf: 4)
        let info = try #require(top.nested(18))
        #expect(info.string(1) == "vxlan")
        let data = try #require(info.nested(2))
        #expect(data.u32(1) == 42)
        #expect(data.be16(15) == 8472)
        // nest header (4) + "vxlan\0" (4+6 → 12) + inner nest (4 + 8 + 8) = 36
        #expect(top[18]?.count == 32)
    }

    @Test func multipleMessagesInOneBufferAreSplit() {
        var buffer: [UInt8] = []
        for seq in 1...3 {
            let m = NetlinkMessageBuilder(type: UInt16(RTM_NEWROUTE))
            m.put(1, u32: UInt32(seq))
            buffer += m.bytes(sequence: UInt32(seq))
        }
        let msgs = buffer.withUnsafeBytes { NetlinkMessage.parse(UnsafeRawBufferPointer($0)) }
        #expect(msgs.map(\.sequence) == [1, 2, 3])
        #expect(msgs.map { NetlinkAttributes(parsing: $0.payload).u32(1) } == [1, 2, 3])
    }

    @Test func truncatedAttributesStopParsing() {
        // A length field pointing past the end must not be read.
        let bytes: [UInt8] = [8, 0, 1, 0, 1, 2, 3, 4, 200, 0, 2, 0, 9]
        let attrs = NetlinkAttributes(parsing: bytes)
        #expect(attrs.u32(1) == 0x0403_0201)
        #expect(attrs[2] == nil)
    }

    @Test func errorMessageCarriesCodeAndExtendedAckText() {
        // NLMSG_ERROR with NLM_F_CAPPED | NLM_F_ACK_TLVS: error, the original header, then NLMSGERR_ATTR_MSG.
        var payload: [UInt8] = withUnsafeBytes(of: Int32(-EEXIST)) { Array($0) }
        payload += [UInt8](repeating: 0, count: MemoryLayout<nlmsghdr>.size)
        let text = Array("File exists".utf8) + [0]
        payload += withUnsafeBytes(of: UInt16(4 + text.count)) { Array($0) } + withUnsafeBytes(of: UInt16(1)) { Array($0) } + text
        let msg = NetlinkMessage(type: UInt16(NLMSG_ERROR), flags: UInt16(NLM_F_CAPPED | NLM_F_ACK_TLVS), sequence: 5, portID: 0, payload: payload)
        let (code, message) = NetlinkSocket.parseError(msg)
        #expect(code == -EEXIST)
        #expect(message == "File exists")
    }
}

@Suite struct WireEncodingTests {
    @Test func linkCreateRoundTripsThroughTheParser() throws {
        let spec = LinkSpec(name: "flannel.1", kind: .vxlan(VXLANAttributes(vni: 1, port: 8472, local: IPAddress("192.168.50.11"),
                                                                            underlayIndex: 2, learning: false)),
                            mtu: 1450, mac: MACAddress("02:00:00:00:00:01"), up: true)
        let bytes = LinkMessage.create(spec).bytes(sequence: 1)
        var msg = try #require(NetlinkMessage.parse(bytes.withUnsafeBytes { UnsafeRawBufferPointer($0) }).first)
        msg.type = UInt16(RTM_NEWLINK)
        let link = try #require(LinkMessage.parse(msg))
        #expect(link.name == "flannel.1" && link.kind == "vxlan" && link.mtu == 1450 && link.isUp)
        #expect(link.mac == MACAddress("02:00:00:00:00:01"))
        #expect(link.vxlan == VXLANAttributes(vni: 1, port: 8472, local: IPAddress("192.168.50.11"), underlayIndex: 2, learning: false))
    }

    @Test func vethPeerCarriesItsOwnHeaderAndNamespace() throws {
        let ns = try NetworkNamespace(path: "/proc/self/ns/net")
        let bytes = LinkMessage.create(LinkSpec(name: "veth1234", kind: .veth(peerName: "eth0", peerNamespace: ns))).bytes(sequence: 1)
        let msg = try #require(NetlinkMessage.parse(bytes.withUnsafeBytes { UnsafeRawBufferPointer($0) }).first)
        let info = try #require(msg.attributes(afterHeaderOf: MemoryLayout<ifinfomsg>.size).nested(UInt16(IFLA_LINKINFO)))
        let peer = try #require(info.nested(UInt16(IFLA_INFO_DATA))?[UInt16(VETH_INFO_PEER)])
        // The peer nest starts with an ifinfomsg, then the peer's own attributes.
        let peerAttrs = NetlinkAttributes(parsing: peer.dropFirst(MemoryLayout<ifinfomsg>.size))
        #expect(peerAttrs.string(UInt16(IFLA_IFNAME)) == "eth0")
        #expect(peerAttrs.u32(UInt16(IFLA_NET_NS_FD)) == UInt32(ns.fileDescriptor))
    }

    @Test(arguments: [
        Route(destination: CIDR("10.244.2.0/24")!, gateway: IPAddress("192.168.50.12"), device: 3, onlink: true, metric: 10, proto: .keel),
        Route(destination: CIDR("10.80.0.0/24")!, device: 5, table: RouteTable(rawValue: 1000), proto: .keel),
        Route(destination: CIDR("fd00:1::/64")!, gateway: IPAddress("fd00::1"), device: 4),
        Route(destination: CIDR("0.0.0.0/0")!, gateway: IPAddress("10.0.0.1")),
    ])
    func routeRoundTrips(route: Route) throws {
        let bytes = RouteMessage.build(route, type: Int32(RTM_NEWROUTE), flags: [.ack, .create]).bytes(sequence: 1)
        let msg = try #require(NetlinkMessage.parse(bytes.withUnsafeBytes { UnsafeRawBufferPointer($0) }).first)
        #expect(RouteMessage.parse(msg) == route)
    }

    @Test func routeDefaultsScopeLikeIproute() {
        #expect(Route(destination: CIDR("10.0.0.0/24")!, device: 1).scope == .link)
        #expect(Route(destination: CIDR("10.0.0.0/24")!, gateway: IPAddress("10.1.1.1")).scope == .universe)
        #expect(Route(destination: CIDR("10.0.0.7/24")!).destination == CIDR("10.0.0.0/24"))
    }

    @Test func addressAndNeighbourRoundTrip() throws {
        let a = InterfaceAddress(linkIndex: 3, cidr: CIDR("10.244.1.1/24")!, broadcast: IPAddress("10.244.1.255"), skipDuplicateDetection: true)
        let ab = AddressMessage.build(a, type: Int32(RTM_NEWADDR), flags: []).bytes(sequence: 1)
        let am = try #require(NetlinkMessage.parse(ab.withUnsafeBytes { UnsafeRawBufferPointer($0) }).first)
        #expect(AddressMessage.parse(am) == a)

        let f = FDBEntry(linkIndex: 9, mac: MACAddress("02:aa:bb:cc:dd:ee")!, destination: IPAddress("192.168.50.12"))
        let fb = NeighbourMessage.build(f, type: Int32(RTM_NEWNEIGH), flags: []).bytes(sequence: 1)
        let fm = try #require(NetlinkMessage.parse(fb.withUnsafeBytes { UnsafeRawBufferPointer($0) }).first)
        #expect(NeighbourMessage.parseFDB(fm) == f)
        #expect(NeighbourMessage.parseNeighbour(fm) == nil)
    }
}

@Suite struct ErrorMappingTests {
    @Test(arguments: [
        (NetlinkOperation.delLink, Errno.operationNotSupportedByDevice, true),
        (.delRoute, .noSuchProcess, true),
        (.delAddress, .addressNotAvailable, true),
        (.delNeighbour, .noSuchFileOrDirectory, true),
        (.newLink, .noSuchFileOrDirectory, false),   // only deletes can be "already gone"
        (.delLink, .resourceBusy, false),
    ])
    func alreadyGone(operation: NetlinkOperation, errno: Errno, expected: Bool) {
        #expect(NetlinkError(operation, "x", errno: errno).isAlreadyGone == expected)
    }

    @Test func descriptionNamesOperationSubjectErrnoAndKernelText() {
        let e = NetlinkError(.newRoute, "10.0.0.0/24 via 1.2.3.4", errno: .invalidArgument, kernelMessage: "Nexthop has invalid gateway")
        #expect(e.description == "RTM_NEWROUTE 10.0.0.0/24 via 1.2.3.4: Invalid argument (errno 22): Nexthop has invalid gateway")
    }

    @Test(arguments: ["eth0", "veth1234567890a", "flannel.1"])
    func validInterfaceNames(name: String) { #expect(InterfaceName(name) != nil) }

    @Test(arguments: ["", "veth1234567890ab", "a/b", ".", "..", "has space", "a:b"])
    func invalidInterfaceNames(name: String) { #expect(InterfaceName(name) == nil) }
}
