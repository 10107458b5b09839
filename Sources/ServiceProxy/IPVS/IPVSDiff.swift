import NetAddress
import Netlink

/// Which of the kernel's virtual services are Keel's. The kernel's IPVS table is one per network
/// namespace and other software (keepalived, an admin's `ipvsadm`) may use it, so Keel changes only:
///
/// - services on an address of its dummy interface (`keel-ipvs0` holds nothing but Keel's addresses);
/// - services on a node-port address whose port is in the node-port range (30000–32767 unless the
///   cluster says otherwise);
/// - services it wants (it takes those over), and those this run of Keel created (`keys`).
///
/// A leftover node-port service on an address that is no longer a node-port address is therefore
/// not Keel's any more after a restart: the price of never deleting a stranger's service.
public struct IPVSOwnership: Sendable, Hashable {
    public var addresses: Set<IPAddress>
    public var nodePortAddresses: Set<IPAddress>
    public var nodePortRange: ClosedRange<UInt16>
    /// Services Keel applied itself (a node port outside the range, say): its own whatever the rules above.
    public var keys: Set<IPVSServiceKey>

    /// Kubernetes' default `--service-node-port-range`.
    public static let defaultNodePortRange: ClosedRange<UInt16> = 30000...32767

    public init(addresses: Set<IPAddress>, nodePortAddresses: Set<IPAddress>, nodePortRange: ClosedRange<UInt16> = Self.defaultNodePortRange,
                keys: Set<IPVSServiceKey> = []) {
        self.addresses = addresses
        self.nodePortAddresses = nodePortAddresses
        self.nodePortRange = nodePortRange
        self.keys = keys
    }

    public func owns(_ key: IPVSServiceKey) -> Bool {
        keys.contains(key) || addresses.contains(key.address) || (nodePortAddresses.contains(key.address) && nodePortRange.contains(key.port))
    }
}

/// One real server of one virtual service: what graceful removal keeps track of.
public struct IPVSDestinationID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var service: IPVSServiceKey
    public var address: IPAddress
    public var port: UInt16
    public init(service: IPVSServiceKey, address: IPAddress, port: UInt16) {
        self.service = service
        self.address = address
        self.port = port
    }
    public init(_ service: IPVSServiceKey, _ destination: IPVSDestination) {
        self.init(service: service, address: destination.address, port: destination.port)
    }
    public var description: String { "\(address):\(port) of \(service)" }
    public static func < (l: Self, r: Self) -> Bool { (l.service, l.address, l.port) < (r.service, r.address, r.port) }
}

extension IPVSService {
    /// Whether the kernel's service already does what `other` asks: scheduler and flags (never the
    /// kernel's own `.hashed`), and timeout and netmask only where they mean something (persistence).
    public func hasSameSettings(as other: IPVSService) -> Bool {
        guard scheduler == other.scheduler, flags.subtracting(.hashed) == other.flags.subtracting(.hashed) else { return false }
        guard flags.contains(.persistent) else { return true }
        return timeout == other.timeout && netmask == other.netmask
    }
}

extension IPVSDestination {
    /// Everything but the address and port, which identify it.
    public func hasSameSettings(as other: IPVSDestination) -> Bool {
        weight == other.weight && forwarding == other.forwarding
            && upperThreshold == other.upperThreshold && lowerThreshold == other.lowerThreshold
    }
}

