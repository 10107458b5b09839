import NetAddress
import Netlink

/// An IPVS scheduler: the kernel module `ip_vs_<name>` that picks a real server for each new
/// connection. Checked against the schedulers Linux ships, so that a typo fails at start-up rather
/// than at the first IPVS_CMD_NEW_SERVICE (which would fail every service with ENOENT).
public struct IPVSScheduler: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init?(rawValue: String) {
        guard Self.known.contains(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    /// Round robin, kube-proxy's default.
    public static let roundRobin = IPVSScheduler(rawValue: "rr")!
    /// The schedulers of net/netfilter/ipvs (ip_vs_<name>.c).
    public static let known = ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"]

    public var description: String { rawValue }
}

/// One virtual service Keel wants (or the kernel holds): the service and its real servers, sorted.
public struct IPVSVirtualService: Sendable, Hashable, CustomStringConvertible {
    public var service: IPVSService
    public var destinations: [IPVSDestination]

    public init(service: IPVSService, destinations: [IPVSDestination] = []) {
        self.service = service
        self.destinations = destinations.sorted()
    }

    public var key: IPVSServiceKey { service.key }
    public var description: String { "\(service) -> [\(destinations.map(\.description).joined(separator: ", "))]" }
}

/// Two service ports that ask for the same virtual service (say, two Services with the same
/// external IP and port). IPVS has one service per address, protocol and port: the port whose
/// name sorts first keeps it, as a Service created first keeps a contested address in Kubernetes.
public struct IPVSKeyConflict: Sendable, Hashable, CustomStringConvertible {
    public var key: IPVSServiceKey
    public var kept: ServicePortName
    public var dropped: ServicePortName
    public var description: String { "\(key) is wanted by \(kept) and \(dropped); \(dropped) does not get it" }
}

/// What the IPVS data plane must program for a `ProxyState`, as values. Pure: no kernel, no clock.
///
/// - cluster IPs × port → the internal backends;
/// - external IPs, load-balancer IPs and every node-port address × node port → the external backends
///   (this node's only with externalTrafficPolicy Local);
/// - the chosen scheduler; ClientIP affinity → the persistent flag and its timeout (netmask /32);
/// - every backend has weight 1; terminating endpoints not among the backends stay with weight 0
///   (no new connections, established ones finish);
/// - the addresses `keel-ipvs0` must hold: cluster, external and LB IPs (never node addresses,
///   which are local already).
///
/// IPv4 only, like the nftables plane: the companion nftables table is of family `ip`.
public struct IPVSDesiredState: Sendable, Equatable {
    public var services: [IPVSServiceKey: IPVSVirtualService]
    /// The service port each virtual service stands for.
    public var owners: [IPVSServiceKey: ServicePortName]
    /// The addresses on the dummy interface, sorted.
    public var dummyAddresses: [IPAddress]
    /// Where node ports are programmed (from `ProxyState`), sorted.
    public var nodePortAddresses: [IPAddress]
    public var conflicts: [IPVSKeyConflict]

    public init(_ state: ProxyState, scheduler: IPVSScheduler = .roundRobin) {
        services = [:]
        owners = [:]
        conflicts = []
        nodePortAddresses = state.nodePortAddresses.filter(\.isIPv4)
        var dummy = Set<IPAddress>()
        for svc in state.services {   // sorted by name: the first claim of a key wins
            dummy.formUnion(Self.addresses(of: svc))
            for (key, virtual) in Self.claims(of: svc, nodePortAddresses: nodePortAddresses, scheduler: scheduler) {
                if let holder = owners[key] {
                    if holder != svc.name { conflicts.append(IPVSKeyConflict(key: key, kept: holder, dropped: svc.name)) }
                    continue
                }
                owners[key] = svc.name
                services[key] = virtual
            }
        }
        dummyAddresses = dummy.sorted()
    }

    /// The same desired state from a ledger of the same `ProxyState` (what a full sync of the data
    /// plane uses, so that the per-port work is done once); conflicts come sorted by key.
    init(_ ledger: IPVSPortLedger) {
        services = [:]
        owners = [:]
        for key in ledger.keys {
            services[key] = ledger.desired(key)
            owners[key] = ledger.holder(of: key)
        }
        dummyAddresses = ledger.addresses.sorted()
        nodePortAddresses = ledger.nodePortAddresses
        conflicts = ledger.conflicts
    }

    /// The virtual services one service port asks for, in claim order (cluster IPs, then external
    /// and LB IPs, then node ports); a key may come twice, and its first claim is the one that counts.
    /// Pure: the full and the incremental sync both build on it.
    static func claims(of svc: ServicePortState, nodePortAddresses: [IPAddress], scheduler: IPVSScheduler) -> [(IPVSServiceKey, IPVSVirtualService)] {
        guard let proto = IPVSProtocol(rawValue: UInt16(svc.name.proto.number)) else { return [] }
        let service = { (key: IPVSServiceKey) in
            IPVSService(key: key, scheduler: scheduler.rawValue, flags: svc.affinityTimeout == nil ? [] : .persistent,
                        timeout: svc.affinityTimeout ?? 0)
        }
        let internalDestinations = destinations(svc.internalBackends, terminating: svc.terminatingInternalBackends)
        let externalDestinations = destinations(svc.externalBackends, terminating: svc.terminatingExternalBackends)
        var claims: [(IPVSServiceKey, [IPVSDestination])] = []
        for ip in svc.clusterIPs where ip.isIPv4 {
            claims.append((IPVSServiceKey(address: ip, proto: proto, port: svc.port), internalDestinations))
        }
        for ip in svc.externalIPs + svc.loadBalancerIPs where ip.isIPv4 {
            claims.append((IPVSServiceKey(address: ip, proto: proto, port: svc.port), externalDestinations))
        }
        if let nodePort = svc.nodePort {
            for ip in nodePortAddresses { claims.append((IPVSServiceKey(address: ip, proto: proto, port: nodePort), externalDestinations)) }
        }
        return claims.map { ($0.0, IPVSVirtualService(service: service($0.0), destinations: $0.1)) }
    }

    /// The addresses one service port puts on the dummy interface: its cluster, external and LB IPs
    /// (none for a protocol IPVS does not balance).
    static func addresses(of svc: ServicePortState) -> Set<IPAddress> {
        guard IPVSProtocol(rawValue: UInt16(svc.name.proto.number)) != nil else { return [] }
        return Set((svc.clusterIPs + svc.externalIPs + svc.loadBalancerIPs).filter(\.isIPv4))
    }

    /// Backends with weight 1, then the terminating ones not among them with weight 0.
    static func destinations(_ backends: [Backend], terminating: [Backend]) -> [IPVSDestination] {
        var weights: [Backend: UInt32] = [:]
        for b in terminating where b.address.isIPv4 { weights[b] = 0 }
        for b in backends where b.address.isIPv4 { weights[b] = 1 }
        return weights.map { IPVSDestination(address: $0.key.address, port: $0.key.port, weight: $0.value) }.sorted()
    }
}
