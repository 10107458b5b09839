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
    static func validated(_ m: NamespaceManifest) -> Result<Namespace, FieldIssues> {
        var check = FieldChecks()
        let name = m.metadata?.name ?? ""
        if name.isEmpty {
            check.fail("metadata.name", "missing")
        } else if !FieldChecks.isDNSLabel(name) {
            check.fail("metadata.name", "\"\(name)\" is not a DNS label (lowercase letters, digits and '-')")
        }
        guard check.issues.isEmpty else { return .failure(FieldIssues(issues: check.issues)) }
        return .success(Namespace(metadata: ObjectMeta(m.metadata, name: name)))
    }

    var manifest: NamespaceManifest {
        NamespaceManifest(apiVersion: ObjectKind.namespace.apiVersion, kind: ObjectKind.namespace.rawValue,
                          metadata: metadata.manifest)
    }
}

extension Namespace: Codable {
    public init(from decoder: any Decoder) throws {
        switch Namespace.validated(try NamespaceManifest(from: decoder)) {
        case .success(let ns): self = ns
        case .failure(let failure): throw failure.decodingError(decoder)
        }
    }
    public func encode(to encoder: any Encoder) throws { try manifest.encode(to: encoder) }
}
