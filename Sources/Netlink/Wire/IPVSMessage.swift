import NetAddress

/// IPVS over generic netlink: include/uapi/linux/ip_vs.h, served by net/netfilter/ipvs/ip_vs_ctl.c.
///
/// Layout: nlmsghdr (type = the id nlctrl gave family "IPVS") + genlmsghdr (cmd = IPVS_CMD_*,
/// version IPVS_GENL_VERSION = 1), then
/// - IPVS_CMD_ATTR_SERVICE, a nest: AF (u16), PROTOCOL (u16), ADDR (the 16-byte `union nf_inet_addr`,
///   an IPv4 address in its first 4 bytes), PORT (be16); NEW/SET_SERVICE add SCHED_NAME (string),
///   FLAGS (`struct ip_vs_flags { u32 flags; u32 mask; }`), TIMEOUT (u32 seconds) and NETMASK;
/// - IPVS_CMD_ATTR_DEST, a nest: ADDR (16 bytes), PORT (be16), ADDR_FAMILY (u16, kernel ≥ 3.18);
///   NEW/SET_DEST add FWD_METHOD, WEIGHT, U_THRESH, L_THRESH (u32 each).
/// The kernel refuses a NEW/SET without every one of the added attributes (EINVAL), and finds the
/// service of a destination command by the identifying attributes alone.
///
/// The CMnl shim does not include ip_vs.h: the values are written out here from the header.
enum IPVSMessage {
    static let familyName = "IPVS"     // IPVS_GENL_NAME
    /// The module that registers the family (and is autoloaded through its genl alias, when it can be).
    static let module = "ip_vs"
    static let version: UInt8 = 1      // IPVS_GENL_VERSION

    /// IPVS_CMD_*.
    enum Command {
        static let newService: UInt8 = 1
        static let setService: UInt8 = 2
        static let delService: UInt8 = 3
        static let getService: UInt8 = 4
        static let newDest: UInt8 = 5
        static let setDest: UInt8 = 6
        static let delDest: UInt8 = 7
        static let getDest: UInt8 = 8
        /// Only in GET_INFO's answer.
        static let setInfo: UInt8 = 14
        static let getInfo: UInt8 = 15
        static let flush: UInt8 = 17
    }

    /// IPVS_CMD_ATTR_*.
    enum CommandAttribute {
        static let service: UInt16 = 1
        static let destination: UInt16 = 2
    }

    /// IPVS_SVC_ATTR_*.
    enum ServiceAttribute {
        static let family: UInt16 = 1
        static let proto: UInt16 = 2
        static let address: UInt16 = 3
        static let port: UInt16 = 4
        static let firewallMark: UInt16 = 5
        static let scheduler: UInt16 = 6
        static let flags: UInt16 = 7
        static let timeout: UInt16 = 8
        static let netmask: UInt16 = 9
    }

    /// IPVS_DEST_ATTR_*.
    enum DestinationAttribute {
        static let address: UInt16 = 1
        static let port: UInt16 = 2
        static let forwarding: UInt16 = 3
        static let weight: UInt16 = 4
        static let upperThreshold: UInt16 = 5
        static let lowerThreshold: UInt16 = 6
        static let activeConnections: UInt16 = 7
        static let inactiveConnections: UInt16 = 8
        static let persistentConnections: UInt16 = 9
        static let family: UInt16 = 11
    }

    /// IPVS_INFO_ATTR_*.
    enum InfoAttribute {
        static let version: UInt16 = 1
        static let connectionTableSize: UInt16 = 2
    }

    /// IP_VS_CONN_F_FWD_MASK.
    static let forwardingMask: UInt32 = 0x7
    /// sizeof(union nf_inet_addr).
    static let addressSize = 16

    // MARK: - Requests

    static func request(_ command: UInt8, family: UInt16, flags: NetlinkFlags = [.ack]) -> NetlinkMessageBuilder {
        GenericNetlinkMessage.request(family: family, command: command, version: version, flags: flags)
    }

