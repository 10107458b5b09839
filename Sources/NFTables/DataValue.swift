import NetAddress

/// One typed value: a set key field, a map value, or the right-hand side of a match.
/// `bytes` are what the kernel compares (network order unless the type is host-order, like marks).
public struct DataValue: Hashable, Sendable, CustomStringConvertible {
    public let type: DataType
    public let bytes: [UInt8]

    /// A value from raw bytes; `bytes.count` must be `type.byteLength`.
    public init(type: DataType, bytes: [UInt8]) {
        precondition(bytes.count == type.byteLength, "\(type) takes \(type.byteLength) bytes, got \(bytes.count)")
        self.type = type
        self.bytes = bytes
    }

    public static func ipv4(_ a: IPv4Address) -> DataValue { DataValue(type: .ipv4Address, bytes: a.bytes) }
    public static func ipv6(_ a: IPv6Address) -> DataValue { DataValue(type: .ipv6Address, bytes: a.bytes) }
    public static func ip(_ a: IPAddress) -> DataValue {
        switch a { case .v4(let v): .ipv4(v); case .v6(let v): .ipv6(v) }
    }
    /// A TCP/UDP/SCTP port (`inet_service`), network byte order.
    public static func port(_ p: UInt16) -> DataValue { DataValue(type: .inetService, bytes: [UInt8(p >> 8), UInt8(p & 0xff)]) }
    public static func proto(_ p: IPProtocol) -> DataValue { DataValue(type: .inetProto, bytes: [p.rawValue]) }
    /// A packet or conntrack mark (host byte order, as the kernel keeps skb->mark).
    public static func mark(_ m: UInt32) -> DataValue { DataValue(type: .mark, bytes: hostBytes(m)) }
    public static func integer(_ v: UInt32) -> DataValue { DataValue(type: .integer32, bytes: hostBytes(v)) }
    public static func ether(_ m: MACAddress) -> DataValue { DataValue(type: .etherAddress, bytes: m.bytes) }
    /// An interface name, NUL-padded to IFNAMSIZ (16) as the kernel compares it.
    public static func ifname(_ name: String) -> DataValue {
        let raw = Array(name.utf8.prefix(15))
        return DataValue(type: .ifname, bytes: raw + [UInt8](repeating: 0, count: 16 - raw.count))
    }

    static func hostBytes(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    public var description: String {
        switch type {
        case .ipv4Address: return IPv4Address(bytes: bytes).map { "\($0)" } ?? hex
        case .ipv6Address: return IPv6Address(bytes: bytes).map { "\($0)" } ?? hex
        case .inetService: return String(UInt16(bytes[0]) << 8 | UInt16(bytes[1]))
        case .inetProto: return IPProtocol(rawValue: bytes[0]).description
        case .etherAddress: return MACAddress(bytes: bytes).map { "\($0)" } ?? hex
        case .ifname: return "\"" + String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self) + "\""
        case .mark, .integer32, .ctState, .ifindex:
            let v = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            return type == .mark ? "0x" + String(UInt32(littleEndian: v), radix: 16) : String(UInt32(littleEndian: v))
        default: return hex
        }
    }

    var hex: String { "0x" + bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
}

/// An IP protocol number (`inet_proto`).
public struct IPProtocol: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let icmp = IPProtocol(rawValue: 1)
    public static let tcp = IPProtocol(rawValue: 6)
    public static let udp = IPProtocol(rawValue: 17)
    public static let icmpv6 = IPProtocol(rawValue: 58)
    public static let sctp = IPProtocol(rawValue: 132)

    public var description: String {
        switch rawValue {
        case 1: "icmp"
        case 6: "tcp"
        case 17: "udp"
        case 58: "ipv6-icmp"
        case 132: "sctp"
        default: String(rawValue)
        }
    }
}
