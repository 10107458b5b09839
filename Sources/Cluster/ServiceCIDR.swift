import NetAddress

/// A networking.k8s.io/v1 ServiceCIDR (GA in Kubernetes 1.33): a range the API server allocates
/// Service cluster IPs from. The service proxy drops traffic to the addresses of these ranges that
/// no Service holds, as kube-proxy does.
public struct ServiceCIDR: Hashable, Sendable {
    public var metadata: ObjectMeta
    /// `spec.cidrs`: at most one range per address family.
    public var cidrs: [CIDR]

    public init(metadata: ObjectMeta, cidrs: [CIDR]) {
        var m = metadata
        m.namespace = nil
        self.metadata = m
        self.cidrs = cidrs
    }

    public var name: String { metadata.name }
    public var key: ObjectKey { ObjectKey(kind: .serviceCIDR, name: metadata.name) }
}

// MARK: - Wire form and validation

struct ServiceCIDRManifest: Codable {
    struct Spec: Codable {
        var cidrs: [String]?
    }
    var apiVersion: String?
    var kind: String?
    var metadata: NodeManifest.Metadata?
    var spec: Spec?
}

extension ServiceCIDR {
    /// Kubernetes' rules for `spec.cidrs`: one or two prefixes, no two of the same family.
    static func validated(_ m: ServiceCIDRManifest) -> Result<ServiceCIDR, FieldIssues> {
        var check = FieldChecks()
        let name = m.metadata?.name ?? ""
        if name.isEmpty { check.fail("metadata.name", "missing") }
        let texts = m.spec?.cidrs ?? []
        if texts.isEmpty { check.fail("spec.cidrs", "missing") }
        if texts.count > 2 { check.fail("spec.cidrs", "\(texts.count) ranges: at most 2 (one per address family)") }
        var cidrs: [CIDR] = []
        for (i, text) in texts.enumerated() {
            guard let cidr = check.cidr(text, "spec.cidrs[\(i)]") else { continue }
            if cidrs.contains(where: { $0.family == cidr.family }) {
                check.fail("spec.cidrs[\(i)]", "a second \(cidr.family == .ipv4 ? "IPv4" : "IPv6") range: at most one per address family")
                continue
            }
            cidrs.append(cidr)
        }
        guard check.issues.isEmpty else { return .failure(FieldIssues(issues: check.issues)) }
        return .success(ServiceCIDR(metadata: ObjectMeta(m.metadata, name: name), cidrs: cidrs))
    }

    var manifest: ServiceCIDRManifest {
        ServiceCIDRManifest(apiVersion: ObjectKind.serviceCIDR.apiVersion, kind: ObjectKind.serviceCIDR.rawValue,
                            metadata: metadata.manifest, spec: .init(cidrs: cidrs.map(\.description)))
    }
}

extension ServiceCIDR: Codable {
    public init(from decoder: any Decoder) throws {
        switch ServiceCIDR.validated(try ServiceCIDRManifest(from: decoder)) {
        case .success(let s): self = s
        case .failure(let failure): throw failure.decodingError(decoder)
        }
    }
    public func encode(to encoder: any Encoder) throws { try manifest.encode(to: encoder) }
}
