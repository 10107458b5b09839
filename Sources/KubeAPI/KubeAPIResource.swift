import Cluster

extension ObjectKind {
    /// The collection path of this kind across all namespaces, as LIST and WATCH use it.
    public var apiPath: String {
        switch self {
        case .node: "/api/v1/nodes"
        case .service: "/api/v1/services"
        case .endpointSlice: "/apis/discovery.k8s.io/v1/endpointslices"
        case .pod: "/api/v1/pods"
        case .namespace: "/api/v1/namespaces"
        case .networkPolicy: "/apis/networking.k8s.io/v1/networkpolicies"
        case .serviceCIDR: "/apis/networking.k8s.io/v1/servicecidrs"
        }
    }

    /// Kinds an API server may not serve at all (404 on the collection): then there are none.
    var isOptionalOnServer: Bool { self == .serviceCIDR }
}
