import NetAddress

/// A v1 Node, reduced to the fields Keel uses and validated on the way in.
///
/// A `Node` value always holds well-formed data: every pod CIDR is a network prefix (no host bits),
/// at most one per address family, and at least one `InternalIP` address parses. Manifests that break
/// these rules are reported as ``ManifestProblem``s and never become a `Node`.
///
/// Its `Codable` form is the Kubernetes wire shape (`apiVersion`, `kind`, `metadata`, `spec`,
/// `status`); decoding validates and throws `DecodingError.dataCorrupted` naming the first bad field.
public struct Node: Hashable, Sendable {
    public var metadata: ObjectMeta
    /// `spec.podCIDRs`, or `[spec.podCIDR]` when only that is set. Empty while no range is allocated.
    public var podCIDRs: [CIDR]
    /// `status.addresses` as written, including entries Keel does not use.
    public var addresses: [NodeAddress]
    /// `spec.unschedulable`.
    public var unschedulable: Bool

    public var name: String { metadata.name }
    /// The `InternalIP` entries of `addresses` that parse, in manifest order (dual-stack nodes have one per family).
    public var internalIPs: [IPAddress] {
        addresses.filter { $0.type == .internalIP }.compactMap { IPAddress($0.address) }
    }

    /// Builds a node without validation; tests and the API source's conversions use it.
    public init(metadata: ObjectMeta, podCIDRs: [CIDR] = [], addresses: [NodeAddress] = [], unschedulable: Bool = false) {
        self.metadata = metadata
        self.podCIDRs = podCIDRs
        self.addresses = addresses
        self.unschedulable = unschedulable
    }
    /// A node with one InternalIP per address; the shape most tests need.
    public init(name: String, podCIDRs: [CIDR], internalIPs: [IPAddress], unschedulable: Bool = false) {
        self.init(metadata: ObjectMeta(name: name), podCIDRs: podCIDRs,
                  addresses: internalIPs.map { NodeAddress(type: .internalIP, address: $0.description) },
                  unschedulable: unschedulable)
    }
}

/// One entry of a Node's `status.addresses`.
public struct NodeAddress: Codable, Hashable, Sendable {
    public var type: NodeAddressType
    /// The address text as written; it is an IP for `InternalIP`/`ExternalIP`, a name for `Hostname`.
    public var address: String

    public init(type: NodeAddressType, address: String) {
        self.type = type
        self.address = address
    }
}

/// The `type` of a node address. An open set: unknown values are kept as written.
public struct NodeAddressType: RawRepresentable, Codable, Hashable, Sendable, ExpressibleByStringLiteral,
    CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
    public var description: String { rawValue }

    public static let internalIP: NodeAddressType = "InternalIP"
    public static let externalIP: NodeAddressType = "ExternalIP"
    public static let hostname: NodeAddressType = "Hostname"
    public static let internalDNS: NodeAddressType = "InternalDNS"
    public static let externalDNS: NodeAddressType = "ExternalDNS"
}

// MARK: - Wire form and validation

/// A v1 Node as a manifest writes it: every field optional, so that a missing field is a validation
/// problem with a precise name rather than a decoding failure.
struct NodeManifest: Codable {
    struct Spec: Codable {
        var podCIDR: String?
        var podCIDRs: [String]?
        var unschedulable: Bool?
    }
    struct Status: Codable {
        var addresses: [NodeAddress]?
    }
    struct Metadata: Codable {
        var name: String?
        var namespace: String?
        var uid: String?
        var resourceVersion: String?
        var labels: [String: String]?
        var annotations: [String: String]?
    }
    var apiVersion: String?
    var kind: String?
    var metadata: Metadata?
    var spec: Spec?
    var status: Status?
}

/// One bad field of one object, before the file and object name are attached.
struct FieldIssue: Hashable, Sendable {
    var field: String
    var reason: String
}

/// Every bad field of one object.
struct FieldIssues: Error {
    var issues: [FieldIssue]
}

