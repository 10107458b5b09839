/// An address of either family. Everything in Keel that names "an IP" uses this type.
public enum IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    public init?(_ text: some StringProtocol) {
        if let a = IPv4Address(text) { self = .v4(a) } else if let a = IPv6Address(text), text.contains(":") { self = .v6(a) } else { return nil }
    }
    public init?(bytes: some Collection<UInt8>) {
        switch bytes.count {
        case 4: self = .v4(IPv4Address(bytes: bytes)!)
        case 16: self = .v6(IPv6Address(bytes: bytes)!)
        default: return nil
        }
    }
    public var family: AddressFamily { switch self { case .v4: .ipv4; case .v6: .ipv6 } }
    public var bytes: [UInt8] { switch self { case .v4(let a): a.bytes; case .v6(let a): a.bytes } }
    public var description: String { switch self { case .v4(let a): a.description; case .v6(let a): a.description } }
    public var isIPv4: Bool { family == .ipv4 }

    public static func < (l: Self, r: Self) -> Bool {
        switch (l, r) {
        case let (.v4(a), .v4(b)): a < b
        case let (.v6(a), .v6(b)): a < b
        case (.v4, .v6): true
        case (.v6, .v4): false
        }
    }
    public func advanced(by n: Int64) -> IPAddress? {
        switch self {
        case .v4(let a): a.advanced(by: n).map(IPAddress.v4)
        case .v6(let a): a.advanced(by: n).map(IPAddress.v6)
        }
    }
}

public enum AddressFamily: Sendable, Hashable, CustomStringConvertible {
    case ipv4, ipv6
    /// AF_INET / AF_INET6, as netlink headers carry them.
    public var rawValue: UInt8 { self == .ipv4 ? 2 : 10 }
    public var bitWidth: Int { self == .ipv4 ? 32 : 128 }
    public var byteCount: Int { bitWidth / 8 }
    public var description: String { self == .ipv4 ? "inet" : "inet6" }
}
