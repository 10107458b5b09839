/// Everything the store holds at one moment, as a value: controllers compute desired state from it
/// without locks. Copying is cheap (the dictionaries are copy-on-write).
public struct ClusterSnapshot: Sendable {
    /// Nodes by name.
    public var nodes: [String: Node]
    /// Services by key (`Service/<namespace>/<name>`; see ``Service/key``).
    public var services: [ObjectKey: Service]
    /// Pods by key (`Pod/<namespace>/<name>`; see ``Pod/key``).
    public var pods: [ObjectKey: Pod]
    /// Namespaces by name. A namespace that pods or policies name but that has no Namespace object
    /// (a manifest folder that never wrote `default`) is simply absent here.
    public var namespaces: [String: Namespace]
    /// NetworkPolicies by key (`NetworkPolicy/<namespace>/<name>`; see ``NetworkPolicy/key``).
    public var networkPolicies: [ObjectKey: NetworkPolicy]
    /// ServiceCIDRs by key (`ServiceCIDR/<name>`; see ``ServiceCIDR/key``).
    public var serviceCIDRs: [ObjectKey: ServiceCIDR]
    /// Increases with every change to the store's contents (and the first list of each kind);
    /// equal versions mean equal contents.
    public var version: UInt64
    /// The kinds for which a source has delivered a complete list at least once.
    public var listedKinds: Set<ObjectKind>

    /// EndpointSlices by key, and the names of each Service's slices (by Service key), kept in step
    /// so that ``endpoints(of:)`` does not scan every slice: a proxy asks once per Service.
    var endpointSliceStorage: [ObjectKey: EndpointSlice] = [:]
    var sliceIndex: [ObjectKey: Set<String>] = [:]

    /// The keys of the latest changes, oldest first, each with the version it made: a controller
    /// that remembers the version it last built from redoes only those objects
    /// (``changedKeys(since:)``). Bounded, so that copying a snapshot stays cheap; every change
    /// after `changeLogFloor` is in it.
    var changeLog: [(version: UInt64, key: ObjectKey)] = []
    var changeLogFloor: UInt64 = 0
    /// Entries kept after trimming; the log grows to twice this before it is trimmed.
    static let changeLogCapacity = 4096

    public init(nodes: [String: Node] = [:], services: [ObjectKey: Service] = [:],
                endpointSlices: [ObjectKey: EndpointSlice] = [:], pods: [ObjectKey: Pod] = [:],
                namespaces: [String: Namespace] = [:], networkPolicies: [ObjectKey: NetworkPolicy] = [:],
                serviceCIDRs: [ObjectKey: ServiceCIDR] = [:], version: UInt64 = 0, listedKinds: Set<ObjectKind> = []) {
        self.nodes = nodes
        self.services = services
        self.pods = pods
        self.namespaces = namespaces
        self.networkPolicies = networkPolicies
        self.serviceCIDRs = serviceCIDRs
        self.version = version
        self.listedKinds = listedKinds
        self.endpointSlices = endpointSlices
        changeLogFloor = version   // what it was made with is not in the log

    }

    /// EndpointSlices by key (`EndpointSlice/<namespace>/<name>`; see ``EndpointSlice/key``).
    /// ``endpoints(of:)`` and ``endpointSlices(of:)`` group them by their Service.
    public var endpointSlices: [ObjectKey: EndpointSlice] {
        get { endpointSliceStorage }
        set {
            endpointSliceStorage = [:]
            sliceIndex = [:]
            for slice in newValue.values { insert(slice) }
        }
    }

    /// The keys of the objects added, changed or removed after `version` (a version of this store),
    /// or nil when the log no longer reaches back that far (then everything may have changed).
    public func changedKeys(since version: UInt64) -> Set<ObjectKey>? {
        guard version >= changeLogFloor, version <= self.version else { return nil }
        var keys = Set<ObjectKey>()
        for entry in changeLog.reversed() {
            guard entry.version > version else { break }
            keys.insert(entry.key)
        }
        return keys
    }