    /// IPVS_CMD_GET_INFO (answered with IPVS_CMD_SET_INFO).
    static func infoRequest(family: UInt16) -> NetlinkMessageBuilder { request(Command.getInfo, family: family, flags: []) }

    /// IPVS_CMD_GET_SERVICE with NLM_F_DUMP: every service of the namespace.
    static func servicesDumpRequest(family: UInt16) -> NetlinkMessageBuilder { request(Command.getService, family: family, flags: .dump) }

    /// IPVS_CMD_GET_SERVICE for one service, named by its key.
    static func serviceRequest(family: UInt16, key: IPVSServiceKey) -> NetlinkMessageBuilder {
        let m = request(Command.getService, family: family, flags: [])
        m.nest(CommandAttribute.service) { putServiceKey(m, key) }
        return m
    }

    /// IPVS_CMD_GET_DEST with NLM_F_DUMP: the destinations of one service.
    static func destinationsDumpRequest(family: UInt16, service key: IPVSServiceKey) -> NetlinkMessageBuilder {
        let m = request(Command.getDest, family: family, flags: .dump)
        m.nest(CommandAttribute.service) { putServiceKey(m, key) }
        return m
    }

    /// IPVS_CMD_FLUSH: removes every service (and so every destination) of the namespace.
    static func flushRequest(family: UInt16) -> NetlinkMessageBuilder { request(Command.flush, family: family) }

    /// The message that carries out `operation`.
    static func request(_ operation: IPVSOperation, family: UInt16) -> NetlinkMessageBuilder {
        switch operation {
        case .addService(let s): serviceRequest(Command.newService, family: family, s)
        case .updateService(let s): serviceRequest(Command.setService, family: family, s)
        case .deleteService(let key):
            withService(key, request(Command.delService, family: family))
        case .addDestination(let key, let d): destinationRequest(Command.newDest, family: family, key, d)
        case .updateDestination(let key, let d): destinationRequest(Command.setDest, family: family, key, d)
        case .deleteDestination(let key, let address, let port):
            withService(key, request(Command.delDest, family: family)) { m in
                m.nest(CommandAttribute.destination) { putDestinationKey(m, address: address, port: port) }
            }
        }
    }

    /// What a failure of `operation` is reported as: "IPVS_CMD_NEW_DEST TCP 10.96.0.1:80 → 10.0.0.5:8080".
    static func netlinkOperation(_ operation: IPVSOperation) -> NetlinkOperation {
        switch operation {
        case .addService: .newIPVSService
        case .updateService: .setIPVSService
        case .deleteService: .delIPVSService
        case .addDestination: .newIPVSDestination
        case .updateDestination: .setIPVSDestination
        case .deleteDestination: .delIPVSDestination
        }
    }

    static func subject(_ operation: IPVSOperation) -> String {
        switch operation {
        case .addService(let s), .updateService(let s): s.description
        case .deleteService(let key): key.description
        case .addDestination(let key, let d), .updateDestination(let key, let d): "\(key) → \(endpoint(d.address, d.port))"
        case .deleteDestination(let key, let address, let port): "\(key) → \(endpoint(address, port))"
        }
    }

    /// `10.0.0.5:8080`, `[fd00::5]:8080`.
    static func endpoint(_ address: IPAddress, _ port: UInt16) -> String {
        address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
    }

    private static func serviceRequest(_ command: UInt8, family: UInt16, _ service: IPVSService) -> NetlinkMessageBuilder {
        let m = request(command, family: family)
        m.nest(CommandAttribute.service) {
            putServiceKey(m, service.key)
            m.put(ServiceAttribute.scheduler, string: service.scheduler)
            // mask ~0: the kernel takes exactly these flags (it adds HASHED itself).
            m.put(ServiceAttribute.flags, bytes: le32Pair(service.flags.subtracting(.hashed).rawValue, UInt32.max))
            m.put(ServiceAttribute.timeout, u32: service.timeout)
            m.put(ServiceAttribute.netmask, bytes: netmaskBytes(service.netmask, family: service.key.address.family))
        }
        return m
    }

