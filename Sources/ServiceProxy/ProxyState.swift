import NetAddress

/// The transport protocols a Service port can use.
public enum ServiceProtocol: String, Sendable, Hashable, Comparable, CaseIterable {
    case tcp = "TCP", udp = "UDP", sctp = "SCTP"
    public var number: UInt8 { switch self { case .tcp: 6; case .udp: 17; case .sctp: 132 } }
    var lowercased: String { switch self { case .tcp: "tcp"; case .udp: "udp"; case .sctp: "sctp" } }
    public static func < (l: Self, r: Self) -> Bool { l.number < r.number }
}

/// One port of one Service: the unit the proxy programs (kube-proxy's ServicePortName).
public struct ServicePortName: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var name: String
    public var port: String
    public var proto: ServiceProtocol

    public init(namespace: String, name: String, port: String, proto: ServiceProtocol) {
        self.namespace = namespace
        self.name = name
        self.port = port
        self.proto = proto
    }
    public var description: String { "\(namespace)/\(name)\(port.isEmpty ? "" : ":\(port)")/\(proto.rawValue.lowercased())" }
    /// The order of ``description``s (byte order; names are ASCII), without building them: sorting
    /// 10K service ports compares 140K pairs.
    public static func < (l: Self, r: Self) -> Bool {
        var a = l.descriptionBytes, b = r.descriptionBytes
        while true {
            switch (a.next(), b.next()) {
            case (nil, nil): return false
            case (nil, _): return true
            case (_, nil): return false
            case let (x?, y?) where x != y: return x < y
            default: continue
            }
        }
    }

    /// The UTF-8 bytes of ``description``, one at a time.
    private var descriptionBytes: DescriptionBytes { DescriptionBytes(self) }

    private struct DescriptionBytes: IteratorProtocol {
        private let name: ServicePortName
        private var part = 0
        private var bytes: String.UTF8View.Iterator

        init(_ name: ServicePortName) {
            self.name = name
            bytes = name.namespace.utf8.makeIterator()
        }

        /// The pieces of the description in order (literals: no allocation).
        private func piece(_ i: Int) -> String? {
            switch i {
            case 0: name.namespace
            case 1: "/"
            case 2: name.name
            case 3: name.port.isEmpty ? "" : ":"
            case 4: name.port
            case 5: "/"
            case 6: name.proto.lowercased
            default: nil
            }
        }

        mutating func next() -> UInt8? {
            while true {
                if let b = bytes.next() { return b }
                part += 1
                guard let p = piece(part) else { return nil }
                bytes = p.utf8.makeIterator()
            }
        }
    }
}

/// A backend address and port.
public struct Backend: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }
    public var description: String { "\(address):\(port)" }
    public static func < (l: Self, r: Self) -> Bool { (l.address, l.port) < (r.address, r.port) }
}

/// What the proxy must do for one service port on this node, already decided: which addresses it
/// answers on, and which backends serve internal and external traffic. Independent of the data
/// plane (nftables now; IPVS is the second implementation of `ServiceDataplane`).
public struct ServicePortState: Sendable, Hashable {
    public var name: ServicePortName
    public var clusterIPs: [IPAddress]
    public var port: UInt16
    public var nodePort: UInt16?
    public var externalIPs: [IPAddress]
    public var loadBalancerIPs: [IPAddress]
    /// Empty: every source may use the load-balancer IPs.
    public var loadBalancerSourceRanges: [CIDR]
    /// ClientIP affinity timeout in seconds; nil without affinity.
    public var affinityTimeout: UInt32?
    /// Backends for traffic to the cluster IPs (all usable ones, or this node's with internalTrafficPolicy Local).
    public var internalBackends: [Backend]
    /// Backends for NodePort / external / load-balancer traffic (this node's only with externalTrafficPolicy Local).
    public var externalBackends: [Backend]
    /// externalTrafficPolicy: Local — external traffic keeps its source address and never leaves the node.
    public var externalLocal: Bool
    /// Every usable backend, cluster-wide, whatever the traffic policies. Pods and the node itself
    /// reach the external addresses of an externalTrafficPolicy Local service through these (the
    /// policy is for clients outside the cluster, as in kube-proxy), and a service with none at all
    /// is refused, while one that has some, just not on this node, is dropped.
    public var clusterBackends: [Backend]
    /// Terminating endpoints that are not among `internalBackends` / `externalBackends` (same traffic
    /// policy): they take no new connections, but established ones may finish (KEP-1669). The IPVS
    /// plane keeps them as weight-0 destinations, because deleting a destination ends its
    /// connections there; the nftables plane needs nothing (conntrack keeps a flow on its DNAT).
    public var terminatingInternalBackends: [Backend]
    public var terminatingExternalBackends: [Backend]

