/// A 48-bit Ethernet address.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 6 else { return nil }
        self.bytes = Array(bytes)
    }
    /// Parses `aa:bb:cc:dd:ee:ff` (also with `-`).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "-" })
        guard parts.count == 6 else { return nil }
        var b: [UInt8] = []
        for p in parts {
            guard p.count == 2, let v = UInt8(p, radix: 16) else { return nil }
            b.append(v)
        }
        bytes = b
    }
    public static let zero = MACAddress(bytes: [0, 0, 0, 0, 0, 0])!
    public var description: String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":") }
    /// Locally administered unicast address derived from `seed` bytes (stable across runs for the same seed).
    public static func locallyAdministered(_ seed: [UInt8]) -> MACAddress {
        var b = Array((seed + [0, 0, 0, 0, 0, 0]).prefix(6))
        b[0] = (b[0] & 0xfc) | 0x02
        return MACAddress(bytes: b)!
    }
}
