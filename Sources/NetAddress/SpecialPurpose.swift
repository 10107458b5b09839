/// The address blocks that hold no unicast host address a pod or a gateway can use (RFC 6890's
/// special-purpose registries, the part of them the kernel treats specially): an address from them on
/// an interface, or as a route's gateway, is refused by the kernel or routed somewhere else.
/// Link-local (169.254.0.0/16, fe80::/10) and private ranges are unicast and not listed.
public enum SpecialPurposeBlock: Sendable {
    static let blocks: [(CIDR, String)] = [
        (CIDR("0.0.0.0/8")!, "\"this network\" block 0.0.0.0/8"),
        (CIDR("127.0.0.0/8")!, "loopback block 127.0.0.0/8"),
        (CIDR("224.0.0.0/4")!, "multicast block 224.0.0.0/4"),
        (CIDR("240.0.0.0/4")!, "reserved block 240.0.0.0/4 (with the broadcast address 255.255.255.255)"),
        (CIDR("::/128")!, "unspecified address ::"),
        (CIDR("::1/128")!, "loopback address ::1"),
        (CIDR("::ffff:0:0/96")!, "IPv4-mapped block ::ffff:0:0/96"),
        (CIDR("ff00::/8")!, "multicast block ff00::/8"),
    ]

    /// Why `network` cannot be a pod network, or nil when it is made of unicast addresses only:
    /// `0.0.0.0/0` and `::/0` (every address, a default route), or overlapping a block above.
    public static func problem(with network: CIDR) -> String? {
        if network.prefixLength == 0 { return "\(network.masked) is every \(network.family == .ipv4 ? "IPv4" : "IPv6") address, not a network of hosts" }
        guard let (_, what) = blocks.first(where: { $0.0.overlaps(network.masked) }) else { return nil }
        return "\(network) overlaps the \(what), which holds no unicast host addresses"
    }

    /// Why `address` cannot be a host or a gateway, or nil for a unicast address.
    public static func problem(with address: IPAddress) -> String? {
        guard let (_, what) = blocks.first(where: { $0.0.contains(address) }) else { return nil }
        return "\(address) is in the \(what), not a unicast address"
    }
}