/// The operations that turn the kernel's IPVS services (`current`, as read or as last applied) into
/// `desired`. Pure.
///
/// - Services and destinations that are already right are not touched; `current` services that
///   `ownership` does not cover are never touched, whatever `desired` says about others.
/// - Order: per desired service (sorted), add or update it, then add and update its destinations,
///   then remove its leaving ones; services Keel no longer wants are deleted last (the kernel takes
///   their destinations with them).
/// - A leaving destination of a service that stays (graceful removal, as kube-proxy's graceful
///   termination): UDP and SCTP ones are deleted at once — there is no connection to wait for, and
///   `expire_nodest_conn` drops their flows' entries on the next packet so clients move on. A TCP one
///   first gets weight 0 (no new connections; established ones finish) and is deleted once the
///   caller lists it in `removable` (no connections left, or drained long enough).
public func ipvsOperations(from current: [IPVSServiceKey: IPVSVirtualService], to desired: [IPVSServiceKey: IPVSVirtualService],
                           ownership: IPVSOwnership, removable: Set<IPVSDestinationID> = []) -> [IPVSOperation] {
    var operations: [IPVSOperation] = []
    for key in desired.keys.sorted() {
        let want = desired[key]!
        guard let have = current[key] else {
            operations.append(.addService(want.service))
            operations += want.destinations.map { .addDestination(key, $0) }
            continue
        }
        if !have.service.hasSameSettings(as: want.service) { operations.append(.updateService(want.service)) }
        let existing = Dictionary(have.destinations.map { (Backend($0.address, $0.port), $0) }, uniquingKeysWith: { a, _ in a })
        let wanted = Set(want.destinations.map { Backend($0.address, $0.port) })
        for d in want.destinations {
            guard let old = existing[Backend(d.address, d.port)] else {
                operations.append(.addDestination(key, d))
                continue
            }
            if !old.hasSameSettings(as: d) { operations.append(.updateDestination(key, d)) }
        }
        for old in have.destinations where !wanted.contains(Backend(old.address, old.port)) {
            if key.proto != .tcp || removable.contains(IPVSDestinationID(key, old)) {
                operations.append(.deleteDestination(key, address: old.address, port: old.port))
            } else if old.weight != 0 {
                var draining = old
                draining.weight = 0
                operations.append(.updateDestination(key, draining))
            }
        }
    }
    for key in current.keys.sorted() where desired[key] == nil && ownership.owns(key) {
        operations.append(.deleteService(key))
    }
    return operations
}

extension Dictionary where Key == IPVSServiceKey, Value == IPVSVirtualService {
    /// The table after `operations` succeeded: how a data plane keeps its view of the kernel
    /// without reading it back.
    public func applying(_ operations: [IPVSOperation]) -> Self {
        var table = self
        for op in operations {
            switch op {
            case .addService(let s), .updateService(let s):
                table[s.key] = IPVSVirtualService(service: s, destinations: table[s.key]?.destinations ?? [])
            case .deleteService(let key):
                table[key] = nil
            case .addDestination(let key, let d), .updateDestination(let key, let d):
                guard var v = table[key] else { continue }
                v.destinations.removeAll { $0.address == d.address && $0.port == d.port }
                v.destinations.append(d)
                v.destinations.sort()
                table[key] = v
            case .deleteDestination(let key, let address, let port):
                table[key]?.destinations.removeAll { $0.address == address && $0.port == port }
            }
        }
        return table
    }
}

/// What one sync changed, for logs and metrics.
public struct IPVSChangeCounts: Sendable, Hashable, CustomStringConvertible {
    public var servicesAdded = 0, servicesUpdated = 0, servicesDeleted = 0
    public var destinationsAdded = 0, destinationsUpdated = 0, destinationsDeleted = 0

    public init() {}
    public init(_ operations: [IPVSOperation]) {
        for op in operations {
            switch op {
            case .addService: servicesAdded += 1
            case .updateService: servicesUpdated += 1
            case .deleteService: servicesDeleted += 1
            case .addDestination: destinationsAdded += 1
            case .updateDestination: destinationsUpdated += 1
            case .deleteDestination: destinationsDeleted += 1
            }
        }
    }
    public var total: Int { servicesAdded + servicesUpdated + servicesDeleted + destinationsAdded + destinationsUpdated + destinationsDeleted }
    public var description: String {
        "services +\(servicesAdded) ~\(servicesUpdated) -\(servicesDeleted), destinations +\(destinationsAdded) ~\(destinationsUpdated) -\(destinationsDeleted)"
    }
}