    public init(name: ServicePortName, clusterIPs: [IPAddress], port: UInt16, nodePort: UInt16? = nil, externalIPs: [IPAddress] = [],
                loadBalancerIPs: [IPAddress] = [], loadBalancerSourceRanges: [CIDR] = [], affinityTimeout: UInt32? = nil,
                internalBackends: [Backend], externalBackends: [Backend]? = nil, externalLocal: Bool = false,
                clusterBackends: [Backend]? = nil, terminatingInternalBackends: [Backend] = [], terminatingExternalBackends: [Backend]? = nil) {
        self.name = name
        self.clusterIPs = clusterIPs
        self.port = port
        self.nodePort = nodePort
        self.externalIPs = externalIPs
        self.loadBalancerIPs = loadBalancerIPs
        self.loadBalancerSourceRanges = loadBalancerSourceRanges
        self.affinityTimeout = affinityTimeout
        self.internalBackends = internalBackends
        self.externalBackends = externalBackends ?? internalBackends
        self.externalLocal = externalLocal
        // Without it, the backends of either path: all of them unless both policies are Local.
        self.clusterBackends = clusterBackends ?? Set(internalBackends + (externalBackends ?? [])).sorted()
        self.terminatingInternalBackends = terminatingInternalBackends
        self.terminatingExternalBackends = terminatingExternalBackends ?? terminatingInternalBackends
    }

    var hasExternalEntry: Bool { nodePort != nil || !externalIPs.isEmpty || !loadBalancerIPs.isEmpty }
    /// True when some node has a usable backend: without one the service's addresses are refused.
    public var hasEndpoints: Bool { !clusterBackends.isEmpty }
}

/// The whole proxy input for this node, as a value.
public struct ProxyState: Sendable, Hashable {
    public var services: [ServicePortState]
    /// Addresses NodePorts answer on (the node's, filtered by --nodeport-addresses, never 127.0.0.0/8).
    public var nodePortAddresses: [IPAddress]
    /// Pod traffic is recognised by its source in the cluster CIDR; other clients are masqueraded.
    public var clusterCIDR: CIDR?
    /// The service address ranges (`--service-cidr` and the ServiceCIDR objects): an address in them
    /// that no service holds is dropped. Sorted, without ranges inside another one.
    public var serviceCIDRs: [CIDR]

    public init(services: [ServicePortState], nodePortAddresses: [IPAddress] = [], clusterCIDR: CIDR? = nil, serviceCIDRs: [CIDR] = []) {
        self.services = services.sorted { $0.name < $1.name }
        self.nodePortAddresses = nodePortAddresses.filter { !CIDR("127.0.0.0/8")!.contains($0) }.sorted()
        self.clusterCIDR = clusterCIDR
        self.serviceCIDRs = Self.outermost(serviceCIDRs)
    }

    /// `cidrs` without duplicates and without ranges that another one contains, sorted. Two
    /// prefixes either nest or are disjoint, so what is left never overlaps: an nftables interval
    /// set refuses overlapping elements (ServiceCIDR objects may overlap, and the flag may repeat one).
    public static func outermost(_ cidrs: [CIDR]) -> [CIDR] {
        let sorted = Set(cidrs.map(\.masked)).sorted { ($0.network, $0.prefixLength) < ($1.network, $1.prefixLength) }
        var kept: [CIDR] = []
        for c in sorted where !kept.contains(where: { $0.contains(c) }) { kept.append(c) }
        return kept
    }
}

/// A data plane that makes the kernel do what a `ProxyState` says.
public protocol ServiceDataplane: Sendable {
    /// Applies `state` (the whole desired state; implementations apply only the difference).
    func apply(_ state: ProxyState) throws
    /// Applies `state`, knowing that only the service ports in `changed` may differ from the state
    /// given to the previous call (nil: any may). A data plane that keeps its own view of what it
    /// applied compares only those; after a failed call it must not rely on the hint.
    func apply(_ state: ProxyState, changed: Set<ServicePortName>?) throws
}

extension ServiceDataplane {
    /// Without a cheaper way, the whole state is compared.
    public func apply(_ state: ProxyState, changed: Set<ServicePortName>?) throws { try apply(state) }
}

extension ProxyState {
    /// The index of the first service port not ordered before `name` (``services`` is sorted by name).
    func firstIndex(notBefore name: ServicePortName) -> Int {
        var low = 0, high = services.count
        while low < high {
            let mid = (low + high) / 2
            if services[mid].name < name { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// The service port called `name`, if the state has it.
    public func service(named name: ServicePortName) -> ServicePortState? {
        let i = firstIndex(notBefore: name)
        return i < services.count && services[i].name == name ? services[i] : nil
    }
}
