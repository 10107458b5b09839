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
