import NetAddress

/// An address handed out for one range set: the address with its range's subnet prefix, and that
/// range's gateway. The ADD result has one `IPConfig` per lease.
public struct Lease: Hashable, Sendable, CustomStringConvertible {
    public var rangeSetIndex: Int
    public var address: CIDR
    public var gateway: IPAddress
    public init(rangeSetIndex: Int, address: CIDR, gateway: IPAddress) {
        self.rangeSetIndex = rangeSetIndex
        self.address = address
        self.gateway = gateway
    }
    public var description: String { "\(address) gw \(gateway) (range set \(rangeSetIndex))" }
}

/// host-local's allocation rules over any `ReservationStore`: round robin from the last reserved
/// address of each range set, one address per range set per attachment, requested addresses honoured
/// or refused. Every operation runs under the store's lock from its first read to its last write.
public struct HostLocalAllocator<Store: ReservationStore>: Sendable {
    public let rangeSets: [RangeSet]
    public let store: Store

    public init(rangeSets: [RangeSet], store: Store) {
        self.rangeSets = rangeSets
        self.store = store
    }

    /// ADD: one lease per range set, in range set order. A requested address is given to the range set
    /// that contains it; the other sets allocate round robin. Fails, reserving nothing, when a
    /// requested address fits no range set, is a gateway or is taken, when the attachment already
    /// holds an address in a range set it requests nothing in (as the reference: the CNI spec forbids
    /// a second ADD), or when a range set is exhausted.
    public func allocate(for attachment: AttachmentID, requesting requested: [IPAddress] = []) throws -> [Lease] {
        var requestedBySet: [Int: IPAddress] = [:]
        var unplaced: [IPAddress] = []
        for address in requested {
            if let index = rangeSets.firstIndex(where: { $0.contains(address) }), requestedBySet[index] == nil {
                requestedBySet[index] = address
            } else if !requestedBySet.values.contains(address) {
                unplaced.append(address)
            }
        }
        guard unplaced.isEmpty else { throw IPAMError.requestedAddressesNotAllocated(unplaced) }

        return try store.withLock {
            let existing = try store.reservations()
            var taken = Set(existing.map(\.address))
            var leases: [Lease] = []
            do {
                for (index, set) in rangeSets.enumerated() {
                    let lease: Lease
                    if let address = requestedBySet[index] {
                        lease = try reserveRequested(address, in: set, index: index, for: attachment, existing: existing)
                    } else {
                        if let held = existing.first(where: { $0.isHeld(by: attachment) && set.contains($0.address) }) {
                            throw IPAMError.alreadyAllocated(held.address, rangeSet: index,
                                                             containerID: attachment.containerID, ifName: attachment.ifName)
                        }
                        lease = try reserveNext(in: set, index: index, for: attachment, skipping: taken)
                    }
                    taken.insert(lease.address.address)
                    leases.append(lease)
                }
            } catch {
                for lease in leases {
                    // The caller sees the failure that stopped the ADD; a reservation that cannot be
                    // removed now is released by the runtime's DEL or by GC.
                    try? store.release(lease.address.address)
                }
                throw error
            }
            return leases
        }
    }

    private func reserveRequested(_ address: IPAddress, in set: RangeSet, index: Int, for attachment: AttachmentID,
                                  existing: [Reservation]) throws -> Lease {
        let range = set.range(for: address)!         // placed by contains(_:) above
        guard address != range.gateway else { throw IPAMError.requestedAddressIsGateway(address) }
        guard try store.reserve(address, for: attachment, rangeSetIndex: index) else {
            let owner = existing.first { $0.address == address }.map { r in r.containerID + (r.ifName.map { "/\($0)" } ?? "") }
            throw IPAMError.requestedAddressUnavailable(address, owner: owner ?? "another attachment")
        }
        return Lease(rangeSetIndex: index, address: CIDR(address, prefixLength: range.subnet.prefixLength)!, gateway: range.gateway)
    }

    private func reserveNext(in set: RangeSet, index: Int, for attachment: AttachmentID,
                             skipping taken: Set<IPAddress>) throws -> Lease {
        // A last address outside this set (range sets were edited) only restarts the round robin.
        let last = try store.lastReservedAddress(rangeSetIndex: index)
        for (address, range) in set.candidates(after: last) where !taken.contains(address) {
            if try store.reserve(address, for: attachment, rangeSetIndex: index) {
                return Lease(rangeSetIndex: index, address: CIDR(address, prefixLength: range.subnet.prefixLength)!,
                             gateway: range.gateway)
            }
        }
        throw IPAMError.rangeExhausted(rangeSet: index, ranges: set.description)
    }

    /// DEL: releases what `attachment` holds, in any range set. Like the reference, files in the old
    /// format (container ID only) are released when no current-format file matched. Idempotent.
    @discardableResult
    public func release(_ attachment: AttachmentID) throws -> [IPAddress] {
        try store.withLock {
            let all = try store.reservations()
            var mine = all.filter { $0.isHeldExactly(by: attachment) }
            if mine.isEmpty { mine = all.filter { $0.ifName == nil && $0.containerID == attachment.containerID } }
            for r in mine { try store.release(r.address) }
            return mine.map(\.address)
        }
    }

    /// CHECK: the addresses `attachment` holds (current-format or old-format files).
    public func addresses(of attachment: AttachmentID) throws -> [IPAddress] {
        try store.withLock { try store.reservations().filter { $0.isHeld(by: attachment) }.map(\.address) }
    }

    /// GC: releases every reservation whose attachment is not in `valid`, and returns what it released.
    /// An old-format file (container ID only) stays while any valid attachment has its container ID.
    @discardableResult
    public func collectGarbage(keeping valid: Set<AttachmentID>) throws -> [IPAddress] {
        let validContainers = Set(valid.map(\.containerID))
        return try store.withLock {
            var released: [IPAddress] = []
            for r in try store.reservations() {
                let keep = r.ifName.map { valid.contains(AttachmentID(containerID: r.containerID, ifName: $0)) }
                    ?? validContainers.contains(r.containerID)
                if !keep {
                    try store.release(r.address)
                    released.append(r.address)
                }
            }
            return released
        }
    }

    /// Free addresses per range set (saturating at `UInt64.max` for large IPv6 ranges).
    public func freeAddressCounts() throws -> [UInt64] {
        let reserved = Set(try store.withLock { try store.reservations() }.map(\.address))
        return rangeSets.map { set in
            var free: UInt64 = 0
            for range in set.ranges {
                let capacity = range.allocatableCount
                let used = capacity == .max ? 0
                    : UInt64(reserved.count { range.contains($0) && $0 != range.gateway })
                let (sum, overflow) = free.addingReportingOverflow(capacity - min(used, capacity))
                free = overflow ? .max : sum
            }
            return free
        }
    }

    /// STATUS: throws `.unavailable` when some range set has no free address, so an ADD would fail.
    public func checkAvailability() throws {
        for (index, free) in try freeAddressCounts().enumerated() where free == 0 {
            throw IPAMError.unavailable(reason: "no IP addresses available in range set \(index): \(rangeSets[index])")
        }
    }
}