    /// Records that `key` changed, making the current ``version``.
    mutating func logChange(_ key: ObjectKey) {
        changeLog.append((version, key))
        if changeLog.count >= 2 * Self.changeLogCapacity {
            let dropped = changeLog.count - Self.changeLogCapacity
            changeLogFloor = changeLog[dropped - 1].version
            changeLog.removeFirst(dropped)
        }
    }

    /// True once a complete list of `kind` has arrived. Before that, an absent object may simply not
    /// have been read yet, and a controller must not delete what it stands for.
    public func hasListed(_ kind: ObjectKind) -> Bool { listedKinds.contains(kind) }
    /// True when every one of `kinds` has been listed.
    public func hasListed(_ kinds: ObjectKind...) -> Bool { kinds.allSatisfy(listedKinds.contains) }

    public func object(_ key: ObjectKey) -> ClusterObject? {
        switch key.kind {
        case .node: nodes[key.name].map(ClusterObject.node)
        case .service: services[key].map(ClusterObject.service)
        case .endpointSlice: endpointSliceStorage[key].map(ClusterObject.endpointSlice)
        case .pod: pods[key].map(ClusterObject.pod)
        case .namespace: namespaces[key.name].map(ClusterObject.namespace)
        case .networkPolicy: networkPolicies[key].map(ClusterObject.networkPolicy)
        case .serviceCIDR: serviceCIDRs[key].map(ClusterObject.serviceCIDR)
        }
    }

    /// The keys of every object of `kind`.
    public func keys(_ kind: ObjectKind) -> [ObjectKey] {
        switch kind {
        case .node: nodes.keys.map { ObjectKey(kind: .node, name: $0) }
        case .service: Array(services.keys)
        case .endpointSlice: Array(endpointSliceStorage.keys)
        case .pod: Array(pods.keys)
        case .namespace: namespaces.keys.map { ObjectKey(kind: .namespace, name: $0) }
        case .networkPolicy: Array(networkPolicies.keys)
        case .serviceCIDR: Array(serviceCIDRs.keys)
        }
    }

    mutating func set(_ object: ClusterObject) {
        switch object {
        case .node(let n): nodes[n.name] = n
        case .service(let s): services[s.key] = s
        case .endpointSlice(let s):
            removeSlice(s.key)
            insert(s)
        case .pod(let p): pods[p.key] = p
        case .namespace(let n): namespaces[n.name] = n
        case .networkPolicy(let p): networkPolicies[p.key] = p
        case .serviceCIDR(let s): serviceCIDRs[s.key] = s
        }
    }

    mutating func remove(_ key: ObjectKey) -> ClusterObject? {
        switch key.kind {
        case .node: nodes.removeValue(forKey: key.name).map(ClusterObject.node)
        case .service: services.removeValue(forKey: key).map(ClusterObject.service)
        case .endpointSlice: removeSlice(key).map(ClusterObject.endpointSlice)
        case .pod: pods.removeValue(forKey: key).map(ClusterObject.pod)
        case .namespace: namespaces.removeValue(forKey: key.name).map(ClusterObject.namespace)
        case .networkPolicy: networkPolicies.removeValue(forKey: key).map(ClusterObject.networkPolicy)
        case .serviceCIDR: serviceCIDRs.removeValue(forKey: key).map(ClusterObject.serviceCIDR)
        }
    }

    private mutating func insert(_ slice: EndpointSlice) {
        endpointSliceStorage[slice.key] = slice
        if let service = slice.serviceKey { sliceIndex[service, default: []].insert(slice.name) }
    }

    @discardableResult
    private mutating func removeSlice(_ key: ObjectKey) -> EndpointSlice? {
        guard let old = endpointSliceStorage.removeValue(forKey: key) else { return nil }
        if let service = old.serviceKey {
            sliceIndex[service]?.remove(old.name)
            if sliceIndex[service]?.isEmpty == true { sliceIndex[service] = nil }
        }
        return old
    }
}
