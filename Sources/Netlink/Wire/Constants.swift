// The kernel's UAPI constants arrive in Swift as Int macros, Int32 enum cases or RawRepresentable
// C enums depending on how each header declares them; these narrow all of them to wire widths.
func u16(_ v: some BinaryInteger) -> UInt16 { UInt16(truncatingIfNeeded: v) }
func u16<T: RawRepresentable>(_ v: T) -> UInt16 where T.RawValue: BinaryInteger { UInt16(truncatingIfNeeded: v.rawValue) }
func u8<T: RawRepresentable>(_ v: T) -> UInt8 where T.RawValue: BinaryInteger { UInt8(truncatingIfNeeded: v.rawValue) }
func u8(_ v: some BinaryInteger) -> UInt8 { UInt8(truncatingIfNeeded: v) }
