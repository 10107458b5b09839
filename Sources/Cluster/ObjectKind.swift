/// The Kubernetes kinds Keel reads. The raw value is the manifest's `kind`.
public enum ObjectKind: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case node = "Node"
    case service = "Service"
    case endpointSlice = "EndpointSlice"
    case pod = "Pod"
    case namespace = "Namespace"
    case networkPolicy = "NetworkPolicy"
    case serviceCIDR = "ServiceCIDR"

    /// The `apiVersion` a manifest of this kind carries. A document with the same `kind` but another
    /// group (a CRD that happens to be called `Node`) is not this kind.
    public var apiVersion: String {
        switch self {
        case .node, .service, .pod, .namespace: "v1"
        case .endpointSlice: "discovery.k8s.io/v1"
        case .networkPolicy, .serviceCIDR: "networking.k8s.io/v1"
        }
    }
    /// Cluster-scoped kinds have no namespace in their key, whatever a manifest writes there.
    public var isNamespaced: Bool {
        switch self {
        case .node, .namespace, .serviceCIDR: false
        case .service, .endpointSlice, .pod, .networkPolicy: true
        }
    }
    public var description: String { rawValue }

    /// The kind named by a manifest's `apiVersion` and `kind`, or nil when Keel does not read it.
    public init?(apiVersion: String?, kind: String?) {
        guard let kind, let known = ObjectKind(rawValue: kind), apiVersion == known.apiVersion else { return nil }
        self = known
    }
}

/// Identifies one object in the store: kind, namespace and name.
///
/// Cluster-scoped kinds always have a nil namespace; namespaced kinds default to `default`, as
/// `kubectl apply` does for a manifest without `metadata.namespace`.
public struct ObjectKey: Hashable, Sendable, CustomStringConvertible {
    public var kind: ObjectKind
    public var namespace: String?
    public var name: String

    public init(kind: ObjectKind, namespace: String? = nil, name: String) {
        self.kind = kind
        self.namespace = kind.isNamespaced ? (namespace ?? "default") : nil
        self.name = name
    }
    /// `Node/node1`, `Service/default/web`.
    public var description: String { [kind.rawValue, namespace, name].compactMap { $0 }.joined(separator: "/") }
}
