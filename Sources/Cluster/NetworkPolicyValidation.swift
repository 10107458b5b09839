import NetAddress

/// A networking.k8s.io/v1 NetworkPolicy as a manifest writes it: every field optional.
struct NetworkPolicyManifest: Codable {
    struct IPBlock: Codable {
        var cidr: String?
        var except: [String]?
    }
    struct Peer: Codable {
        var podSelector: LabelSelectorManifest?
        var namespaceSelector: LabelSelectorManifest?
        var ipBlock: IPBlock?
    }
    struct Port: Codable {
        var `protocol`: String?
        var port: IntOrString?
        var endPort: Int?
    }
    struct IngressRule: Codable {
        var from: [Peer]?
        var ports: [Port]?
    }
    struct EgressRule: Codable {
        var to: [Peer]?
        var ports: [Port]?
    }
    struct Spec: Codable {
        var podSelector: LabelSelectorManifest?
        var policyTypes: [String]?
        var ingress: [IngressRule]?
        var egress: [EgressRule]?
    }
    var apiVersion: String?
    var kind: String?
    var metadata: NodeManifest.Metadata?
    var spec: Spec?
}

extension NetworkPolicy {
    /// Validates a decoded manifest. All bad fields are reported, not only the first.
    ///
    /// `spec.podSelector` absent is taken as `{}` (all pods of the namespace), as the API server's
    /// Go type (a non-pointer struct) reads it.
    static func validated(_ m: NetworkPolicyManifest) -> Validation<NetworkPolicy> {
        var check = FieldChecks()
        let name = check.metadata(m.metadata, kind: .networkPolicy)
        let spec = m.spec ?? NetworkPolicyManifest.Spec()
        let podSelector = check.selector(spec.podSelector ?? LabelSelectorManifest(), "spec.podSelector")

        var types: [PolicyType] = []
        for (i, text) in (spec.policyTypes ?? []).enumerated() {
            guard let t = check.oneOf(text, "spec.policyTypes[\(i)]", default: PolicyType.ingress) else { continue }
            if types.contains(t) {
                check.fail("spec.policyTypes[\(i)]", "duplicate \(t)")
            } else {
                types.append(t)
            }
        }
        let ingress = (spec.ingress ?? []).enumerated().map { i, r in
            rule(peers: r.from, ports: r.ports, "spec.ingress[\(i)]", peersName: "from", &check)
        }
        let egress = (spec.egress ?? []).enumerated().map { i, r in
            rule(peers: r.to, ports: r.ports, "spec.egress[\(i)]", peersName: "to", &check)
        }
        return check.validation(podSelector.map {
            NetworkPolicy(metadata: ObjectMeta(m.metadata, name: name), podSelector: $0, policyTypes: types, ingress: ingress, egress: egress)
        })
    }

    private static func rule(peers: [NetworkPolicyManifest.Peer]?, ports: [NetworkPolicyManifest.Port]?, _ field: String,
                             peersName: String, _ check: inout FieldChecks) -> NetworkPolicyRule {
        var rule = NetworkPolicyRule()
        for (i, p) in (peers ?? []).enumerated() {
            if let peer = peer(p, "\(field).\(peersName)[\(i)]", &check) { rule.peers.append(peer) }
        }
        for (i, p) in (ports ?? []).enumerated() {
            if let port = port(p, "\(field).ports[\(i)]", &check) { rule.ports.append(port) }
        }
        return rule
    }

