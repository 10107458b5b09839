/// An nftables register. The kernel has one verdict register and 16 data registers of 32 bits,
/// which older expressions address as four 128-bit registers (NFT_REG_1…4 = NFT_REG32_00/04/08/12).
///
/// The kernel dumps a register in its 128-bit name when it has one, so `init(rawValue:)` always
/// stores that canonical number: a rule read back compares equal to the rule that was written.
public struct Register: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        if rawValue >= 8, rawValue <= 23, (rawValue - 8) % 4 == 0 {
            self.rawValue = 1 + (rawValue - 8) / 4
        } else {
            self.rawValue = rawValue
        }
    }

    public static let verdict = Register(rawValue: 0)
    public static let r1 = Register(rawValue: 1)
    public static let r2 = Register(rawValue: 2)
    public static let r3 = Register(rawValue: 3)
    public static let r4 = Register(rawValue: 4)

    /// The 32-bit register `slot` (0…15): NFT_REG32_00 + slot, canonicalised.
    public static func slot(_ slot: Int) -> Register {
        precondition((0..<16).contains(slot), "register slot \(slot) out of 0..15")
        return Register(rawValue: 8 + UInt32(slot))
    }

    /// The 32-bit slot where this register's data begins.
    public var slot: Int {
        rawValue >= 8 ? Int(rawValue) - 8 : (Int(rawValue) - 1) * 4
    }

    public var description: String { rawValue == 0 ? "verdict" : rawValue <= 4 ? "reg \(rawValue)" : "reg32 \(slot)" }
    public static func < (l: Self, r: Self) -> Bool { l.rawValue < r.rawValue }
}