extension Node {
    /// Validates a decoded manifest. All bad fields are reported, not only the first.
    static func validated(_ m: NodeManifest) -> Validation<Node> {
        var check = FieldChecks()
        let name = check.metadata(m.metadata, kind: .node)
        var issues: [FieldIssue] = []

        var cidrs: [CIDR] = []
        let spec = m.spec
        let single = spec?.podCIDR.flatMap { $0.isEmpty ? nil : $0 }
        let singleCIDR = single.flatMap { podCIDR($0, field: "spec.podCIDR", &issues) }
        if let list = spec?.podCIDRs, !list.isEmpty {
            for (i, text) in list.enumerated() {
                if let c = podCIDR(text, field: "spec.podCIDRs[\(i)]", &issues) { cidrs.append(c) }
            }
            if let singleCIDR, let first = cidrs.first, first != singleCIDR, CIDR(list[0]) != nil {
                issues.append(FieldIssue(field: "spec.podCIDRs[0]",
                                         reason: "\"\(list[0])\" does not match spec.podCIDR \"\(singleCIDR)\""))
            }
            for family in [AddressFamily.ipv4, .ipv6] where cidrs.filter({ $0.family == family }).count > 1 {
                issues.append(FieldIssue(field: "spec.podCIDRs",
                                         reason: "more than one \(family == .ipv4 ? "IPv4" : "IPv6") CIDR"))
            }
        } else if let singleCIDR {
            cidrs = [singleCIDR]
        }

        let addresses = m.status?.addresses ?? []
        let node = Node(metadata: ObjectMeta(name: name, namespace: nil, uid: m.metadata?.uid,
                                             resourceVersion: m.metadata?.resourceVersion,
                                             labels: m.metadata?.labels ?? [:],
                                             annotations: m.metadata?.annotations ?? [:]),
                        podCIDRs: cidrs, addresses: addresses, unschedulable: spec?.unschedulable ?? false)
        if node.internalIPs.isEmpty {
            let written = addresses.filter { $0.type == .internalIP }.map { "\"\($0.address)\"" }
            issues.append(FieldIssue(field: "status.addresses",
                                     reason: written.isEmpty ? "no InternalIP address"
                                         : "no InternalIP address that parses (\(written.joined(separator: ", ")))"))
        }
        check.issues += issues
        return check.validation(node)
    }

    private static func podCIDR(_ text: String, field: String, _ issues: inout [FieldIssue]) -> CIDR? {
        guard let cidr = CIDR(text), text.contains("/") else {
            issues.append(FieldIssue(field: field, reason: "\"\(text)\" is not a CIDR"))
            return nil
        }
        guard cidr.masked == cidr else {
            issues.append(FieldIssue(field: field, reason: "\"\(text)\" has host bits set (network is \(cidr.masked))"))
            return nil
        }
        return cidr
    }

    var manifest: NodeManifest {
        NodeManifest(apiVersion: ObjectKind.node.apiVersion, kind: ObjectKind.node.rawValue,
                     metadata: .init(name: metadata.name, namespace: nil, uid: metadata.uid,
                                     resourceVersion: metadata.resourceVersion,
                                     labels: metadata.labels.isEmpty ? nil : metadata.labels,
                                     annotations: metadata.annotations.isEmpty ? nil : metadata.annotations),
                     spec: .init(podCIDR: podCIDRs.first?.description,
                                 podCIDRs: podCIDRs.isEmpty ? nil : podCIDRs.map(\.description),
                                 unschedulable: unschedulable ? true : nil),
                     status: .init(addresses: addresses.isEmpty ? nil : addresses))
    }
}

extension Node: Codable {
    public init(from decoder: any Decoder) throws {
        self = try Node.validated(try NodeManifest(from: decoder)).get(decoder)
    }
    public func encode(to encoder: any Encoder) throws { try manifest.encode(to: encoder) }
}
