import NetAddress

/// Applies the rules that span several Nodes, keeping the first node of a conflict.
///
/// - Two Nodes with the same name: the later one is a problem at `metadata.name`.
/// - A Node whose pod CIDR overlaps a pod CIDR of an earlier Node: the later one is a problem at
///   `spec.podCIDR` (its first CIDR) or `spec.podCIDRs[i]`, and the reason names the earlier node.
///   Overlapping ranges would give two nodes a route to the same pods.
///
/// "Earlier" is the order of `nodes`: the manifest source passes file-name then document order, and
/// the API source its list order sorted by name, so that a conflict resolves the same way every time.
/// `origin` is the file a node came from and becomes ``ManifestProblem/file``.
public func validateNodes(_ nodes: [(node: Node, origin: String)]) -> (valid: [Node], problems: [ManifestProblem]) {
    var valid: [Node] = []
    var problems: [ManifestProblem] = []
    var names: [String: String] = [:]
    var taken: [(cidr: CIDR, node: String)] = []

    for (node, origin) in nodes {
        if let first = names[node.name] {
            problems.append(ManifestProblem(file: origin, objectName: node.name, kind: ObjectKind.node.rawValue,
                                            field: "metadata.name", reason: "duplicate Node, first defined in \(first)"))
            continue
        }
        names[node.name] = origin
        let conflicts = node.podCIDRs.enumerated().compactMap { i, cidr in
            taken.first { $0.cidr.overlaps(cidr) }.map { (index: i, cidr: cidr, other: $0) }
        }
        if conflicts.isEmpty {
            valid.append(node)
            taken += node.podCIDRs.map { ($0, node.name) }
        } else {
            for c in conflicts {
                problems.append(ManifestProblem(
                    file: origin, objectName: node.name, kind: ObjectKind.node.rawValue,
                    field: c.index == 0 ? "spec.podCIDR" : "spec.podCIDRs[\(c.index)]",
                    reason: "\(c.cidr) overlaps \(c.other.cidr) of Node \"\(c.other.node)\""))
            }
        }
    }
    return (valid, problems)
}

/// ``validateNodes(_:)`` for nodes that all come from one origin (the API source: `"apiserver"`).
public func validateNodes(_ nodes: [Node], origin: String) -> (valid: [Node], problems: [ManifestProblem]) {
    validateNodes(nodes.map { (node: $0, origin: origin) })
}
