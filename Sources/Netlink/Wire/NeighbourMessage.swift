import CMnl
import Glibc
import NetAddress

/// RTM_*NEIGH encoding and decoding, for IP neighbours (AF_INET/AF_INET6) and FDB entries (AF_BRIDGE).
enum NeighbourMessage {
    static func header(family: UInt8, index: Int32, state: UInt16, flags: UInt8) -> ndmsg {
        ndmsg(ndm_family: family, ndm_pad1: 0, ndm_pad2: 0, ndm_ifindex: index, ndm_state: state, ndm_flags: flags, ndm_type: 0)
    }

    static func build(_ n: Neighbour, type: Int32, flags: NetlinkFlags) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: u16(type), flags: flags)
        m.putFamilyHeader(header(family: n.address.family.rawValue, index: n.linkIndex, state: n.state.rawValue, flags: 0))
        m.put(u16(NDA_DST), bytes: n.address.bytes)
        if let mac = n.mac { m.put(u16(NDA_LLADDR), bytes: mac.bytes) }
        return m
    }

    static func build(_ e: FDBEntry, type: Int32, flags: NetlinkFlags) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: u16(type), flags: flags)
        var ntf: UInt8 = 0
        if e.onSelf { ntf |= u8(NTF_SELF) }
        if e.onMaster { ntf |= u8(NTF_MASTER) }
        m.putFamilyHeader(header(family: UInt8(AF_BRIDGE), index: e.linkIndex, state: e.state.rawValue, flags: ntf))
        m.put(u16(NDA_LLADDR), bytes: e.mac.bytes)
        if let dst = e.destination { m.put(u16(NDA_DST), bytes: dst.bytes) }
        if let vlan = e.vlan { m.put(u16(NDA_VLAN), u16: vlan) }
        return m
    }

    static func dumpRequest(family: UInt8) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: u16(RTM_GETNEIGH), flags: .dump)
        m.putFamilyHeader(header(family: family, index: 0, state: 0, flags: 0))
        return m
    }

    static func parseNeighbour(_ message: NetlinkMessage) -> Neighbour? {
        guard message.type == u16(RTM_NEWNEIGH), let hdr = message.familyHeader(ndmsg.self),
              Int32(hdr.ndm_family) == AF_INET || Int32(hdr.ndm_family) == AF_INET6 else { return nil }
        let attrs = message.attributes(afterHeaderOf: MemoryLayout<ndmsg>.size)
        guard let address = attrs[u16(NDA_DST)].flatMap({ IPAddress(bytes: $0) }) else { return nil }
        return Neighbour(linkIndex: hdr.ndm_ifindex, address: address,
                         mac: attrs[u16(NDA_LLADDR)].flatMap { MACAddress(bytes: $0) },
                         state: NeighbourState(rawValue: hdr.ndm_state))
    }

    static func parseFDB(_ message: NetlinkMessage) -> FDBEntry? {
        guard message.type == u16(RTM_NEWNEIGH), let hdr = message.familyHeader(ndmsg.self),
              Int32(hdr.ndm_family) == AF_BRIDGE else { return nil }
        let attrs = message.attributes(afterHeaderOf: MemoryLayout<ndmsg>.size)
        guard let mac = attrs[u16(NDA_LLADDR)].flatMap({ MACAddress(bytes: $0) }) else { return nil }
        return FDBEntry(linkIndex: hdr.ndm_ifindex, mac: mac,
                        destination: attrs[u16(NDA_DST)].flatMap { IPAddress(bytes: $0) },
                        state: NeighbourState(rawValue: hdr.ndm_state),
                        onSelf: hdr.ndm_flags & u8(NTF_SELF) != 0, onMaster: hdr.ndm_flags & u8(NTF_MASTER) != 0,
                        vlan: attrs.u16(u16(NDA_VLAN)))
    }
}
