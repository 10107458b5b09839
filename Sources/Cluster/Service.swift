import NetAddress

/// A v1 Service, reduced to the fields a service proxy uses and validated on the way in.
///
/// A `Service` value always holds well-formed data: every address parses, every port is in
/// 1–65535, protocols and policies are known values, and the Kubernetes defaults are filled in
/// (`type` ClusterIP, `protocol` TCP, `targetPort` = `port`, session affinity timeout 10800 s,
/// traffic policies `Cluster`). Manifests that break the rules are reported as ``ManifestProblem``s
/// and never become a `Service`.
///
/// Headless (`clusterIP: None`) and `ExternalName` Services are valid Services: they decode and are
/// stored, and ``isHeadless`` / ``isExternalName`` tell a proxy to leave them alone.
///
/// Its `Codable` form is the Kubernetes wire shape; decoding validates and throws
/// `DecodingError.dataCorrupted` naming the first bad field.
public struct Service: Hashable, Sendable {
    public var metadata: ObjectMeta
    /// `spec.type`; `ClusterIP` when absent.
    public var type: ServiceType
    /// `spec.clusterIPs` (or `[spec.clusterIP]`), primary family first, at most one per family.
    /// Empty for a headless or `ExternalName` Service, and for one whose address is not allocated yet.
    public var clusterIPs: [IPAddress]
    /// `spec.clusterIP: None`: DNS publishes the endpoints directly, and no proxying is wanted.
    public var isHeadless: Bool
    /// `spec.ports`, in manifest order.
    public var ports: [ServicePort]
    /// `spec.selector`. Keel does not select pods itself (the EndpointSlices say which are behind
    /// the Service); kept for `keelctl`.
    public var selector: [String: String]
    /// `spec.externalName`, the DNS name an `ExternalName` Service stands for.
    public var externalName: String?
    /// `spec.externalIPs`: further addresses that nodes accept this Service's traffic on.
    public var externalIPs: [IPAddress]
    /// `spec.loadBalancerIP` (deprecated in Kubernetes, still written by some load balancers).
    public var loadBalancerIP: IPAddress?
    /// `spec.loadBalancerSourceRanges`, host bits cleared. Empty means every source is allowed.
    public var loadBalancerSourceRanges: [CIDR]
    /// `status.loadBalancer.ingress`.
    public var loadBalancerIngress: [LoadBalancerIngress]
    /// `spec.sessionAffinity` with `spec.sessionAffinityConfig.clientIP.timeoutSeconds`.
    public var sessionAffinity: SessionAffinity
    /// `spec.externalTrafficPolicy`; `Cluster` when absent.
    public var externalTrafficPolicy: TrafficPolicy
    /// `spec.internalTrafficPolicy`; `Cluster` when absent.
    public var internalTrafficPolicy: TrafficPolicy
    /// `spec.healthCheckNodePort`: where a `LoadBalancer` Service with `externalTrafficPolicy: Local`
    /// answers load-balancer health checks. Nil when not set.
    public var healthCheckNodePort: UInt16?
    /// `spec.ipFamilies`, in order. Empty when the manifest does not say (the API server always does).
    public var ipFamilies: [AddressFamily]
    /// `spec.publishNotReadyAddresses`: endpoints count as ready whatever their `ready` condition says.
    public var publishNotReadyAddresses: Bool

    /// Builds a Service without validation; tests and the API source's conversions use it.
    public init(metadata: ObjectMeta, type: ServiceType = .clusterIP, clusterIPs: [IPAddress] = [],
                isHeadless: Bool = false, ports: [ServicePort] = [], selector: [String: String] = [:],
                externalName: String? = nil, externalIPs: [IPAddress] = [], loadBalancerIP: IPAddress? = nil,
                loadBalancerSourceRanges: [CIDR] = [], loadBalancerIngress: [LoadBalancerIngress] = [],
                sessionAffinity: SessionAffinity = .none, externalTrafficPolicy: TrafficPolicy = .cluster,
                internalTrafficPolicy: TrafficPolicy = .cluster, healthCheckNodePort: UInt16? = nil,
                ipFamilies: [AddressFamily] = [], publishNotReadyAddresses: Bool = false) {
        self.metadata = metadata
        self.type = type
        self.clusterIPs = clusterIPs
        self.isHeadless = isHeadless
        self.ports = ports
        self.selector = selector
        self.externalName = externalName
        self.externalIPs = externalIPs
        self.loadBalancerIP = loadBalancerIP
        self.loadBalancerSourceRanges = loadBalancerSourceRanges
        self.loadBalancerIngress = loadBalancerIngress
        self.sessionAffinity = sessionAffinity
        self.externalTrafficPolicy = externalTrafficPolicy
        self.internalTrafficPolicy = internalTrafficPolicy
        self.healthCheckNodePort = healthCheckNodePort
        self.ipFamilies = ipFamilies
        self.publishNotReadyAddresses = publishNotReadyAddresses
    }

