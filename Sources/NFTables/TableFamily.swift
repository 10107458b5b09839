/// The address family of an nftables table: which hooks it sees and which packets reach it.
public enum TableFamily: String, Hashable, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case inet, ip, ip6, bridge, netdev, arp

    /// The NFPROTO_* value the kernel uses in nfgenmsg.nfgen_family.
    public var nfproto: UInt8 {
        switch self {
        case .inet: 1      // NFPROTO_INET
        case .ip: 2        // NFPROTO_IPV4
        case .arp: 3       // NFPROTO_ARP
        case .netdev: 5    // NFPROTO_NETDEV
        case .bridge: 7    // NFPROTO_BRIDGE
        case .ip6: 10      // NFPROTO_IPV6
        }
    }

    public init?(nfproto: UInt32) {
        guard let f = TableFamily.allCases.first(where: { UInt32($0.nfproto) == nfproto }) else { return nil }
        self = f
    }

    public var description: String { rawValue }
    public static func < (l: Self, r: Self) -> Bool { l.rawValue < r.rawValue }
}
