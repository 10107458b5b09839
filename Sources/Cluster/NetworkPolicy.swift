import NetAddress

/// A networking.k8s.io/v1 NetworkPolicy, validated on the way in, with `policyTypes` defaulted.
///
/// The meaning (which pods it isolates, which connections its rules allow) lives in the
/// PolicyEnforcer module's semantics; this type only holds well-formed data:
/// - ``policyTypes`` is the effective set: as written, or when the manifest has none (or `[]`),
///   `Ingress` plus `Egress` if `spec.egress` has at least one rule (the API server's defaulting).
/// - Rules keep the difference between "absent" and "empty" where Kubernetes gives it meaning:
///   ``NetworkPolicyRule/peers`` and ``NetworkPolicyRule/ports`` empty mean "all"; `ingress: []`
///   (no rules) means nothing is allowed.
///
/// Its `Codable` form is the Kubernetes wire shape; decoding validates and throws
/// `DecodingError.dataCorrupted` naming the first bad field.
public struct NetworkPolicy: Hashable, Sendable {
    public var metadata: ObjectMeta
    /// `spec.podSelector`: the pods of the policy's namespace it applies to; empty selects all.
    public var podSelector: LabelSelector
    /// The effective `spec.policyTypes` (defaults applied), in `Ingress`, `Egress` order.
    public var policyTypes: [PolicyType]
    /// `spec.ingress`: each rule's peers are its `from`.
    public var ingress: [NetworkPolicyRule]
    /// `spec.egress`: each rule's peers are its `to`.
    public var egress: [NetworkPolicyRule]

    /// Builds a policy without validation. `policyTypes` nil applies the Kubernetes default.
    public init(metadata: ObjectMeta, podSelector: LabelSelector = .everything, policyTypes: [PolicyType]? = nil,
                ingress: [NetworkPolicyRule] = [], egress: [NetworkPolicyRule] = []) {
        self.metadata = metadata
        self.podSelector = podSelector
        self.policyTypes = Self.effectiveTypes(policyTypes, hasEgressRules: !egress.isEmpty)
        self.ingress = ingress
        self.egress = egress
    }

    /// `Ingress` always and `Egress` when there are egress rules, unless written (non-empty).
    public static func effectiveTypes(_ written: [PolicyType]?, hasEgressRules: Bool) -> [PolicyType] {
        if let written, !written.isEmpty { return PolicyType.allCases.filter(written.contains) }
        return hasEgressRules ? [.ingress, .egress] : [.ingress]
    }

    public var name: String { metadata.name }
    /// `metadata.namespace`, or `default` when the manifest has none.
    public var namespace: String { metadata.namespace ?? "default" }
    /// `NetworkPolicy/<namespace>/<name>`: the key in ``ClusterSnapshot/networkPolicies``.
    public var key: ObjectKey { ObjectKey(kind: .networkPolicy, namespace: metadata.namespace, name: metadata.name) }
    public var affectsIngress: Bool { policyTypes.contains(.ingress) }
    public var affectsEgress: Bool { policyTypes.contains(.egress) }
}

/// An entry of `spec.policyTypes`.
public enum PolicyType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case ingress = "Ingress"
    case egress = "Egress"
    public var description: String { rawValue }
}

/// One entry of `spec.ingress` or `spec.egress`.
public struct NetworkPolicyRule: Hashable, Sendable {
    /// `from` (ingress) or `to` (egress). Empty (absent or `[]`) means every peer.
    public var peers: [NetworkPolicyPeer]
    /// `ports`. Empty (absent or `[]`) means every port and protocol.
    public var ports: [NetworkPolicyPort]

    public init(peers: [NetworkPolicyPeer] = [], ports: [NetworkPolicyPort] = []) {
        self.peers = peers
        self.ports = ports
    }
}

/// One entry of a rule's `from`/`to`.
public enum NetworkPolicyPeer: Hashable, Sendable {
    /// `podSelector` and/or `namespaceSelector` (at least one is set; both means AND):
    /// - pods only: pods of the policy's own namespace matching `pods`;
    /// - namespaces only: every pod of the namespaces matching `namespaces`;
    /// - both: pods matching `pods` in the namespaces matching `namespaces`.
    case selector(pods: LabelSelector?, namespaces: LabelSelector?)
    /// `ipBlock`.
    case ipBlock(IPBlock)
}

/// `ipBlock`: `cidr` minus each of `except` (each a strict subset of `cidr`).
public struct IPBlock: Hashable, Sendable, CustomStringConvertible {
    public var cidr: CIDR
    public var except: [CIDR]

    public init(cidr: CIDR, except: [CIDR] = []) {
        self.cidr = cidr
        self.except = except
    }

    public func contains(_ address: IPAddress) -> Bool {
        cidr.contains(address) && !except.contains { $0.contains(address) }
    }
    public var description: String {
        except.isEmpty ? "\(cidr)" : "\(cidr) except \(except.map(\.description).joined(separator: ", "))"
    }
}

/// One entry of a rule's `ports`.
public struct NetworkPolicyPort: Hashable, Sendable, CustomStringConvertible {
    /// `protocol`; TCP when absent.
    public var `protocol`: PortProtocol
    /// `port`: a number or a container port name; nil matches every port of ``protocol``.
    public var port: PolicyPortValue?
    /// `endPort`: with a numeric `port`, the range `port...endPort`.
    public var endPort: UInt16?

    public init(protocol: PortProtocol = .tcp, port: PolicyPortValue? = nil, endPort: UInt16? = nil) {
        self.protocol = `protocol`
        self.port = port
        self.endPort = endPort
    }
    public var description: String {
        switch (port, endPort) {
        case (nil, _): "\(`protocol`)/*"
        case (.number(let n)?, let end?): "\(`protocol`)/\(n)-\(end)"
        case (let p?, nil): "\(`protocol`)/\(p)"
        case (.name(let s)?, _?): "\(`protocol`)/\(s)"   // not valid; validation rejects it
        }
    }
}

/// A NetworkPolicy port: a number, or the name of a container port (resolved on each pod).
public enum PolicyPortValue: Hashable, Sendable, CustomStringConvertible {
    case number(UInt16)
    case name(String)
    public var description: String {
        switch self {
        case .number(let n): "\(n)"
        case .name(let s): s
        }
    }
}
