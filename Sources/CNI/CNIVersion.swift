/// CNI spec versions: parsing, ordering and the sets this kit speaks.
public struct CNIVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: Int, minor: Int, patch: Int

    /// The spec version this kit implements; VERSION answers with it.
    public static let current = "1.1.0"
    /// Every version whose configs and results the kit reads and writes.
    public static let all = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

    /// Parses `1.1.0`; also `1.1` and `1`, which the reference pads with zeros.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count) else { return nil }
        var numbers: [Int] = []
        for p in parts {
            guard !p.isEmpty, p.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(p) else { return nil }
            numbers.append(n)
        }
        while numbers.count < 3 { numbers.append(0) }
        (major, minor, patch) = (numbers[0], numbers[1], numbers[2])
    }

    public var description: String { "\(major).\(minor).\(patch)" }
    public static func < (l: Self, r: Self) -> Bool { (l.major, l.minor, l.patch) < (r.major, r.minor, r.patch) }

    static let v040 = CNIVersion("0.4.0")!
    static let v100 = CNIVersion("1.0.0")!
    static let v110 = CNIVersion("1.1.0")!

    /// The shape a result of `version` has on the wire, or nil if the kit cannot write it.
    enum ResultShape { case v1, v04 }
    static func resultShape(_ version: String) -> ResultShape? {
        switch version {
        case "1.0.0", "1.1.0": .v1
        case "0.3.0", "0.3.1", "0.4.0": .v04
        default: nil
        }
    }
}
