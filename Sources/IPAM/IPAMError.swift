#if canImport(Glibc)
import Glibc
#endif
import CNI
import NetAddress

/// Why host-local IPAM refused or failed. IPAM never names a CNI code: `IPAMError+CNI.swift` is the
/// one place where these become `CNIError`s.
public enum IPAMError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The network config is wrong; `field` is its JSON path (`ipam.ranges[0][1].rangeEnd`).
    case invalidConfig(field: String, reason: String)
    /// Every allocatable address of range set `rangeSet` (its ranges as text) is reserved.
    case rangeExhausted(rangeSet: Int, ranges: String)
    /// A requested address is reserved already; `owner` is what its reservation file says.
    case requestedAddressUnavailable(IPAddress, owner: String)
    /// A requested address is the gateway of its range.
    case requestedAddressIsGateway(IPAddress)
    /// Requested addresses that no range set contains (or a second one for the same range set).
    case requestedAddressesNotAllocated([IPAddress])
    /// The attachment holds `address` in range set `rangeSet` already; the CNI spec forbids a second ADD.
    case alreadyAllocated(IPAddress, rangeSet: Int, containerID: String, ifName: String)
    /// CHECK found no reservation for the attachment.
    case noReservation(containerID: String, ifName: String)
    /// STATUS: some range set has no free address left, so an ADD would fail.
    case unavailable(reason: String)
    /// A file operation failed. `operation` names the call (`open`, `flock`, `write`, ...).
    case io(operation: String, path: String, errno: Int32)

    public var description: String {
        switch self {
        case let .invalidConfig(field, reason):
            return "invalid IPAM config: \(field): \(reason)"
        case let .rangeExhausted(index, ranges):
            return "no IP addresses available in range set \(index): \(ranges)"
        case let .requestedAddressUnavailable(address, owner):
            return "requested IP address \(address) is not available: reserved by \(owner)"
        case let .requestedAddressIsGateway(address):
            return "requested ip \(address) is subnet's gateway"
        case let .requestedAddressesNotAllocated(addresses):
            return "failed to allocate all requested IPs: " + addresses.map(\.description).joined(separator: " ")
        case let .alreadyAllocated(address, index, containerID, ifName):
            return "\(address) in range set \(index) has been allocated to \(containerID)/\(ifName), duplicate allocation is not allowed"
        case let .noReservation(containerID, ifName):
            return "host-local: failed to find address added by container \(containerID) (\(ifName))"
        case let .unavailable(reason):
            return "host-local: \(reason)"
        case let .io(operation, path, errno):
            return "\(operation) \(quoted: path): \(String(cString: strerror(errno))) (errno \(errno))"
        }
    }
}
