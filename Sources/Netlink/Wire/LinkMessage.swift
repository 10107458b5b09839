import CMnl
import Glibc
import NetAddress


/// RTM_*LINK encoding and decoding.
enum LinkMessage {
    static func header(family: UInt8 = UInt8(AF_UNSPEC), index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0) -> ifinfomsg {
        ifinfomsg(ifi_family: family, __ifi_pad: 0, ifi_type: 0, ifi_index: index, ifi_flags: flags, ifi_change: change)
    }

    static func addressing(_ ref: LinkRef, type: UInt16, flags: NetlinkFlags,
                           ifFlags: UInt32 = 0, change: UInt32 = 0, family: UInt8 = UInt8(AF_UNSPEC)) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: type, flags: flags)
        switch ref {
        case .index(let i):
            m.putFamilyHeader(header(family: family, index: i, flags: ifFlags, change: change))
        case .name(let n):
            m.putFamilyHeader(header(family: family, flags: ifFlags, change: change))
            m.put(u16(IFLA_IFNAME), string: n.value)
        }
        return m
    }

    /// RTM_NEWLINK for a new link with everything set in the same request.
    static func create(_ spec: LinkSpec) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: u16(RTM_NEWLINK), flags: [.ack, .create, .exclusive])
        let up = spec.up ? UInt32(IFF_UP) : 0
        m.putFamilyHeader(header(flags: up, change: up))
        m.put(u16(IFLA_IFNAME), string: spec.name.value)
        if let mtu = spec.mtu { m.put(u16(IFLA_MTU), u32: mtu) }
        if let mac = spec.mac { m.put(u16(IFLA_ADDRESS), bytes: mac.bytes) }
        if let master = spec.masterIndex { m.put(u16(IFLA_MASTER), u32: UInt32(bitPattern: master)) }
        m.nest(u16(IFLA_LINKINFO)) {
            m.put(u16(IFLA_INFO_KIND), string: spec.kind.kindName)
            switch spec.kind {
            case let .veth(peerName, peerNamespace, peerMAC):
                m.nest(u16(IFLA_INFO_DATA)) {
                    m.nest(u16(VETH_INFO_PEER)) {
                        // The peer's own ifinfomsg opens VETH_INFO_PEER; put_extra_header appends at the tail.
                        m.putFamilyHeader(header())
                        m.put(u16(IFLA_IFNAME), string: peerName)
                        if let mtu = spec.mtu { m.put(u16(IFLA_MTU), u32: mtu) }
                        if let peerMAC { m.put(u16(IFLA_ADDRESS), bytes: peerMAC.bytes) }
                        if let ns = peerNamespace { m.put(u16(IFLA_NET_NS_FD), u32: UInt32(bitPattern: ns.fileDescriptor)) }
                    }
                }
            case .vxlan(let vx):
                m.nest(u16(IFLA_INFO_DATA)) {
                    m.put(u16(IFLA_VXLAN_ID), u32: vx.vni)
                    m.put(u16(IFLA_VXLAN_PORT), be16: vx.port)
                    m.put(u16(IFLA_VXLAN_LEARNING), u8: vx.learning ? 1 : 0)
                    if let link = vx.underlayIndex { m.put(u16(IFLA_VXLAN_LINK), u32: UInt32(bitPattern: link)) }
                    switch vx.local {
                    case .v4(let a)?: m.put(u16(IFLA_VXLAN_LOCAL), bytes: a.bytes)
                    case .v6(let a)?: m.put(u16(IFLA_VXLAN_LOCAL6), bytes: a.bytes)
                    case nil: break
                    }
                }
            case .bridge, .dummy:
                break
            }
        }
        return m
    }

    static func parse(_ message: NetlinkMessage) -> Link? {
        guard message.type == u16(RTM_NEWLINK), let hdr = message.familyHeader(ifinfomsg.self) else { return nil }
        let attrs = message.attributes(afterHeaderOf: MemoryLayout<ifinfomsg>.size)
        let info = attrs.nested(u16(IFLA_LINKINFO))
        let kind = info?.string(u16(IFLA_INFO_KIND))
        var hairpin: Bool?, isolated: Bool?
        if info?.string(u16(IFLA_INFO_SLAVE_KIND)) == "bridge",
           let port = info?.nested(u16(IFLA_INFO_SLAVE_DATA)) {
            hairpin = port.u8(u16(IFLA_BRPORT_MODE)).map { $0 != 0 }
            isolated = port.u8(u16(IFLA_BRPORT_ISOLATED)).map { $0 != 0 }
        }
        var vxlan: VXLANAttributes?
        if kind == "vxlan", let data = info?.nested(u16(IFLA_INFO_DATA)) {
            let local = data[u16(IFLA_VXLAN_LOCAL)].flatMap { IPAddress(bytes: $0) }
                ?? data[u16(IFLA_VXLAN_LOCAL6)].flatMap { IPAddress(bytes: $0) }
            vxlan = VXLANAttributes(vni: data.u32(u16(IFLA_VXLAN_ID)) ?? 0,
                                    port: data.be16(u16(IFLA_VXLAN_PORT)) ?? 0,
                                    local: local,
                                    underlayIndex: data.u32(u16(IFLA_VXLAN_LINK)).map { Int32(bitPattern: $0) },
                                    learning: (data.u8(u16(IFLA_VXLAN_LEARNING)) ?? 0) != 0)
        }
        let master = attrs.u32(u16(IFLA_MASTER)).map { Int32(bitPattern: $0) }
        return Link(index: hdr.ifi_index,
                    name: attrs.string(u16(IFLA_IFNAME)) ?? "",
                    kind: kind,
                    mtu: attrs.u32(u16(IFLA_MTU)) ?? 0,
                    mac: attrs[u16(IFLA_ADDRESS)].flatMap { MACAddress(bytes: $0) },
                    isUp: hdr.ifi_flags & UInt32(IFF_UP) != 0,
                    hasCarrier: hdr.ifi_flags & 0x10000 /* IFF_LOWER_UP */ != 0,
                    masterIndex: master == 0 ? nil : master,
                    parentIndex: attrs.u32(u16(IFLA_LINK)).map { Int32(bitPattern: $0) },
                    hairpin: hairpin,
                    isolated: isolated,
                    isPromiscuous: hdr.ifi_flags & UInt32(IFF_PROMISC) != 0,
                    vxlan: vxlan)
    }
}
