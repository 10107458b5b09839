#if canImport(Glibc)
import Glibc
#endif

/// An IPv6 address as two 64-bit halves in host order (high first), so that ordering, masking and
/// iteration are integer operations.
public struct IPv6Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    public init?(_ text: some StringProtocol) {
        var raw = in6_addr()
        let ok = String(text).withCString { inet_pton(AF_INET6, $0, &raw) }
        guard ok == 1 else { return nil }
        self.init(bytes: withUnsafeBytes(of: &raw) { Array($0) })!
    }
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        let b = Array(bytes)
        high = b[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = b[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(high >> (56 - 8 * UInt64($0)) & 0xff) } + (0..<8).map { UInt8(low >> (56 - 8 * UInt64($0)) & 0xff) }
    }

    public static let any = IPv6Address(high: 0, low: 0)
    public static let loopback = IPv6Address(high: 0, low: 1)

    /// RFC 5952 text (what `ip` prints), produced by inet_ntop.
    public var description: String {
        var raw = in6_addr()
        withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count))
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    public static func < (l: Self, r: Self) -> Bool { (l.high, l.low) < (r.high, r.low) }

    /// The address `n` after (or before, for negative `n`) this one, or nil on overflow.
    public func advanced(by n: Int64) -> IPv6Address? {
        if n >= 0 {
            let (lo, carry) = low.addingReportingOverflow(UInt64(n))
            let (hi, over) = high.addingReportingOverflow(carry ? 1 : 0)
            return over ? nil : IPv6Address(high: hi, low: lo)
        }
        let (lo, borrow) = low.subtractingReportingOverflow(UInt64(-n))
        let (hi, under) = high.subtractingReportingOverflow(borrow ? 1 : 0)
        return under ? nil : IPv6Address(high: hi, low: lo)
    }
}
