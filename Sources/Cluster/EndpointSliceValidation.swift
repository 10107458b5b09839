import NetAddress

/// A discovery.k8s.io/v1 EndpointSlice as a manifest writes it: every field optional, so that a
/// missing field is a validation problem with a precise name. `targetRef` and `deprecatedTopology`
/// are ignored.
struct EndpointSliceManifest: Codable {
    struct Conditions: Codable {
        var ready: Bool?
        var serving: Bool?
        var terminating: Bool?
    }
    struct Endpoint: Codable {
        var addresses: [String]?
        var conditions: Conditions?
        var hostname: String?
        var nodeName: String?
        var zone: String?
        var hints: Hints?
    }
    /// `hints` never fails to decode: an odd shape (or a newer field) reads as no hints.
    struct Hints: Codable {
        struct Zone: Codable { var name: String }
        var forZones: [Zone]?

        enum CodingKeys: String, CodingKey { case forZones }
        init(forZones: [Zone]?) { self.forZones = forZones }
        init(from decoder: any Decoder) throws {
            let c = try? decoder.container(keyedBy: CodingKeys.self)
            forZones = (try? c?.decodeIfPresent([Zone].self, forKey: .forZones)) ?? nil
        }
    }
    struct Port: Codable {
        var name: String?
        var `protocol`: String?
        var port: Int?
        var appProtocol: String?
    }

    var apiVersion: String?
    var kind: String?
    var metadata: NodeManifest.Metadata?
    var addressType: String?
    var endpoints: [Endpoint]?
    var ports: [Port]?
}