    private static func destinationRequest(_ command: UInt8, family: UInt16, _ key: IPVSServiceKey, _ d: IPVSDestination) -> NetlinkMessageBuilder {
        withService(key, request(command, family: family)) { m in
            m.nest(CommandAttribute.destination) {
                putDestinationKey(m, address: d.address, port: d.port)
                m.put(DestinationAttribute.forwarding, u32: d.forwarding.rawValue)
                m.put(DestinationAttribute.weight, u32: d.weight)
                m.put(DestinationAttribute.upperThreshold, u32: d.upperThreshold)
                m.put(DestinationAttribute.lowerThreshold, u32: d.lowerThreshold)
            }
        }
    }

    private static func withService(_ key: IPVSServiceKey, _ m: NetlinkMessageBuilder,
                                    then body: (NetlinkMessageBuilder) -> Void = { _ in }) -> NetlinkMessageBuilder {
        m.nest(CommandAttribute.service) { putServiceKey(m, key) }
        body(m)
        return m
    }

    static func putServiceKey(_ m: NetlinkMessageBuilder, _ key: IPVSServiceKey) {
        m.put(ServiceAttribute.family, u16: UInt16(key.address.family.rawValue))
        m.put(ServiceAttribute.proto, u16: key.proto.rawValue)
        m.put(ServiceAttribute.address, bytes: addressBytes(key.address))
        m.put(ServiceAttribute.port, be16: key.port)
    }

    static func putDestinationKey(_ m: NetlinkMessageBuilder, address: IPAddress, port: UInt16) {
        m.put(DestinationAttribute.address, bytes: addressBytes(address))
        m.put(DestinationAttribute.port, be16: port)
        m.put(DestinationAttribute.family, u16: UInt16(address.family.rawValue))
    }

    /// `union nf_inet_addr`: 16 bytes whatever the family.
    static func addressBytes(_ address: IPAddress) -> [UInt8] {
        address.bytes + [UInt8](repeating: 0, count: addressSize - address.bytes.count)
    }

    /// IPVS_SVC_ATTR_NETMASK is the kernel's `__be32 netmask` copied as is: for IPv4 the mask itself in
    /// network order (ff ff ff ff: one client per address), for IPv6 the prefix length as a plain u32
    /// (ip_vs_add_service checks 1...128).
    static func netmaskBytes(_ prefixLength: UInt32, family: AddressFamily) -> [UInt8] {
        switch family {
        case .ipv4:
            let mask: UInt32 = prefixLength == 0 ? 0 : UInt32.max << (32 - min(prefixLength, 32))
            return withUnsafeBytes(of: mask.bigEndian) { Array($0) }
        case .ipv6:
            return withUnsafeBytes(of: prefixLength) { Array($0) }
        }
    }

    static func netmaskPrefix(_ bytes: [UInt8], family: AddressFamily) -> UInt32? {
        guard bytes.count >= 4 else { return nil }
        let value = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        switch family {
        case .ipv4: return UInt32((~UInt32(bigEndian: value)).leadingZeroBitCount)
        case .ipv6: return value
        }
    }

    private static func le32Pair(_ a: UInt32, _ b: UInt32) -> [UInt8] {
        withUnsafeBytes(of: a) { Array($0) } + withUnsafeBytes(of: b) { Array($0) }
    }

    // MARK: - Answers

    /// IPVS_CMD_SET_INFO, GET_INFO's answer.
    static func parseInfo(_ message: NetlinkMessage) -> IPVSInfo? {
        guard GenericNetlinkMessage.header(message)?.command == Command.setInfo else { return nil }
        let attrs = GenericNetlinkMessage.attributes(message)
        guard let version = attrs.u32(InfoAttribute.version) else { return nil }
        return IPVSInfo(version: version, connectionTableSize: attrs.u32(InfoAttribute.connectionTableSize) ?? 0)
    }

