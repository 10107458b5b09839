/// Overlapping elements of an interval set. For a concatenated set an element is a box, one range
/// per field, and two boxes overlap when every field's ranges do. This is stricter than the kernel:
/// a single-field set (rbtree) refuses any overlap with EEXIST, but a concatenated one (pipapo)
/// refuses a new element only when its start or end lies inside another (see `Ruleset.applying`).
extension NFTSet {
    /// Pairs of this set's elements that overlap (empty for a set without the interval flag, whose
    /// duplicate keys `Transaction` already refuses). Fields are compared by their bytes, as
    /// `Transaction` orders a range's start and end.
    ///
    /// A sweep over the first field: only elements whose first-field ranges overlap are compared,
    /// so sets whose first field is an id (one small group of elements per id) cost n log n.
    public func overlappingElements(limit: Int = 16) -> [(SetElement, SetElement)] {
        guard flags.contains(.interval) else { return [] }
        let boxes = elements.map { e in (element: e, low: e.key.map(\.bytes), high: (e.keyEnd ?? e.key).map(\.bytes)) }
            .sorted { $0.low[0].lexicographicallyPrecedes($1.low[0]) }
        var found: [(SetElement, SetElement)] = []
        var active: [Int] = []
        for i in boxes.indices {
            let b = boxes[i]
            // Drop the elements whose first field ends before this one starts.
            active.removeAll { boxes[$0].high[0].lexicographicallyPrecedes(b.low[0]) }
            for j in active where Self.overlap(boxes[j], b) {
                found.append((boxes[j].element, b.element))
                if found.count >= limit { return found }
            }
            active.append(i)
        }
        return found
    }

    private static func overlap(_ a: (element: SetElement, low: [[UInt8]], high: [[UInt8]]),
                                _ b: (element: SetElement, low: [[UInt8]], high: [[UInt8]])) -> Bool {
        a.low.indices.allSatisfy { f in
            !a.high[f].lexicographicallyPrecedes(b.low[f]) && !b.high[f].lexicographicallyPrecedes(a.low[f])
        }
    }
}