extension EndpointSlice {
    /// Validates a decoded manifest. All bad fields are reported, not only the first.
    static func validated(_ m: EndpointSliceManifest) -> Validation<EndpointSlice> {
        var check = FieldChecks()
        let name = check.metadata(m.metadata, kind: .endpointSlice)
        if (m.metadata?.labels?[EndpointSlice.serviceNameLabel] ?? "").isEmpty {
            check.warn("metadata.labels", "no \(EndpointSlice.serviceNameLabel) label: the slice belongs to no Service and is not used")
        }
        var addressType: EndpointAddressType?
        if let text = m.addressType {
            addressType = check.oneOf(text, "addressType", default: EndpointAddressType.ipv4)
            switch addressType {
            case .fqdn?: check.warn("addressType", "FQDN: ignored (a proxy forwards to IP endpoints only, as kube-proxy does)")
            case let type? where type.family != FieldChecks.programmedFamily:
                check.warn("addressType", "\(type.rawValue): ignored (keeld's data path is \(FieldChecks.programmedFamily.kubernetesName)-only)")
            default: break
            }
        } else {
            check.fail("addressType", "missing")
        }

        let manifests = m.endpoints ?? []
        if manifests.count > EndpointSlice.maxEndpoints {
            check.fail("endpoints", "\(manifests.count) endpoints (at most \(EndpointSlice.maxEndpoints))")
        }
        var endpoints: [Endpoint] = []
        for (i, e) in manifests.enumerated() {
            let field = "endpoints[\(i)].addresses"
            let texts = e.addresses ?? []
            if texts.isEmpty { check.fail(field, "missing (an endpoint needs at least one address)") }
            if texts.count > EndpointSlice.maxAddresses {
                check.fail(field, "\(texts.count) addresses (at most \(EndpointSlice.maxAddresses))")
            }
            var addresses: [EndpointAddress] = []
            for (j, text) in texts.enumerated() {
                switch addressType {
                case .fqdn?:
                    if text.isEmpty { check.fail("\(field)[\(j)]", "empty") } else { addresses.append(.fqdn(text)) }
                case let type?:
                    if let a = check.ip(text, "\(field)[\(j)]", family: type.family) {
                        check.nonSpecialIP(a, "\(field)[\(j)]")
                        // "clients may choose to only use the first element" (the API reference): keeld does.
                        if j > 0 { check.warn("\(field)[\(j)]", "ignored: only an endpoint's first address is used") }
                        addresses.append(.ip(a))
                    }
                case nil:
                    break   // already reported at addressType: the addresses cannot be checked
                }
            }
            if let hostname = e.hostname, !hostname.isEmpty, !FieldChecks.isDNSLabel(hostname) {
                check.fail("endpoints[\(i)].hostname", "\"\(hostname)\" is not a DNS-1123 label (at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric)")
            }
            if let node = e.nodeName, !node.isEmpty, !FieldChecks.isDNSSubdomain(node) {
                check.fail("endpoints[\(i)].nodeName", "\"\(node)\" is not a node name (a DNS-1123 subdomain)")
            }
            let c = e.conditions
            endpoints.append(Endpoint(addresses: addresses,
                                      conditions: EndpointConditions(ready: c?.ready, serving: c?.serving,
                                                                     terminating: c?.terminating),
                                      nodeName: e.nodeName.flatMap { $0.isEmpty ? nil : $0 },
                                      zone: e.zone.flatMap { $0.isEmpty ? nil : $0 },
                                      hostname: e.hostname.flatMap { $0.isEmpty ? nil : $0 },
                                      zoneHints: e.hints?.forZones?.map(\.name) ?? []))
        }

        var ports: [EndpointPort] = []
        var seen: [String: Int] = [:]
        for (i, p) in (m.ports ?? []).enumerated() {
            let field = "ports[\(i)]"
            let name = p.name ?? ""
            if !name.isEmpty, !FieldChecks.isDNSLabel(name) {
                check.fail(field + ".name", "\"\(name)\" is not a DNS label (lowercase letters, digits and '-')")
            }
            let proto = check.portProtocol(p.protocol, field + ".protocol")
            // Names are unique whatever the protocol, as Kubernetes' validatePorts has it: a Service's
            // port names are, and a slice names the Service's ports.
            if let first = seen[name] {
                check.fail(field + ".name", "duplicate port name \"\(name)\" (also ports[\(first)])")
            } else {
                seen[name] = i
            }
            let number = check.port(p.port, field + ".port", required: false)
            if let proto { ports.append(EndpointPort(name: name, protocol: proto, port: number, appProtocol: p.appProtocol)) }
        }

        return check.validation(addressType.map {
            EndpointSlice(metadata: ObjectMeta(m.metadata, name: name), addressType: $0, endpoints: endpoints, ports: ports)
        })
    }

    /// Kubernetes' limits (`maxEndpoints`, `maxAddresses` of discovery validation).
    static let maxEndpoints = 1000
    static let maxAddresses = 100

    var manifest: EndpointSliceManifest {
        EndpointSliceManifest(
            apiVersion: ObjectKind.endpointSlice.apiVersion, kind: ObjectKind.endpointSlice.rawValue,
            metadata: metadata.manifest, addressType: addressType.rawValue,
            endpoints: endpoints.map { e in
                let c = e.conditions
                return .init(addresses: e.addresses.map(\.description),
                             conditions: c == EndpointConditions() ? nil
                                 : .init(ready: c.ready, serving: c.serving, terminating: c.terminating),
                             hostname: e.hostname, nodeName: e.nodeName, zone: e.zone,
                             hints: e.zoneHints.isEmpty ? nil : .init(forZones: e.zoneHints.map { .init(name: $0) }))
            },
            ports: ports.isEmpty ? nil : ports.map {
                .init(name: $0.name, protocol: $0.protocol.rawValue, port: $0.port.map(Int.init), appProtocol: $0.appProtocol)
            })
    }
}

extension EndpointSlice: Codable {
    public init(from decoder: any Decoder) throws {
        self = try EndpointSlice.validated(try EndpointSliceManifest(from: decoder)).get(decoder)
    }
    public func encode(to encoder: any Encoder) throws { try manifest.encode(to: encoder) }
}