    private static func peer(_ p: NetworkPolicyManifest.Peer, _ field: String, _ check: inout FieldChecks) -> NetworkPolicyPeer? {
        if let block = p.ipBlock {
            if p.podSelector != nil || p.namespaceSelector != nil {
                check.fail(field + ".ipBlock", "may not be combined with podSelector or namespaceSelector in one peer")
                return nil
            }
            guard let text = block.cidr, !text.isEmpty else {
                check.fail(field + ".ipBlock.cidr", "missing")
                return nil
            }
            guard let cidr = check.cidr(text, field + ".ipBlock.cidr") else { return nil }
            if cidr.family != FieldChecks.programmedFamily {
                // Allows nothing here; an IPv6 except cannot open anything either.
                check.warn(field + ".ipBlock.cidr", "\(cidr) is \(cidr.family.kubernetesName): this peer allows nothing (keeld's data path is \(FieldChecks.programmedFamily.kubernetesName)-only)")
            }
            var except: [CIDR] = []
            var bad = false
            for (i, e) in (block.except ?? []).enumerated() {
                let f = "\(field).ipBlock.except[\(i)]"
                guard let c = check.cidr(e, f) else { bad = true; continue }
                guard c.family == cidr.family, cidr.contains(c), c.prefixLength > cidr.prefixLength else {
                    check.fail(f, "\(c) is not inside cidr \(cidr) (except must be a strict subset)")
                    bad = true
                    continue
                }
                except.append(c)
            }
            return bad ? nil : .ipBlock(IPBlock(cidr: cidr, except: except))
        }
        guard p.podSelector != nil || p.namespaceSelector != nil else {
            check.fail(field, "empty peer (set podSelector, namespaceSelector or ipBlock)")
            return nil
        }
        let before = check.issues.count
        let pods = p.podSelector.flatMap { check.selector($0, field + ".podSelector") }
        let namespaces = p.namespaceSelector.flatMap { check.selector($0, field + ".namespaceSelector") }
        return check.issues.count == before ? .selector(pods: pods, namespaces: namespaces) : nil
    }

    private static func port(_ p: NetworkPolicyManifest.Port, _ field: String, _ check: inout FieldChecks) -> NetworkPolicyPort? {
        let before = check.issues.count
        let proto = check.portProtocol(p.protocol, field + ".protocol")
        var value: PolicyPortValue?
        switch p.port {
        case nil:
            if p.endPort != nil { check.fail(field + ".endPort", "set without port") }
        case .int(let n)?:
            value = check.port(n, field + ".port", required: true).map { .number($0) }
        case .string(let s)?:
            // Some generators quote numbers; an all-digit name is never valid, so it is meant as a number.
            if let n = Int(s) {
                value = check.port(n, field + ".port", required: true).map { .number($0) }
            } else if FieldChecks.isIANAServiceName(s) {
                value = .name(s)
                if p.endPort != nil { check.fail(field + ".endPort", "set with the named port \"\(s)\" (endPort needs a numeric port)") }
            } else {
                check.fail(field + ".port", "\"\(s)\" is neither a port number nor a port name (at most 15 of a-z, 0-9, '-', with a letter)")
            }
        }
        var end: UInt16?
        if case .number(let start)? = value, let e = p.endPort {
            end = check.port(e, field + ".endPort", required: true)
            if let endValue = end, endValue < start {
                check.fail(field + ".endPort", "\(endValue) is less than port \(start)")
            }
        }
        guard check.issues.count == before, let proto else { return nil }
        return NetworkPolicyPort(protocol: proto, port: value, endPort: end)
    }

    var manifest: NetworkPolicyManifest {
        func peers(_ rule: NetworkPolicyRule) -> [NetworkPolicyManifest.Peer]? {
            rule.peers.isEmpty ? nil : rule.peers.map { peer in
                switch peer {
                case .selector(let pods, let namespaces):
                    .init(podSelector: pods?.manifest, namespaceSelector: namespaces?.manifest)
                case .ipBlock(let b):
                    .init(ipBlock: .init(cidr: b.cidr.description, except: b.except.isEmpty ? nil : b.except.map(\.description)))
                }
            }
        }
        func ports(_ rule: NetworkPolicyRule) -> [NetworkPolicyManifest.Port]? {
            rule.ports.isEmpty ? nil : rule.ports.map { p in
                let value: IntOrString? = switch p.port {
                case .number(let n)?: .int(Int(n))
                case .name(let s)?: .string(s)
                case nil: nil
                }
                return .init(protocol: p.protocol.rawValue, port: value, endPort: p.endPort.map(Int.init))
            }
        }
        return NetworkPolicyManifest(
            apiVersion: ObjectKind.networkPolicy.apiVersion, kind: ObjectKind.networkPolicy.rawValue,
            metadata: metadata.manifest,
            spec: .init(podSelector: podSelector.manifest, policyTypes: policyTypes.map(\.rawValue),
                        ingress: ingress.map { .init(from: peers($0), ports: ports($0)) },
                        egress: egress.map { .init(to: peers($0), ports: ports($0)) }))
    }
}

extension NetworkPolicy: Codable {
    public init(from decoder: any Decoder) throws {
        self = try NetworkPolicy.validated(try NetworkPolicyManifest(from: decoder)).get(decoder)
    }
    public func encode(to encoder: any Encoder) throws { try manifest.encode(to: encoder) }
}
