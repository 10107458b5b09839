import NetAddress

/// A discovery.k8s.io/v1 EndpointSlice, validated on the way in: every address matches the slice's
/// ``addressType`` and every port is in 1–65535.
///
/// A Service's endpoints are spread over any number of slices that carry the label
/// `kubernetes.io/service-name` and live in the Service's namespace; ``ClusterSnapshot/endpoints(of:)``
/// merges them. Each slice resolves the Service's ports for the endpoints it lists: its `ports`
/// are named after the *Service* port and give the number on the pod, so a named `targetPort` can
/// mean 8080 in one slice and 9090 in another.
///
/// Its `Codable` form is the Kubernetes wire shape; decoding validates and throws
/// `DecodingError.dataCorrupted` naming the first bad field.
public struct EndpointSlice: Hashable, Sendable {
    /// The label that ties a slice to its Service.
    public static let serviceNameLabel = "kubernetes.io/service-name"

    public var metadata: ObjectMeta
    public var addressType: EndpointAddressType
    public var endpoints: [Endpoint]
    /// `ports`; an empty list means the slice resolves no Service port.
    public var ports: [EndpointPort]

    public init(metadata: ObjectMeta, addressType: EndpointAddressType, endpoints: [Endpoint] = [],
                ports: [EndpointPort] = []) {
        self.metadata = metadata
        self.addressType = addressType
        self.endpoints = endpoints
        self.ports = ports
    }

    public var name: String { metadata.name }
    /// `metadata.namespace`, or `default` when the manifest has none.
    public var namespace: String { metadata.namespace ?? "default" }
    public var key: ObjectKey { ObjectKey(kind: .endpointSlice, namespace: metadata.namespace, name: metadata.name) }
    /// The value of the `kubernetes.io/service-name` label, if set and not empty.
    public var serviceName: String? { metadata.labels[Self.serviceNameLabel].flatMap { $0.isEmpty ? nil : $0 } }
    /// The Service this slice belongs to: the label's name in the slice's own namespace.
    public var serviceKey: ObjectKey? {
        serviceName.map { ObjectKey(kind: .service, namespace: namespace, name: $0) }
    }
    /// The port called `name` with `protocol` (a Service port's name), as this slice resolves it.
    public func port(named name: String, protocol: PortProtocol = .tcp) -> UInt16? {
        ports.first { $0.name == name && $0.protocol == `protocol` }?.port
    }

    /// One entry of `endpoints`: usually one pod.
    public struct Endpoint: Hashable, Sendable {
        /// `addresses`, at least one; all of the slice's ``EndpointSlice/addressType``. Kubernetes
        /// treats them as interchangeable, and proxies use the first.
        public var addresses: [EndpointAddress]
        public var conditions: EndpointConditions
        public var nodeName: String?
        public var zone: String?
        public var hostname: String?
        /// `hints.forZones[].name`, for topology-aware routing. Hints are advisory: a malformed
        /// `hints` is ignored rather than reported.
        public var zoneHints: [String]

        public init(addresses: [EndpointAddress], conditions: EndpointConditions = EndpointConditions(),
                    nodeName: String? = nil, zone: String? = nil, hostname: String? = nil, zoneHints: [String] = []) {
            self.addresses = addresses
            self.conditions = conditions
            self.nodeName = nodeName
            self.zone = zone
            self.hostname = hostname
            self.zoneHints = zoneHints
        }
        /// An endpoint with one IP address.
        public init(_ address: IPAddress, conditions: EndpointConditions = EndpointConditions(), nodeName: String? = nil) {
            self.init(addresses: [.ip(address)], conditions: conditions, nodeName: nodeName)
        }
    }
}

/// `addressType` of an EndpointSlice.
public enum EndpointAddressType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case ipv4 = "IPv4"
    case ipv6 = "IPv6"
    /// Names, not addresses: proxies ignore such slices.
    case fqdn = "FQDN"
    public var description: String { rawValue }
    /// The address family of `IPv4`/`IPv6` slices; nil for `FQDN`.
    public var family: AddressFamily? {
        switch self {
        case .ipv4: .ipv4
        case .ipv6: .ipv6
        case .fqdn: nil
        }
    }
}

/// One address of an endpoint: an IP for `IPv4`/`IPv6` slices, a name for `FQDN` ones.
public enum EndpointAddress: Hashable, Sendable, CustomStringConvertible {
    case ip(IPAddress)
    case fqdn(String)
    public var ip: IPAddress? { if case .ip(let a) = self { a } else { nil } }
    public var description: String {
        switch self {
        case .ip(let a): a.description
        case .fqdn(let s): s
        }
    }
}

/// `endpoints[].conditions`, kept as written, with the readings Kubernetes prescribes for unset values.
public struct EndpointConditions: Hashable, Sendable {
    public var ready: Bool?
    public var serving: Bool?
    public var terminating: Bool?

    public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
        self.ready = ready
        self.serving = serving
        self.terminating = terminating
    }

    /// `ready`; unset reads as true ("a nil value should be interpreted as true").
    public var isReady: Bool { ready ?? true }
    /// `serving`; unset defers to the ready condition. (Newer API text says "true"; deferring differs
    /// only for `ready: false` without `serving`, written by producers that predate `serving`, whose
    /// endpoint is then not serving either.)
    public var isServing: Bool { serving ?? isReady }
    /// `terminating`; unset reads as false.
    public var isTerminating: Bool { terminating ?? false }
}

/// One entry of an EndpointSlice's `ports`: the number on the endpoints for the Service port `name`.
public struct EndpointPort: Hashable, Sendable {
    /// The Service port's name; empty for a Service's single unnamed port.
    public var name: String
    public var `protocol`: PortProtocol
    /// Nil when the slice does not say; Kubernetes leaves the meaning to the consumer, and a proxy
    /// forwards nothing for such a port.
    public var port: UInt16?
    public var appProtocol: String?

    public init(name: String = "", protocol: PortProtocol = .tcp, port: UInt16?, appProtocol: String? = nil) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
        self.appProtocol = appProtocol
    }
}
