import NetAddress

/// An address on an interface: `10.244.1.1/24 brd 10.244.1.255 scope global dev cni0`.
public struct InterfaceAddress: Sendable, Hashable, CustomStringConvertible {
    public var linkIndex: Int32
    /// The address with its prefix length (host bits kept: 10.244.1.1/24).
    public var cidr: CIDR
    /// IPv4 broadcast; nil lets the kernel go without one (as `ip addr add` does unless told `brd +`).
    public var broadcast: IPAddress?
    public var scope: Scope
    /// IFA_F_NODAD: usable at once. IPv6 addresses are otherwise "tentative" for ~1 s while duplicate
    /// address detection runs, and a bind or ping in that window fails.
    public var skipDuplicateDetection: Bool

    public init(linkIndex: Int32, cidr: CIDR, broadcast: IPAddress? = nil, scope: Scope = .universe,
                skipDuplicateDetection: Bool = false) {
        self.linkIndex = linkIndex
        self.cidr = cidr
        self.broadcast = broadcast
        self.scope = scope
        self.skipDuplicateDetection = skipDuplicateDetection
    }

    /// The usual IPv4 broadcast (host bits all ones) for prefixes shorter than /31.
    public static func withBroadcast(linkIndex: Int32, cidr: CIDR) -> InterfaceAddress {
        let brd: IPAddress? = cidr.family == .ipv4 && cidr.prefixLength < 31 ? cidr.last : nil
        return InterfaceAddress(linkIndex: linkIndex, cidr: cidr, broadcast: brd)
    }

    public var description: String {
        "\(cidr)\(broadcast.map { " brd \($0)" } ?? "") scope \(scope) dev #\(linkIndex)"
    }
}
