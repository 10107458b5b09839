import CMnl
import Glibc
import NetAddress


/// RTM_*ADDR encoding and decoding.
enum AddressMessage {
    static func build(_ a: InterfaceAddress, type: Int32, flags: NetlinkFlags) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: u16(type), flags: flags)
        m.putFamilyHeader(ifaddrmsg(ifa_family: a.cidr.family.rawValue, ifa_prefixlen: UInt8(a.cidr.prefixLength),
                                    ifa_flags: 0, ifa_scope: a.scope.rawValue, ifa_index: UInt32(bitPattern: a.linkIndex)))
        let bytes = a.cidr.address.bytes
        m.put(u16(IFA_LOCAL), bytes: bytes)
        m.put(u16(IFA_ADDRESS), bytes: bytes)
        if let brd = a.broadcast { m.put(u16(IFA_BROADCAST), bytes: brd.bytes) }
        if a.skipDuplicateDetection { m.put(u16(IFA_FLAGS), u32: UInt32(IFA_F_NODAD)) }
        return m
    }

    static func dumpRequest(family: AddressFamily?) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: u16(RTM_GETADDR), flags: .dump)
        m.putFamilyHeader(ifaddrmsg(ifa_family: family?.rawValue ?? UInt8(AF_UNSPEC), ifa_prefixlen: 0, ifa_flags: 0, ifa_scope: 0, ifa_index: 0))
        return m
    }

    static func parse(_ message: NetlinkMessage) -> InterfaceAddress? {
        guard message.type == u16(RTM_NEWADDR), let hdr = message.familyHeader(ifaddrmsg.self) else { return nil }
        let attrs = message.attributes(afterHeaderOf: MemoryLayout<ifaddrmsg>.size)
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links.
        guard let raw = attrs[u16(IFA_LOCAL)] ?? attrs[u16(IFA_ADDRESS)], let address = IPAddress(bytes: raw),
              let cidr = CIDR(address, prefixLength: Int(hdr.ifa_prefixlen)) else { return nil }
        let flags = attrs.u32(u16(IFA_FLAGS)) ?? UInt32(hdr.ifa_flags)
        return InterfaceAddress(linkIndex: Int32(bitPattern: hdr.ifa_index), cidr: cidr,
                                broadcast: attrs[u16(IFA_BROADCAST)].flatMap { IPAddress(bytes: $0) },
                                scope: Scope(rawValue: hdr.ifa_scope) ?? .universe,
                                skipDuplicateDetection: flags & UInt32(IFA_F_NODAD) != 0)
    }
}
