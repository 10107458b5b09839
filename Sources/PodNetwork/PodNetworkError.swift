import CNI
import NFTables
import Netlink

/// Why attaching or detaching a pod failed, in terms of the request; kernel errors keep their op and errno.
public enum PodNetworkError: Error, CustomStringConvertible, CNIErrorConvertible {
    /// A config field Keel understands but cannot honour (yet): code 2, naming the field.
    case unsupportedField(String, reason: String)
    /// A config value that is wrong: code 7, naming the field.
    case invalidConfig(field: String, reason: String)
    /// The network namespace path could not be opened: code 8 (ADD/CHECK), ignored by DEL.
    case netnsUnavailable(path: String, NetlinkError)
    /// A link with the bridge's name exists and is something else.
    case notABridge(name: String, kind: String)
    /// The IPAM plugin answered without an address.
    case ipamReturnedNoAddress(ipamType: String)
    /// The bridge already has a different address in the gateway's subnet (and forceAddress is off).
    case bridgeAddressConflict(bridge: String, existing: String, wanted: String)
    /// CHECK found the pod different from its prevResult.
    case checkFailed(String)
    case kernel(NetlinkError)
    case nftables(NFTablesError)
    /// Several failures, as a DEL that went on past errors reports them.
    case many([any Error])

    public var description: String {
        switch self {
        case let .unsupportedField(field, reason): "unsupported field \(field): \(reason)"
        case let .invalidConfig(field, reason): "invalid \(field): \(reason)"
        case let .netnsUnavailable(path, e): "cannot open netns \(quoted: path): \(e.errno)"
        case let .notABridge(name, kind): "\(name) already exists but is a \(kind), not a bridge"
        case let .ipamReturnedNoAddress(type): "IPAM plugin \(type) returned missing IP config"
        case let .bridgeAddressConflict(bridge, existing, wanted):
            "\(bridge) already has an IP address \(existing) different from \(wanted) (set forceAddress to replace it)"
        case let .checkFailed(what): "check failed: \(what)"
        case let .kernel(e): e.description
        case let .nftables(e): e.description
        case let .many(errors): errors.map { "\($0)" }.joined(separator: "; ")
        }
    }

    public var cniError: CNIError {
        switch self {
        case let .unsupportedField(field, _): CNIError(.unsupportedField, description, details: field)
        case let .invalidConfig(field, _): CNIError(.invalidNetworkConfig, description, details: field)
        case .netnsUnavailable: CNIError(.invalidNetNS, description)
        case let .many(errors) where errors.count == 1: CNIError(mapping: errors[0])
        default: CNIError(.internalError, description)
        }
    }
}

/// Runs a kernel step and wraps its typed error, keeping operation, subject and errno.
func kernel<R>(_ body: () throws(NetlinkError) -> R) throws(PodNetworkError) -> R {
    do { return try body() } catch { throw .kernel(error) }
}
