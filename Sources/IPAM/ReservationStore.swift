import NetAddress

/// Where host-local keeps its reservations. `DiskReservationStore` is the reference's on-disk layout;
/// `InMemoryReservationStore` is the fake the allocator tests run on.
///
/// Every method except `withLock` must be called inside `withLock`: the lock is what makes
/// "find a free address, then reserve it" and "read the last reserved address" safe across processes.
public protocol ReservationStore: Sendable {
    /// Runs `body` holding the store's exclusive lock. Failing to take or release the lock throws.
    func withLock<R>(_ body: () throws -> R) throws -> R
    /// Reserves `address` for `attachment` unless it is reserved already (then returns false), and
    /// records it as the last reserved address of range set `rangeSetIndex`.
    func reserve(_ address: IPAddress, for attachment: AttachmentID, rangeSetIndex: Int) throws -> Bool
    /// The address recorded by the last `reserve` for range set `rangeSetIndex`, if any.
    func lastReservedAddress(rangeSetIndex: Int) throws -> IPAddress?
    /// Every reservation, in address order.
    func reservations() throws -> [Reservation]
    /// Removes the reservation of `address`; removing one that does not exist is not an error.
    func release(_ address: IPAddress) throws
}