    /// A service from an IPVS_CMD_NEW_SERVICE message (what GET_SERVICE answers with). Firewall-mark
    /// services and protocols Keel does not model are nil: Keel never made them and leaves them alone.
    static func parseService(_ message: NetlinkMessage) -> IPVSService? {
        guard GenericNetlinkMessage.header(message)?.command == Command.newService,
              let attrs = GenericNetlinkMessage.attributes(message).nested(CommandAttribute.service) else { return nil }
        return parseService(attrs)
    }

    static func parseService(_ attrs: NetlinkAttributes) -> IPVSService? {
        guard let family = addressFamily(attrs.u16(ServiceAttribute.family)),
              let proto = attrs.u16(ServiceAttribute.proto).flatMap(IPVSProtocol.init(rawValue:)),
              let address = attrs[ServiceAttribute.address].flatMap({ address($0, family) }),
              let port = attrs.be16(ServiceAttribute.port) else { return nil }
        // struct ip_vs_flags: the flags are its first u32.
        let flags = attrs.u32(ServiceAttribute.flags) ?? 0
        return IPVSService(key: IPVSServiceKey(address: address, proto: proto, port: port),
                           scheduler: attrs.string(ServiceAttribute.scheduler) ?? "",
                           flags: IPVSServiceFlags(rawValue: flags),
                           timeout: attrs.u32(ServiceAttribute.timeout) ?? 0,
                           netmask: attrs[ServiceAttribute.netmask].flatMap { netmaskPrefix($0, family: family) })
    }

    /// A destination and its counters from an IPVS_CMD_NEW_DEST message (what GET_DEST answers
    /// with). Kernels before 3.18 send no ADDR_FAMILY: the destination then has the service's.
    static func parseDestination(_ message: NetlinkMessage, serviceFamily: AddressFamily)
        -> (destination: IPVSDestination, statistics: IPVSDestinationStatistics)? {
        guard GenericNetlinkMessage.header(message)?.command == Command.newDest,
              let attrs = GenericNetlinkMessage.attributes(message).nested(CommandAttribute.destination) else { return nil }
        return parseDestination(attrs, serviceFamily: serviceFamily)
    }

    static func parseDestination(_ attrs: NetlinkAttributes, serviceFamily: AddressFamily)
        -> (destination: IPVSDestination, statistics: IPVSDestinationStatistics)? {
        let family = attrs.u16(DestinationAttribute.family).map { addressFamily($0) } ?? serviceFamily
        guard let family, let address = attrs[DestinationAttribute.address].flatMap({ address($0, family) }),
              let port = attrs.be16(DestinationAttribute.port),
              let forwarding = IPVSForwarding(rawValue: (attrs.u32(DestinationAttribute.forwarding) ?? 0) & forwardingMask) else { return nil }
        let destination = IPVSDestination(address: address, port: port, weight: attrs.u32(DestinationAttribute.weight) ?? 0,
                                          forwarding: forwarding,
                                          upperThreshold: attrs.u32(DestinationAttribute.upperThreshold) ?? 0,
                                          lowerThreshold: attrs.u32(DestinationAttribute.lowerThreshold) ?? 0)
        let statistics = IPVSDestinationStatistics(activeConnections: attrs.u32(DestinationAttribute.activeConnections) ?? 0,
                                                   inactiveConnections: attrs.u32(DestinationAttribute.inactiveConnections) ?? 0,
                                                   persistentConnections: attrs.u32(DestinationAttribute.persistentConnections) ?? 0)
        return (destination, statistics)
    }

    private static func addressFamily(_ af: UInt16?) -> AddressFamily? {
        switch af {
        case UInt16(AddressFamily.ipv4.rawValue): .ipv4
        case UInt16(AddressFamily.ipv6.rawValue): .ipv6
        default: nil
        }
    }

    private static func address(_ bytes: [UInt8], _ family: AddressFamily) -> IPAddress? {
        guard bytes.count >= family.byteCount else { return nil }
        return IPAddress(bytes: bytes.prefix(family.byteCount))
    }
}
