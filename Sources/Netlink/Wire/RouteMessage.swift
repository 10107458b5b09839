import CMnl
import Glibc
import NetAddress


/// RTM_*ROUTE encoding and decoding.
enum RouteMessage {
    static func build(_ r: Route, type: Int32, flags: NetlinkFlags) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: u16(type), flags: flags)
        let table = r.table.rawValue
        m.putFamilyHeader(rtmsg(rtm_family: r.destination.family.rawValue, rtm_dst_len: UInt8(r.destination.prefixLength),
                                rtm_src_len: 0, rtm_tos: 0, rtm_table: table < 256 ? UInt8(table) : u8(RT_TABLE_UNSPEC),
                                rtm_protocol: r.proto.rawValue, rtm_scope: r.scope.rawValue, rtm_type: r.type.rawValue,
                                rtm_flags: r.onlink ? UInt32(RTNH_F_ONLINK) : 0))
        m.put(u16(RTA_DST), bytes: r.destination.network.bytes)
        m.put(u16(RTA_TABLE), u32: table)
        if let gw = r.gateway { m.put(u16(RTA_GATEWAY), bytes: gw.bytes) }
        if let dev = r.device { m.put(u16(RTA_OIF), u32: UInt32(bitPattern: dev)) }
        if let metric = r.metric { m.put(u16(RTA_PRIORITY), u32: metric) }
        if let src = r.preferredSource { m.put(u16(RTA_PREFSRC), bytes: src.bytes) }
        return m
    }

    static func dumpRequest(family: AddressFamily?) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: u16(RTM_GETROUTE), flags: .dump)
        m.putFamilyHeader(rtmsg(rtm_family: family?.rawValue ?? UInt8(AF_UNSPEC), rtm_dst_len: 0, rtm_src_len: 0, rtm_tos: 0,
                                rtm_table: 0, rtm_protocol: 0, rtm_scope: 0, rtm_type: 0, rtm_flags: 0))
        return m
    }

    static func parse(_ message: NetlinkMessage) -> Route? {
        guard message.type == u16(RTM_NEWROUTE), let hdr = message.familyHeader(rtmsg.self) else { return nil }
        let family: AddressFamily
        switch Int32(hdr.rtm_family) {
        case AF_INET: family = .ipv4
        case AF_INET6: family = .ipv6
        default: return nil
        }
        let attrs = message.attributes(afterHeaderOf: MemoryLayout<rtmsg>.size)
        let dst = attrs[u16(RTA_DST)].flatMap { IPAddress(bytes: $0) } ?? (family == .ipv4 ? .v4(.any) : .v6(.any))
        guard let destination = CIDR(dst, prefixLength: Int(hdr.rtm_dst_len)),
              let type = RouteType(rawValue: hdr.rtm_type) else { return nil }
        return Route(destination: destination,
                     gateway: attrs[u16(RTA_GATEWAY)].flatMap { IPAddress(bytes: $0) },
                     device: attrs.u32(u16(RTA_OIF)).map { Int32(bitPattern: $0) },
                     onlink: hdr.rtm_flags & UInt32(RTNH_F_ONLINK) != 0,
                     scope: Scope(rawValue: hdr.rtm_scope) ?? .universe,
                     table: RouteTable(rawValue: attrs.u32(u16(RTA_TABLE)) ?? UInt32(hdr.rtm_table)),
                     metric: attrs.u32(u16(RTA_PRIORITY)),
                     proto: RouteProtocol(rawValue: hdr.rtm_protocol),
                     type: type,
                     preferredSource: attrs[u16(RTA_PREFSRC)].flatMap { IPAddress(bytes: $0) })
    }
}
