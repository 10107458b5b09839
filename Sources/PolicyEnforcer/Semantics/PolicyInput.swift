import Cluster

/// What NetworkPolicy evaluation reads: pods, namespaces and policies, with the lookups that
/// selection needs built once. A value: build it from a snapshot and query it without locks.
public struct PolicyInput: Sendable {
    /// Every pod, sorted by namespace then name.
    public let pods: [Pod]
    /// Every Namespace object, sorted by name.
    public let namespaces: [Namespace]
    /// Every NetworkPolicy, sorted by namespace then name.
    public let policies: [NetworkPolicy]

    let podsByKey: [ObjectKey: Pod]
    let namespaceLabelsByName: [String: [String: String]]
    let policiesByNamespace: [String: [NetworkPolicy]]
    /// The pods a peer selector can match (see ``isSelectablePeer(_:)``), by namespace.
    let peerPodsByNamespace: [String: [Pod]]

    public init(pods: [Pod], namespaces: [Namespace] = [], policies: [NetworkPolicy] = []) {
        self.pods = pods.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
        self.namespaces = namespaces.sorted { $0.name < $1.name }
        self.policies = policies.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
        podsByKey = Dictionary(self.pods.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        namespaceLabelsByName = Dictionary(self.namespaces.map { ($0.name, $0.labels) }, uniquingKeysWith: { first, _ in first })
        policiesByNamespace = Dictionary(grouping: self.policies, by: \.namespace)
        peerPodsByNamespace = Dictionary(grouping: self.pods.filter(Self.isSelectablePeer), by: \.namespace)
    }

    public init(snapshot: ClusterSnapshot) {
        self.init(pods: Array(snapshot.pods.values), namespaces: Array(snapshot.namespaces.values),
                  policies: Array(snapshot.networkPolicies.values))
    }

    public func pod(_ key: ObjectKey) -> Pod? { podsByKey[key] }
    public func pod(namespace: String, name: String) -> Pod? { podsByKey[ObjectKey(kind: .pod, namespace: namespace, name: name)] }

    /// The labels a `namespaceSelector` sees for `namespace`: its Namespace object's labels, or
    /// only the automatic `kubernetes.io/metadata.name` label when there is no Namespace object
    /// (in manifest mode nobody has to write one for `default`; the API server always has one).
    public func namespaceLabels(_ namespace: String) -> [String: String] {
        namespaceLabelsByName[namespace] ?? Namespace.implicitLabels(of: namespace)
    }

    /// Every namespace name Keel knows of: Namespace objects, and namespaces that pods or policies name.
    var allNamespaceNames: [String] {
        Set(namespaceLabelsByName.keys).union(peerPodsByNamespace.keys).sorted()
    }

    /// Pods that NetworkPolicy applies to, as the isolated side: not host-network (their traffic is
    /// the node's), not finished (`Succeeded`/`Failed`: their address may belong to a new pod).
    public static func isSubjectToPolicy(_ pod: Pod) -> Bool { !pod.hostNetwork && !pod.isTerminal }

    /// Pods that a `podSelector`/`namespaceSelector` peer can match: subject to policy, and with an
    /// address (rules match by address). A host-network pod is never matched by a selector: its
    /// address is the node's, and admitting it would admit everything the node sends. An `ipBlock`
    /// that covers the node address does match it.
    public static func isSelectablePeer(_ pod: Pod) -> Bool { isSubjectToPolicy(pod) && !pod.podIPs.isEmpty }
}
