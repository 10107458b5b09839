import Cluster
import NetAddress

/// The side of a connection a rule or verdict is about, seen from the isolated pod.
public enum Direction: String, Sendable, Hashable, CustomStringConvertible {
    case ingress
    case egress
    public var description: String { rawValue }
}

/// One end of a connection.
public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// A pod, by namespace/name, with the address the connection uses (one of its `podIPs`).
    case pod(namespace: String, name: String, ip: IPAddress)
    /// An address outside the pod network as far as policy knows (the internet, another node's
    /// host-network process, a pod Keel does not know). Only `ipBlock` peers can match it.
    case external(IPAddress)
    /// The node that hosts the pod at the other end, sending from its own address (kubelet
    /// liveness/readiness probes). Kubernetes: an ingress-isolated pod still accepts connections
    /// from its node, so this source is always allowed on the ingress side. As a destination it is
    /// an address like ``external(_:)`` (a pod's egress to its node needs an ipBlock rule).
    case node(IPAddress)

    /// The pod's endpoint at its primary address of `family` (IPv4 unless asked), or nil without one.
    public static func pod(_ pod: Pod, family: AddressFamily = .ipv4) -> Endpoint? {
        pod.podIPs.first { $0.family == family }.map { .pod(namespace: pod.namespace, name: pod.name, ip: $0) }
    }

    public var ip: IPAddress {
        switch self {
        case .pod(_, _, let ip), .external(let ip), .node(let ip): ip
        }
    }
    /// The key of the pod, for ``pod(namespace:name:ip:)``.
    public var podKey: ObjectKey? {
        if case .pod(let ns, let name, _) = self { ObjectKey(kind: .pod, namespace: ns, name: name) } else { nil }
    }
    public var description: String {
        switch self {
        case .pod(let ns, let name, let ip): "\(ns)/\(name) (\(ip))"
        case .external(let ip): "\(ip)"
        case .node(let ip): "node \(ip)"
        }
    }
}

/// The initiating packet of a connection. Replies of an allowed connection always pass (conntrack
/// `established,related` in the datapath), so evaluation looks at the initiating direction only.
public struct Flow: Sendable, Hashable, CustomStringConvertible {
    public var source: Endpoint
    public var destination: Endpoint
    public var proto: PortProtocol
    /// The destination port.
    public var port: UInt16

    public init(from source: Endpoint, to destination: Endpoint, _ proto: PortProtocol = .tcp, port: UInt16) {
        self.source = source
        self.destination = destination
        self.proto = proto
        self.port = port
    }
    public var description: String { "\(source) -> \(destination) \(proto)/\(port)" }
}

/// Identifies a NetworkPolicy (its ``NetworkPolicy/key``).
public typealias PolicyRef = ObjectKey

/// One rule of one policy: `spec.ingress[index]` or `spec.egress[index]` of `policy`.
public struct RuleRef: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var policy: ObjectKey
    public var direction: Direction
    public var index: Int

    public init(policy: ObjectKey, direction: Direction, index: Int) {
        self.policy = policy
        self.direction = direction
        self.index = index
    }
    /// `NetworkPolicy/shop/web: ingress[0]`.
    public var description: String { "\(policy): \(direction)[\(index)]" }
    public static func < (l: Self, r: Self) -> Bool {
        (l.policy.namespace ?? "", l.policy.name, l.direction.rawValue, l.index)
            < (r.policy.namespace ?? "", r.policy.name, r.direction.rawValue, r.index)
    }
}

/// What one side (the source's egress, the destination's ingress) says about a flow.
public enum SideVerdict: Sendable, Hashable, CustomStringConvertible {
    /// No policy isolates this side (or it is not a pod subject to policy): allowed.
    case notIsolated
    /// Isolated, and these rules (every matching one, sorted) allow the flow.
    case allowed(by: [RuleRef])
    /// Ingress from the pod's own node: always allowed, isolated or not (see ``Endpoint/node(_:)``).
    case allowedFromNode
    /// A pod's connection to itself: it never leaves the pod (loopback), so no policy can stop it;
    /// Kubernetes' network-policy conformance tests expect it to work under every policy.
    case toItself
    /// Isolated by these policies (sorted), and none of their rules allows the flow.
    case denied(isolatedBy: [PolicyRef])

    public var allows: Bool {
        if case .denied = self { false } else { true }
    }
    public var description: String {
        switch self {
        case .notIsolated: "not isolated"
        case .allowed(let rules): "allowed by \(rules.map(\.description).joined(separator: ", "))"
        case .allowedFromNode: "allowed: from the pod's node"
        case .toItself: "allowed: a pod's traffic to itself stays inside the pod"
        case .denied(let policies): "denied: isolated by \(policies.map(\.description).joined(separator: ", ")) and no rule matches"
        }
    }
}

/// The answer for one flow: allowed when the source's egress side AND the destination's ingress
/// side allow it.
public struct Verdict: Sendable, Hashable, CustomStringConvertible {
    public var egress: SideVerdict
    public var ingress: SideVerdict
    public var allowed: Bool { egress.allows && ingress.allows }

    public init(egress: SideVerdict, ingress: SideVerdict) {
        self.egress = egress
        self.ingress = ingress
    }
    public var description: String { "\(allowed ? "allowed" : "denied") (egress: \(egress); ingress: \(ingress))" }
}
