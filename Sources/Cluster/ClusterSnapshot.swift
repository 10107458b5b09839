/// Everything the store holds at one moment, as a value: controllers compute desired state from it
/// without locks. Copying is cheap (the dictionaries are copy-on-write).
public struct ClusterSnapshot: Sendable {
    /// Nodes by name.
    public var nodes: [String: Node]
    /// Increases with every change to the store's contents (and the first list of each kind);
    /// equal versions mean equal contents.
    public var version: UInt64
    /// The kinds for which a source has delivered a complete list at least once.
    public var listedKinds: Set<ObjectKind>

    public init(nodes: [String: Node] = [:], version: UInt64 = 0, listedKinds: Set<ObjectKind> = []) {
        self.nodes = nodes
        self.version = version
        self.listedKinds = listedKinds
    }

    /// True once a complete list of `kind` has arrived. Before that, an absent object may simply not
    /// have been read yet, and a controller must not delete what it stands for.
    public func hasListed(_ kind: ObjectKind) -> Bool { listedKinds.contains(kind) }
    /// True when every one of `kinds` has been listed.
    public func hasListed(_ kinds: ObjectKind...) -> Bool { kinds.allSatisfy(listedKinds.contains) }

    public func object(_ key: ObjectKey) -> ClusterObject? {
        switch key.kind {
        case .node: nodes[key.name].map(ClusterObject.node)
        case .service, .endpointSlice, .pod, .namespace, .networkPolicy: nil
        }
    }

    /// The keys of every object of `kind`.
    public func keys(_ kind: ObjectKind) -> [ObjectKey] {
        switch kind {
        case .node: nodes.keys.map { ObjectKey(kind: .node, name: $0) }
        case .service, .endpointSlice, .pod, .namespace, .networkPolicy: []
        }
    }

    mutating func set(_ object: ClusterObject) {
        switch object {
        case .node(let n): nodes[n.name] = n
        }
    }

    mutating func remove(_ key: ObjectKey) -> ClusterObject? {
        switch key.kind {
        case .node: nodes.removeValue(forKey: key.name).map(ClusterObject.node)
        case .service, .endpointSlice, .pod, .namespace, .networkPolicy: nil
        }
    }
}