    public var name: String { metadata.name }
    /// `metadata.namespace`, or `default` when the manifest has none (as `kubectl apply` does).
    public var namespace: String { metadata.namespace ?? "default" }
    /// `Service/<namespace>/<name>`: the key in ``ClusterSnapshot/services`` and for ``ClusterSnapshot/endpoints(of:)``.
    public var key: ObjectKey { ObjectKey(kind: .service, namespace: metadata.namespace, name: metadata.name) }
    /// The primary cluster IP (`spec.clusterIP`), if one is allocated.
    public var clusterIP: IPAddress? { clusterIPs.first }
    /// `type: ExternalName`: a DNS alias; no proxying.
    public var isExternalName: Bool { type == .externalName }
    /// Reachable from outside the cluster: a NodePort or LoadBalancer Service, or a ClusterIP one
    /// with external IPs. `externalTrafficPolicy` applies to these only (kube-proxy's
    /// `ExternallyAccessible`; the API server refuses the field on other Services).
    public var isExternallyAccessible: Bool {
        type == .nodePort || type == .loadBalancer || (type == .clusterIP && !externalIPs.isEmpty)
    }
    /// The `ip` of every `status.loadBalancer.ingress` entry that has one (hostname-only entries are skipped).
    public var loadBalancerIngressIPs: [IPAddress] { loadBalancerIngress.compactMap(\.ip) }
    /// The port called `name` with `protocol`, as EndpointSlice ports refer to it.
    public func port(named name: String, protocol: PortProtocol = .tcp) -> ServicePort? {
        ports.first { $0.name == name && $0.protocol == `protocol` }
    }
}

/// `spec.type` of a Service.
public enum ServiceType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case clusterIP = "ClusterIP"
    case nodePort = "NodePort"
    case loadBalancer = "LoadBalancer"
    case externalName = "ExternalName"
    public var description: String { rawValue }
}

/// The transport protocol of a Service or EndpointSlice port.
public enum PortProtocol: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case tcp = "TCP"
    case udp = "UDP"
    case sctp = "SCTP"
    public var description: String { rawValue }
}

/// `spec.ports[].targetPort`: a port number on the pod, or the name of a container port, which
/// each EndpointSlice resolves to a number for the pods it lists (pods may differ).
public enum TargetPort: Hashable, Sendable, CustomStringConvertible {
    case number(UInt16)
    case name(String)
    public var description: String {
        switch self {
        case .number(let n): "\(n)"
        case .name(let s): s
        }
    }
}

/// One entry of a Service's `spec.ports`.
public struct ServicePort: Hashable, Sendable {
    /// `name`; empty for the single unnamed port of a one-port Service. EndpointSlice ports use this name.
    public var name: String
    public var `protocol`: PortProtocol
    public var port: UInt16
    /// `targetPort`; `.number(port)` when absent, as Kubernetes defaults it.
    public var targetPort: TargetPort
    /// `nodePort` for `NodePort` and `LoadBalancer` Services. Any port 1–65535 is accepted: the
    /// 30000–32767 range is the API server's allocation default, not a rule of the data plane.
    public var nodePort: UInt16?
    /// `appProtocol`, as written (informational).
    public var appProtocol: String?

    public init(name: String = "", protocol: PortProtocol = .tcp, port: UInt16, targetPort: TargetPort? = nil,
                nodePort: UInt16? = nil, appProtocol: String? = nil) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
        self.targetPort = targetPort ?? .number(port)
        self.nodePort = nodePort
        self.appProtocol = appProtocol
    }
}

/// Client-IP session affinity, or none.
public enum SessionAffinity: Hashable, Sendable {
    case none
    /// Requests from one client address go to the same endpoint until it has been idle for `timeoutSeconds`.
    case clientIP(timeoutSeconds: Int)

    /// Kubernetes' default for `sessionAffinityConfig.clientIP.timeoutSeconds`: 3 hours.
    public static let defaultTimeoutSeconds = 10800
    /// The largest timeout Kubernetes accepts: one day.
    public static let maximumTimeoutSeconds = 86400
}

/// `spec.externalTrafficPolicy` / `spec.internalTrafficPolicy`.
public enum TrafficPolicy: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Any ready endpoint in the cluster.
    case cluster = "Cluster"
    /// Only endpoints on the node that received the traffic (the client address is preserved).
    case local = "Local"
    public var description: String { rawValue }
}

/// One entry of `status.loadBalancer.ingress`.
public struct LoadBalancerIngress: Hashable, Sendable {
    public var ip: IPAddress?
    public var hostname: String?
    /// `ipMode`: `.proxy` means the load balancer does not preserve the destination address, so
    /// nodes must not capture traffic to `ip` themselves. Nil when not set (Kubernetes treats that as VIP).
    public var ipMode: LoadBalancerIPMode?

    public init(ip: IPAddress? = nil, hostname: String? = nil, ipMode: LoadBalancerIPMode? = nil) {
        self.ip = ip
        self.hostname = hostname
        self.ipMode = ipMode
    }
}

/// `status.loadBalancer.ingress[].ipMode`.
public enum LoadBalancerIPMode: String, Sendable, Hashable, CustomStringConvertible {
    case vip = "VIP"
    case proxy = "Proxy"
    public var description: String { rawValue }
}
