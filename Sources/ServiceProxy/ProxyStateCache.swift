import Cluster

/// `ProxyState` kept up to date from store snapshots: each update redoes only the Services whose
/// Service or EndpointSlices changed since the snapshot it saw last
/// (``ClusterSnapshot/changedKeys(since:)``), so that its cost follows the change rather than the
/// cluster (one EndpointSlice among 10K: one Service's ports). A first update, another node
/// configuration, or a change log that no longer reaches back is a full build, the same as
/// ``ProxyState/init(snapshot:node:)``.
public struct ProxyStateCache: Sendable {
    private var state: ProxyState?
    private var version: UInt64 = 0
    private var node: ProxyNodeConfig?
    /// The service ports each Service contributed to `state`.
    private var portNames: [ObjectKey: [ServicePortName]] = [:]
    /// The Service each EndpointSlice belonged to at the last update: a slice that is deleted or
    /// relabelled changes the Service it left.
    private var serviceOfSlice: [ObjectKey: ObjectKey] = [:]

    public init() {}

    /// The state for `snapshot`, and the service ports that may differ from the state the previous
    /// update returned (nil after a full build: any may).
    public mutating func update(_ snapshot: ClusterSnapshot, node: ProxyNodeConfig) -> (state: ProxyState, changed: Set<ServicePortName>?) {
        guard var current = state, self.node == node, let keys = snapshot.changedKeys(since: version) else {
            let built = rebuild(snapshot, node: node)
            return (built, nil)
        }
        state = nil   // sole owner of the services array while it is edited in place
        var services = Set<ObjectKey>()
        for key in keys {
            switch key.kind {
            case .service:
                services.insert(key)
            case .endpointSlice:
                if let previous = serviceOfSlice[key] { services.insert(previous) }
                let owner = snapshot.endpointSlices[key]?.serviceKey
                if let owner { services.insert(owner) }
                serviceOfSlice[key] = owner
            default:
                continue
            }
        }
        var changed = Set<ServicePortName>()
        for key in services {
            let old = portNames[key] ?? []
            let new = snapshot.services[key].map { Self.ports(of: $0, key, in: snapshot, node: node) } ?? []
            for name in old {
                let i = current.firstIndex(notBefore: name)
                if i < current.services.count, current.services[i].name == name { current.services.remove(at: i) }
            }
            for port in new {
                current.services.insert(port, at: current.firstIndex(notBefore: port.name))
            }
            changed.formUnion(old)
            changed.formUnion(new.map(\.name))
            portNames[key] = new.isEmpty ? nil : new.map(\.name)
        }
        if keys.contains(where: { $0.kind == .serviceCIDR }) {
            current.serviceCIDRs = ProxyState.outermost(ProxyState.serviceCIDRs(snapshot, node))
        }
        version = snapshot.version
        state = current
        return (current, changed)
    }

    private mutating func rebuild(_ snapshot: ClusterSnapshot, node: ProxyNodeConfig) -> ProxyState {
        portNames = [:]
        var all: [ServicePortState] = []
        for (key, service) in snapshot.services {
            let ports = Self.ports(of: service, key, in: snapshot, node: node)
            if !ports.isEmpty { portNames[key] = ports.map(\.name) }
            all += ports
        }
        serviceOfSlice = [:]
        for (key, slice) in snapshot.endpointSlices {
            if let owner = slice.serviceKey { serviceOfSlice[key] = owner }
        }
        let built = ProxyState(services: all, nodePortAddresses: ProxyState.nodePortAddresses(node), clusterCIDR: node.clusterCIDR,
                               serviceCIDRs: ProxyState.serviceCIDRs(snapshot, node))
        state = built
        version = snapshot.version
        self.node = node
        return built
    }

    private static func ports(of service: Service, _ key: ObjectKey, in snapshot: ClusterSnapshot, node: ProxyNodeConfig) -> [ServicePortState] {
        ProxyState.servicePorts(of: service, endpoints: snapshot.endpoints(of: key), node: node)
    }
}
