import Cluster
import NetAddress

/// This node's facts the proxy state depends on.
public struct ProxyNodeConfig: Sendable, Hashable {
    public var nodeName: String
    /// The node's own addresses (NodePorts listen on those that `nodePortAddresses` allows).
    public var nodeAddresses: [IPAddress]
    /// `--nodeport-addresses`: empty means every node address.
    public var nodePortAddresses: [CIDR]
    public var clusterCIDR: CIDR?
    /// `--service-cidr`: service address ranges, in addition to those of the ServiceCIDR objects.
    public var serviceCIDRs: [CIDR]

    public init(nodeName: String, nodeAddresses: [IPAddress], nodePortAddresses: [CIDR] = [], clusterCIDR: CIDR? = nil,
                serviceCIDRs: [CIDR] = []) {
        self.nodeName = nodeName
        self.nodeAddresses = nodeAddresses
        self.nodePortAddresses = nodePortAddresses
        self.clusterCIDR = clusterCIDR
        self.serviceCIDRs = serviceCIDRs
    }
}

extension ProxyState {
    /// What the proxy must program for `snapshot` on this node. Pure.
    ///
    /// Kubernetes semantics: ExternalName and headless Services are not proxied; ready endpoints
    /// serve, and when none is ready, serving-but-terminating ones do (KEP-1669); a named
    /// `targetPort` is resolved per endpoint through its slice; `internalTrafficPolicy: Local`
    /// narrows cluster-IP traffic and `externalTrafficPolicy: Local` narrows NodePort/external/LB
    /// traffic to this node's endpoints.
    public init(snapshot: ClusterSnapshot, node: ProxyNodeConfig) {
        var services: [ServicePortState] = []
        for (key, service) in snapshot.services {
            services += Self.servicePorts(of: service, endpoints: snapshot.endpoints(of: key), node: node)
        }
        self.init(services: services, nodePortAddresses: Self.nodePortAddresses(node), clusterCIDR: node.clusterCIDR,
                  serviceCIDRs: Self.serviceCIDRs(snapshot, node))
    }

    /// The service ranges: the flag's and every ServiceCIDR object's (`spec.cidrs`). A ServiceCIDR
    /// being deleted still holds addresses that Services use, so it counts until it is gone.
    static func serviceCIDRs(_ snapshot: ClusterSnapshot, _ node: ProxyNodeConfig) -> [CIDR] {
        node.serviceCIDRs + snapshot.serviceCIDRs.values.flatMap(\.cidrs)
    }

    /// The node addresses that `--nodeport-addresses` lets NodePorts answer on.
    static func nodePortAddresses(_ node: ProxyNodeConfig) -> [IPAddress] {
        node.nodeAddresses.filter { a in node.nodePortAddresses.isEmpty || node.nodePortAddresses.contains { $0.contains(a) } }
    }

    /// The service ports `service` contributes, from its merged `endpoints`
    /// (``ClusterSnapshot/endpoints(of:)``). Pure; what ``init(snapshot:node:)`` does per Service.
    static func servicePorts(of service: Service, endpoints: [ServiceEndpoint], node: ProxyNodeConfig) -> [ServicePortState] {
        guard !service.isExternalName, !service.isHeadless, !service.clusterIPs.isEmpty else { return [] }
        var services: [ServicePortState] = []
        let external = service.type == .nodePort || service.type == .loadBalancer
        for port in service.ports {
            let candidates = endpoints.compactMap { e -> (ServiceEndpoint, Backend)? in
                guard let number = e.port(for: port) else { return nil }
                return (e, Backend(e.address, number))
            }
            func usable(_ list: [(ServiceEndpoint, Backend)]) -> [Backend] {
                if service.publishNotReadyAddresses { return list.map(\.1).sorted() }
                let ready = list.filter { $0.0.isReady }
                let chosen = ready.isEmpty ? list.filter { $0.0.isServing && $0.0.isTerminating } : ready
                return chosen.map(\.1).sorted()
            }
            /// Terminating endpoints left out of `chosen`: kept for their established connections only.
            func draining(_ list: [(ServiceEndpoint, Backend)], besides chosen: [Backend]) -> [Backend] {
                Set(list.filter { $0.0.isTerminating }.map(\.1)).subtracting(chosen).sorted()
            }
            let localCandidates = candidates.filter { $0.0.nodeName == node.nodeName }
            let cluster = usable(candidates)
            let local = usable(localCandidates)
            let internalLocal = service.internalTrafficPolicy == .local
            let name = ServicePortName(namespace: service.namespace, name: service.name, port: port.name,
                                       proto: ServiceProtocol(rawValue: port.protocol.rawValue) ?? .tcp)
            var affinity: UInt32?
            if case .clientIP(let seconds) = service.sessionAffinity { affinity = UInt32(clamping: seconds) }
            let externalLocal = service.isExternallyAccessible && service.externalTrafficPolicy == .local
            services.append(ServicePortState(
                name: name, clusterIPs: service.clusterIPs, port: port.port,
                nodePort: external ? port.nodePort : nil,
                externalIPs: service.externalIPs,
                loadBalancerIPs: service.type == .loadBalancer ? service.loadBalancerIngressIPs : [],
                loadBalancerSourceRanges: service.type == .loadBalancer ? service.loadBalancerSourceRanges : [],
                affinityTimeout: affinity,
                internalBackends: internalLocal ? local : cluster,
                externalBackends: externalLocal ? local : cluster,
                externalLocal: externalLocal,
                clusterBackends: cluster,
                terminatingInternalBackends: internalLocal ? draining(localCandidates, besides: local) : draining(candidates, besides: cluster),
                terminatingExternalBackends: externalLocal ? draining(localCandidates, besides: local) : draining(candidates, besides: cluster)))
        }
        return services
    }
}
