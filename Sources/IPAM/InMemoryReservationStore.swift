import NetAddress
import Synchronization

/// A `ReservationStore` in memory, for tests of the allocator and of code that uses it, like the
/// reference's `backend/testing/fake_store.go`.
public final class InMemoryReservationStore: ReservationStore {
    private struct State {
        var owners: [IPAddress: (containerID: String, ifName: String?)] = [:]
        var lastReserved: [Int: IPAddress] = [:]
        var lockError: IPAMError?
    }
    private let lock = Mutex<Void>(())
    private let state: Mutex<State>

    /// Starts with `reservations` and `lastReserved` (range set index → address) already stored.
    public init(reservations: [Reservation] = [], lastReserved: [Int: IPAddress] = [:]) {
        var s = State()
        for r in reservations { s.owners[r.address] = (r.containerID, r.ifName) }
        s.lastReserved = lastReserved
        state = Mutex(s)
    }

    /// Makes every later `withLock` throw `error` (nil: lock normally again).
    public func failLocking(with error: IPAMError?) { state.withLock { $0.lockError = error } }

    public func withLock<R>(_ body: () throws -> R) throws -> R {
        if let error = state.withLock({ $0.lockError }) { throw error }
        var result: Result<R, any Error>!
        lock.withLock { _ in result = Result { try body() } }
        return try result.get()
    }

    public func reserve(_ address: IPAddress, for attachment: AttachmentID, rangeSetIndex: Int) throws -> Bool {
        state.withLock { s in
            guard s.owners[address] == nil else { return false }
            s.owners[address] = (attachment.containerID.trimmingWhitespace(), attachment.ifName)
            s.lastReserved[rangeSetIndex] = address
            return true
        }
    }

    public func lastReservedAddress(rangeSetIndex: Int) throws -> IPAddress? {
        state.withLock { $0.lastReserved[rangeSetIndex] }
    }

    public func reservations() throws -> [Reservation] {
        state.withLock { s in
            s.owners.map { Reservation(address: $0.key, containerID: $0.value.containerID, ifName: $0.value.ifName) }
                .sorted { $0.address < $1.address }
        }
    }

    public func release(_ address: IPAddress) throws {
        state.withLock { s in _ = s.owners.removeValue(forKey: address) }
    }
}
