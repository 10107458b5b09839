/// One object of any kind Keel reads, as the store holds it.
///
/// Adding a kind: a case here, its model file, a dictionary in ``ClusterSnapshot`` and a branch in
/// ``ManifestDecoder``'s kind switch; the store and the sources need no change.
public enum ClusterObject: Sendable, Hashable {
    case node(Node)
    case service(Service)
    case endpointSlice(EndpointSlice)
    case pod(Pod)
    case namespace(Namespace)
    case networkPolicy(NetworkPolicy)
    case serviceCIDR(ServiceCIDR)

    public var kind: ObjectKind {
        switch self {
        case .node: .node
        case .service: .service
        case .endpointSlice: .endpointSlice
        case .pod: .pod
        case .namespace: .namespace
        case .networkPolicy: .networkPolicy
        case .serviceCIDR: .serviceCIDR
        }
    }
    public var key: ObjectKey { ObjectKey(kind: kind, namespace: metadata.namespace, name: metadata.name) }

    public var metadata: ObjectMeta {
        get {
            switch self {
            case .node(let n): n.metadata
            case .service(let s): s.metadata
            case .endpointSlice(let s): s.metadata
            case .pod(let p): p.metadata
            case .namespace(let n): n.metadata
            case .networkPolicy(let p): p.metadata
            case .serviceCIDR(let s): s.metadata
            }
        }
        set {
            switch self {
            case .node(var n): n.metadata = newValue; self = .node(n)
            case .service(var s): s.metadata = newValue; self = .service(s)
            case .endpointSlice(var s): s.metadata = newValue; self = .endpointSlice(s)
            case .pod(var p): p.metadata = newValue; self = .pod(p)
            case .namespace: self = .namespace(Namespace(metadata: newValue))   // keeps the name label
            case .networkPolicy(var p): p.metadata = newValue; self = .networkPolicy(p)
            case .serviceCIDR(let s): self = .serviceCIDR(ServiceCIDR(metadata: newValue, cidrs: s.cidrs))   // stays cluster-scoped
            }
        }
    }
}
