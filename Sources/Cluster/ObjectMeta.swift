/// The part of Kubernetes' `metadata` that Keel reads (`meta/v1 ObjectMeta`).
///
/// `labels` and `annotations` are never optional here: an absent map decodes as empty, so callers
/// look keys up without unwrapping twice.
public struct ObjectMeta: Codable, Hashable, Sendable {
    public var name: String
    public var namespace: String?
    public var uid: String?
    public var resourceVersion: String?
    public var labels: [String: String]
    public var annotations: [String: String]

    public init(name: String, namespace: String? = nil, uid: String? = nil, resourceVersion: String? = nil,
                labels: [String: String] = [:], annotations: [String: String] = [:]) {
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.resourceVersion = resourceVersion
        self.labels = labels
        self.annotations = annotations
    }

    enum CodingKeys: String, CodingKey { case name, namespace, uid, resourceVersion, labels, annotations }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        namespace = try c.decodeIfPresent(String.self, forKey: .namespace)
        uid = try c.decodeIfPresent(String.self, forKey: .uid)
        resourceVersion = try c.decodeIfPresent(String.self, forKey: .resourceVersion)
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations) ?? [:]
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encodeIfPresent(namespace, forKey: .namespace)
        try c.encodeIfPresent(uid, forKey: .uid)
        try c.encodeIfPresent(resourceVersion, forKey: .resourceVersion)
        if !labels.isEmpty { try c.encode(labels, forKey: .labels) }
        if !annotations.isEmpty { try c.encode(annotations, forKey: .annotations) }
    }
}

// MARK: - Validation

extension FieldChecks {
    /// Kubernetes' `ValidateObjectMeta` for a manifest of `kind`: the name by the kind's rule, the
    /// namespace a DNS-1123 label, label keys and values, annotation keys. Returns the name ("" when missing).
    mutating func metadata(_ m: NodeManifest.Metadata?, kind: ObjectKind) -> String {
        let name = m?.name ?? ""
        if name.isEmpty {
            fail("metadata.name", "missing")
        } else {
            objectName(name, kind: kind)
        }
        if let namespace = m?.namespace, !namespace.isEmpty {
            if !kind.isNamespaced {
                warn("metadata.namespace", "ignored: \(kind) is cluster-scoped")
            } else if !Self.isDNSLabel(namespace) {
                fail("metadata.namespace", "\"\(namespace)\" is not a DNS-1123 label (at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric)")
            }
        }
        labels(m?.labels, "metadata.labels")
        let annotations = m?.annotations ?? [:]
        for key in annotations.keys.sorted() {
            // The API server checks annotation keys lowercased.
            if let problem = Self.qualifiedNameProblem(key.lowercased()) { fail("metadata.annotations", "key \(problem)") }
        }
        let size = annotations.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        if size > Self.maxAnnotationBytes {
            fail("metadata.annotations", "\(size) bytes (at most \(Self.maxAnnotationBytes), keys and values together)")
        }
        return name
    }

    /// apimachinery's `TotalAnnotationSizeLimitB`.
    static let maxAnnotationBytes = 256 * 1024

    /// The name rules of apimachinery's `NameIsDNS1035Label` (Services), `NameIsDNSLabel` (Namespaces)
    /// and `NameIsDNSSubdomain` (Nodes, Pods, EndpointSlices, NetworkPolicies and most other kinds).
    private mutating func objectName(_ name: String, kind: ObjectKind) {
        let label = "at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric"
        if kind == .service {
            if !Self.isDNSLabel(name) {
                fail("metadata.name", "\"\(name)\" is not a DNS-1035 label (\(label), starting with a letter)")
            } else if !Self.isDNS1035Label(name) {
                // Kubernetes 1.34's RelaxedServiceNameValidation accepts DNS-1123 labels: served, and said.
                warn("metadata.name", "\"\(name)\" starts with a digit: Kubernetes refuses it as a Service name (a DNS-1035 label) unless RelaxedServiceNameValidation is on")
            }
        } else if kind == .namespace {
            if !Self.isDNSLabel(name) { fail("metadata.name", "\"\(name)\" is not a DNS-1123 label (\(label))") }
        } else if !Self.isDNSSubdomain(name) {
            fail("metadata.name", "\"\(name)\" is not a DNS-1123 subdomain (at most 253 characters: labels of \(label), joined by '.')")
        }
    }
}
