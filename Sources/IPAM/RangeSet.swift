import NetAddress

/// The ranges one address is allocated from (`ipam.ranges[i]`): an ADD gets one address per range set,
/// so a dual-stack network has one IPv4 and one IPv6 range set. All ranges of a set share a family.
public struct RangeSet: Hashable, Sendable, CustomStringConvertible {
    public let ranges: [AddressRange]

    /// Checks that the set is non-empty, of one family and without overlapping ranges.
    public init(_ ranges: [AddressRange], field: String = "range set") throws {
        guard let first = ranges.first else {
            throw IPAMError.invalidConfig(field: field, reason: "empty range set")
        }
        if let mixed = ranges.firstIndex(where: { $0.family != first.family }) {
            throw IPAMError.invalidConfig(field: "\(field)[\(mixed)]", reason: "mixed address families in one range set")
        }
        for i in ranges.indices {
            for j in ranges.indices where j > i && ranges[i].overlaps(ranges[j]) {
                throw IPAMError.invalidConfig(field: "\(field)[\(j)]",
                                              reason: "subnets \(ranges[i]) and \(ranges[j]) overlap")
            }
        }
        self.ranges = ranges
    }

    public var family: AddressFamily { ranges[0].family }
    public var description: String { ranges.map(\.description).joined(separator: ",") }

    /// The range that contains `address`, if any.
    public func range(for address: IPAddress) -> AddressRange? { ranges.first { $0.contains(address) } }
    public func contains(_ address: IPAddress) -> Bool { range(for: address) != nil }
    public func overlaps(_ other: RangeSet) -> Bool {
        ranges.contains { r in other.ranges.contains { r.overlaps($0) } }
    }

    /// Candidate addresses in the reference's round-robin order: from the address after `lastReserved`
    /// (when this set contains it, else from the first range's start), through the end of each range
    /// into the next one, wrapping around, until the start is reached again. Gateways are skipped.
    public func candidates(after lastReserved: IPAddress?) -> RangeSetIterator {
        RangeSetIterator(self, lastReserved: lastReserved)
    }
}

/// The reference's `RangeIter`: every allocatable address of a range set exactly once, starting after
/// the last reserved one, so that a crash-looping container does not get the same address back until
/// the whole set has been used.
public struct RangeSetIterator: IteratorProtocol, Sequence, Sendable {
    private let set: RangeSet
    private var rangeIndex = 0
    private var current: IPAddress?
    private var start: IPAddress?
    private var finished = false

    init(_ set: RangeSet, lastReserved: IPAddress?) {
        self.set = set
        if let last = lastReserved, let index = set.ranges.firstIndex(where: { $0.contains(last) }) {
            rangeIndex = index
            current = last           // the first next() returns last + 1
        }
    }

    public mutating func next() -> (address: IPAddress, range: AddressRange)? {
        while !finished {
            var range = set.ranges[rangeIndex]
            guard let cur = current else {
                current = range.rangeStart
                start = range.rangeStart
                if range.rangeStart == range.gateway { continue }
                return (range.rangeStart, range)
            }
            if cur == range.rangeEnd {
                rangeIndex = (rangeIndex + 1) % set.ranges.count
                range = set.ranges[rangeIndex]
                current = range.rangeStart
            } else {
                current = cur.advanced(by: 1)!    // cur < rangeEnd, so there is a next address
            }
            let now = current!
            if let s = start {
                if now == s { finished = true; return nil }
            } else {
                start = now
            }
            if now == range.gateway { continue }
            return (now, range)
        }
        return nil
    }
}
