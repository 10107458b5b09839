/// A v1 Namespace: its name and labels, which NetworkPolicy `namespaceSelector`s match.
///
/// Like the API server, Keel always sets the label `kubernetes.io/metadata.name` to the namespace's
/// name (overwriting whatever a manifest wrote there), so that a selector can name a namespace
/// without any label an admin must remember to add.
public struct Namespace: Hashable, Sendable {
    /// The label the API server sets on every Namespace (immutable, equal to the name).
    public static let nameLabel = "kubernetes.io/metadata.name"

    public var metadata: ObjectMeta

    /// `metadata` with the ``nameLabel`` set to its name.
    public init(metadata: ObjectMeta) {
        var m = metadata
        m.namespace = nil
        m.labels[Self.nameLabel] = m.name
        self.metadata = m
    }
    public init(name: String, labels: [String: String] = [:]) {
        self.init(metadata: ObjectMeta(name: name, labels: labels))
    }

    public var name: String { metadata.name }
    /// The labels, ``nameLabel`` included.
    public var labels: [String: String] { metadata.labels }
    public var key: ObjectKey { ObjectKey(kind: .namespace, name: metadata.name) }

    /// The labels of a namespace that has no Namespace object (a manifest folder that never wrote
    /// one for `default`): only the automatic ``nameLabel``.
    public static func implicitLabels(of name: String) -> [String: String] { [nameLabel: name] }
}

// MARK: - Wire form and validation

struct NamespaceManifest: Codable {
    var apiVersion: String?
    var kind: String?
    var metadata: NodeManifest.Metadata?
}

extension Namespace {
    static func validated(_ m: NamespaceManifest) -> Validation<Namespace> {
        var check = FieldChecks()
        let name = check.metadata(m.metadata, kind: .namespace)
        if let written = m.metadata?.labels?[nameLabel], written != name {
            check.warn("metadata.labels[\(nameLabel)]", "\"\(written)\" is replaced by the name \"\(name)\", as the API server does")
        }
        return check.validation(Namespace(metadata: ObjectMeta(m.metadata, name: name)))
    }

    var manifest: NamespaceManifest {
        NamespaceManifest(apiVersion: ObjectKind.namespace.apiVersion, kind: ObjectKind.namespace.rawValue,
                          metadata: metadata.manifest)
    }
}

extension Namespace: Codable {
    public init(from decoder: any Decoder) throws {
        self = try Namespace.validated(try NamespaceManifest(from: decoder)).get(decoder)
    }
    public func encode(to encoder: any Encoder) throws { try manifest.encode(to: encoder) }
}
