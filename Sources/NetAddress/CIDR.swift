/// An address with a prefix length: `10.244.1.0/24`, `fd00::1/64`.
///
/// `address` keeps the host bits as written (an interface address like 10.0.0.1/24 is a CIDR too);
/// `network` is the masked form. Parsing rejects prefixes longer than the family allows.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public init?(_ address: IPAddress, prefixLength: Int) {
        guard prefixLength >= 0, prefixLength <= address.family.bitWidth else { return nil }
        self.address = address
        self.prefixLength = prefixLength
    }
    /// Parses `a.b.c.d/n` or `x::y/n`. A bare address is a host prefix (/32, /128).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        if parts.count == 1 {
            self.init(address, prefixLength: address.family.bitWidth)
        } else {
            guard parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), !parts[1].isEmpty, parts[1].count <= 3,
                  let n = Int(parts[1]) else { return nil }
            self.init(address, prefixLength: n)
        }
    }
    public static func host(_ address: IPAddress) -> CIDR { CIDR(address, prefixLength: address.family.bitWidth)! }

    public var family: AddressFamily { address.family }
    public var description: String { "\(address)/\(prefixLength)" }

    /// The first address of the prefix (host bits cleared).
    public var network: IPAddress {
        switch address {
        case .v4(let a): return .v4(IPv4Address(a.value & Self.mask32(prefixLength)))
        case .v6(let a):
            let (h, l) = Self.mask128(prefixLength)
            return .v6(IPv6Address(high: a.high & h, low: a.low & l))
        }
    }
    /// The last address of the prefix (host bits set): the IPv4 broadcast address.
    public var last: IPAddress {
        switch address {
        case .v4(let a): return .v4(IPv4Address(a.value | ~Self.mask32(prefixLength)))
        case .v6(let a):
            let (h, l) = Self.mask128(prefixLength)
            return .v6(IPv6Address(high: a.high | ~h, low: a.low | ~l))
        }
    }
    /// The same prefix with the host bits cleared.
    public var masked: CIDR { CIDR(network, prefixLength: prefixLength)! }
    /// The netmask as an address (255.255.255.0 for /24).
    public var netmask: IPAddress {
        switch family {
        case .ipv4: return .v4(IPv4Address(Self.mask32(prefixLength)))
        case .ipv6: let (h, l) = Self.mask128(prefixLength); return .v6(IPv6Address(high: h, low: l))
        }
    }

    public func contains(_ other: IPAddress) -> Bool {
        guard other.family == family else { return false }
        return CIDR(other, prefixLength: prefixLength)!.network == network
    }
    /// True when every address of `other` is in this prefix.
    public func contains(_ other: CIDR) -> Bool { other.prefixLength >= prefixLength && contains(other.address) }
    public func overlaps(_ other: CIDR) -> Bool { contains(other.network) || other.contains(network) }

    /// Number of addresses, saturating at Int64.max for huge IPv6 prefixes.
    public var size: Int64 {
        let hostBits = family.bitWidth - prefixLength
        return hostBits >= 63 ? Int64.max : Int64(1) << hostBits
    }
    /// Every address from `network` to `last`, lazily (a /64 is never materialised).
    public var addresses: some Sequence<IPAddress> {
        let first = network, end = last
        return sequence(first: first) { $0 == end ? nil : $0.advanced(by: 1) }
    }
    /// The `index`-th subnet of length `newLength` inside this prefix (10.244.0.0/16 → 10.244.3.0/24 for 3).
    public func subnet(_ index: Int64, prefixLength newLength: Int) -> CIDR? {
        guard newLength >= prefixLength, newLength <= family.bitWidth, index >= 0 else { return nil }
        let bits = newLength - prefixLength
        guard bits >= 63 || index < (Int64(1) << bits) else { return nil }
        switch network {
        case .v4(let a):
            return CIDR(.v4(IPv4Address(a.value + UInt32(index) << UInt32(32 - newLength))), prefixLength: newLength)
        case .v6(let a):
            let shift = 128 - newLength
            let (hi, lo): (UInt64, UInt64) = shift >= 64 ? (UInt64(index) << UInt64(shift - 64), 0)
                : (shift == 0 ? 0 : UInt64(index) >> UInt64(64 - shift), UInt64(index) << UInt64(shift))
            return CIDR(.v6(IPv6Address(high: a.high | hi, low: a.low | lo)), prefixLength: newLength)
        }
    }

    static func mask32(_ n: Int) -> UInt32 { n == 0 ? 0 : UInt32.max << UInt32(32 - n) }
    static func mask128(_ n: Int) -> (UInt64, UInt64) {
        if n <= 64 { return (n == 0 ? 0 : UInt64.max << UInt64(64 - n), 0) }
        return (UInt64.max, n == 128 ? UInt64.max : UInt64.max << UInt64(128 - n))
    }
}
