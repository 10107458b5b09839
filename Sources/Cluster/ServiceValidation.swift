import NetAddress

/// A v1 Service as a manifest writes it: every field optional, so that a missing field is a
/// validation problem with a precise name rather than a decoding failure. Fields Keel does not
/// read (`ipFamilyPolicy`, `allocateLoadBalancerNodePorts`, `trafficDistribution`, …) are ignored.
struct ServiceManifest: Codable {
    struct Port: Codable {
        var name: String?
        var `protocol`: String?
        var port: Int?
        var targetPort: IntOrString?
        var nodePort: Int?
        var appProtocol: String?
    }
    struct ClientIPConfig: Codable { var timeoutSeconds: Int? }
    struct AffinityConfig: Codable { var clientIP: ClientIPConfig? }
    struct Spec: Codable {
        var type: String?
        var clusterIP: String?
        var clusterIPs: [String]?
        var ports: [Port]?
        var selector: [String: String]?
        var externalName: String?
        var externalIPs: [String]?
        var loadBalancerIP: String?
        var loadBalancerSourceRanges: [String]?
        var sessionAffinity: String?
        var sessionAffinityConfig: AffinityConfig?
        var externalTrafficPolicy: String?
        var internalTrafficPolicy: String?
        var healthCheckNodePort: Int?
        var ipFamilies: [String]?
        var publishNotReadyAddresses: Bool?
    }
    struct Ingress: Codable {
        var ip: String?
        var hostname: String?
        var ipMode: String?
    }
    struct LoadBalancerStatus: Codable { var ingress: [Ingress]? }
    struct Status: Codable { var loadBalancer: LoadBalancerStatus? }

    var apiVersion: String?
    var kind: String?
    var metadata: NodeManifest.Metadata?
    var spec: Spec?
    var status: Status?
}

extension Service {
    /// Validates a decoded manifest. All bad fields are reported, not only the first.
    static func validated(_ m: ServiceManifest) -> Result<Service, FieldIssues> {
        var check = FieldChecks()
        let name = m.metadata?.name ?? ""
        if name.isEmpty { check.fail("metadata.name", "missing") }
        let spec = m.spec ?? ServiceManifest.Spec()

        let type = check.oneOf(spec.type, "spec.type", default: ServiceType.clusterIP) ?? .clusterIP
        var service = Service(metadata: ObjectMeta(m.metadata, name: name), type: type,
                              selector: spec.selector ?? [:], publishNotReadyAddresses: spec.publishNotReadyAddresses ?? false)

        if type == .externalName {
            // clusterIP is "ignored if type is ExternalName" (API reference); the name is what matters.
            if (spec.externalName ?? "").isEmpty { check.fail("spec.externalName", "missing (required for type ExternalName)") }
            service.externalName = spec.externalName
        } else {
            (service.clusterIPs, service.isHeadless) = clusterIPs(spec, type: type, &check)
            service.externalName = spec.externalName.flatMap { $0.isEmpty ? nil : $0 }
        }

        let ports = spec.ports ?? []
        if ports.isEmpty, type != .externalName, !service.isHeadless {
            check.fail("spec.ports", "missing (required unless the Service is headless or ExternalName)")
        }
        service.ports = servicePorts(ports, &check)

        service.externalIPs = (spec.externalIPs ?? []).enumerated().compactMap { i, text in
            check.ip(text, "spec.externalIPs[\(i)]")
        }
        if let text = spec.loadBalancerIP, !text.isEmpty { service.loadBalancerIP = check.ip(text, "spec.loadBalancerIP") }
        service.loadBalancerSourceRanges = (spec.loadBalancerSourceRanges ?? []).enumerated().compactMap { i, text in
            check.cidr(text, "spec.loadBalancerSourceRanges[\(i)]")
        }
        service.loadBalancerIngress = (m.status?.loadBalancer?.ingress ?? []).enumerated().map { i, entry in
            let field = "status.loadBalancer.ingress[\(i)]"
            return LoadBalancerIngress(
                ip: entry.ip.flatMap { $0.isEmpty ? nil : check.ip($0, field + ".ip") },
                hostname: entry.hostname.flatMap { $0.isEmpty ? nil : $0 },
                ipMode: entry.ipMode.flatMap { text in
                    guard let mode = LoadBalancerIPMode(rawValue: text) else {
                        check.fail(field + ".ipMode", "\"\(text)\" is not VIP or Proxy")
                        return nil
                    }
                    return mode
                })
        }

        switch check.oneOf(spec.sessionAffinity, "spec.sessionAffinity", default: AffinityName.none) {
        case .clientIP?:
            let field = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
            let timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? SessionAffinity.defaultTimeoutSeconds
            if (1...SessionAffinity.maximumTimeoutSeconds).contains(timeout) {
                service.sessionAffinity = .clientIP(timeoutSeconds: timeout)
            } else {
                check.fail(field, "\(timeout) is not in 1-\(SessionAffinity.maximumTimeoutSeconds) seconds")
            }
        case .none?, nil:
            service.sessionAffinity = .none
        }
        service.externalTrafficPolicy = check.oneOf(spec.externalTrafficPolicy, "spec.externalTrafficPolicy",
                                                     default: TrafficPolicy.cluster) ?? .cluster
        service.internalTrafficPolicy = check.oneOf(spec.internalTrafficPolicy, "spec.internalTrafficPolicy",
                                                     default: TrafficPolicy.cluster) ?? .cluster
        service.healthCheckNodePort = check.port(spec.healthCheckNodePort, "spec.healthCheckNodePort",
                                                 required: false, zeroMeansUnset: true)
        service.ipFamilies = (spec.ipFamilies ?? []).enumerated().compactMap { i, text in
            switch text {
            case "IPv4": return .ipv4
            case "IPv6": return .ipv6
            default:
                check.fail("spec.ipFamilies[\(i)]", "\"\(text)\" is not IPv4 or IPv6")
                return nil
            }
        }
        return check.issues.isEmpty ? .success(service) : .failure(FieldIssues(issues: check.issues))
    }

    /// The spellings of `spec.sessionAffinity`.
    private enum AffinityName: String, CaseIterable {
        case none = "None"
        case clientIP = "ClientIP"
    }

    /// `spec.clusterIP` and `spec.clusterIPs`: "" (not allocated), "None" (headless) or addresses,
    /// one per family, and `clusterIPs[0]` equal to `clusterIP` when both are written.
    private static func clusterIPs(_ spec: ServiceManifest.Spec, type: ServiceType,
                                   _ check: inout FieldChecks) -> ([IPAddress], headless: Bool) {
        let single = spec.clusterIP ?? ""
        let list = spec.clusterIPs ?? []
        let headless = single == "None" || list.first == "None"
        if headless {
            if !single.isEmpty, single != "None" {
                check.fail("spec.clusterIPs[0]", "\"None\" does not match spec.clusterIP \"\(single)\"")
            } else if list.count > 1 {
                check.fail("spec.clusterIPs", "\"None\" must be the only entry")
            } else if !list.isEmpty, list[0] != "None" {
                check.fail("spec.clusterIPs[0]", "\"\(list[0])\" does not match spec.clusterIP \"None\"")
            }
            if type != .clusterIP {
                check.fail("spec.clusterIP", "\"None\" (headless) is only valid for type ClusterIP, not \(type)")
            }
            return ([], true)
        }
        let singleIP = single.isEmpty ? nil : check.ip(single, "spec.clusterIP")
        guard !list.isEmpty else { return (singleIP.map { [$0] } ?? [], false) }
        var addresses: [IPAddress] = []
        for (i, text) in list.enumerated() {
            guard text != "None" else {
                check.fail("spec.clusterIPs[\(i)]", "\"None\" must be the only entry")
                continue
            }
            if let a = check.ip(text, "spec.clusterIPs[\(i)]") { addresses.append(a) }
        }
        if let singleIP, IPAddress(list[0]).map({ $0 != singleIP }) == true {
            check.fail("spec.clusterIPs[0]", "\"\(list[0])\" does not match spec.clusterIP \"\(single)\"")
        }
        if addresses.count == 2, addresses[0].family == addresses[1].family {
            check.fail("spec.clusterIPs", "two \(addresses[0].family.kubernetesName) addresses (dual-stack needs one of each family)")
        } else if addresses.count > 2 {
            check.fail("spec.clusterIPs", "\(addresses.count) addresses (at most one per family)")
        }
        return (addresses, false)
    }

    private static func servicePorts(_ ports: [ServiceManifest.Port], _ check: inout FieldChecks) -> [ServicePort] {
        var result: [ServicePort] = []
        var names: [String: Int] = [:]
        var numbers: [String: Int] = [:]
        for (i, p) in ports.enumerated() {
            let field = "spec.ports[\(i)]"
            let name = p.name ?? ""
            if name.isEmpty {
                if ports.count > 1 { check.fail(field + ".name", "missing (required when a Service has more than one port)") }
            } else if !FieldChecks.isDNSLabel(name) {
                check.fail(field + ".name", "\"\(name)\" is not a DNS label (lowercase letters, digits and '-')")
            } else if let first = names[name] {
                check.fail(field + ".name", "duplicate name \"\(name)\" (also spec.ports[\(first)])")
            } else {
                names[name] = i
            }
            let proto = check.portProtocol(p.protocol, field + ".protocol")
            let port = check.port(p.port, field + ".port", required: true)
            if let proto, let port {
                if let first = numbers["\(port)/\(proto)"] {
                    check.fail(field + ".port", "duplicate port \(port)/\(proto) (also spec.ports[\(first)])")
                } else {
                    numbers["\(port)/\(proto)"] = i
                }
            }
            let target = targetPort(p.targetPort, field + ".targetPort", &check)
            let nodePort = check.port(p.nodePort, field + ".nodePort", required: false, zeroMeansUnset: true)
            if let proto, let port, let target {
                result.append(ServicePort(name: name, protocol: proto, port: port, targetPort: target ?? .number(port),
                                          nodePort: nodePort, appProtocol: p.appProtocol))
            }
        }
        return result
    }

    /// The outer optional is nil when the value is bad; the inner one when it is absent (0 or missing).
    private static func targetPort(_ value: IntOrString?, _ field: String, _ check: inout FieldChecks) -> TargetPort?? {
        switch value {
        case nil, .int(0)?:
            return .some(nil)
        case .int(let n)?:
            return check.port(n, field, required: true).map { .number($0) }
        case .string(let s)?:
            // Some generators quote numbers; an all-digit name is never valid, so it is meant as a number.
            if let n = Int(s) { return check.port(n, field, required: true).map { .number($0) } }
            guard FieldChecks.isIANAServiceName(s) else {
                check.fail(field, "\"\(s)\" is neither a port number nor a port name (at most 15 of a-z, 0-9, '-', with a letter)")
                return nil
            }
            return .name(s)
        }
    }

    var manifest: ServiceManifest {
        var spec = ServiceManifest.Spec()
        spec.type = type.rawValue
        if isHeadless {
            spec.clusterIP = "None"
            spec.clusterIPs = ["None"]
        } else if !clusterIPs.isEmpty {
            spec.clusterIP = clusterIPs[0].description
            spec.clusterIPs = clusterIPs.map(\.description)
        }
        spec.ports = ports.isEmpty ? nil : ports.map { p in
            let target: IntOrString = switch p.targetPort {
            case .number(let n): .int(Int(n))
            case .name(let s): .string(s)
            }
            return .init(name: p.name.isEmpty ? nil : p.name, protocol: p.protocol.rawValue, port: Int(p.port),
                         targetPort: target, nodePort: p.nodePort.map(Int.init), appProtocol: p.appProtocol)
        }
        spec.selector = selector.isEmpty ? nil : selector
        spec.externalName = externalName
        spec.externalIPs = externalIPs.isEmpty ? nil : externalIPs.map(\.description)
        spec.loadBalancerIP = loadBalancerIP?.description
        spec.loadBalancerSourceRanges = loadBalancerSourceRanges.isEmpty ? nil : loadBalancerSourceRanges.map(\.description)
        switch sessionAffinity {
        case .none:
            spec.sessionAffinity = "None"
        case .clientIP(let timeout):
            spec.sessionAffinity = "ClientIP"
            spec.sessionAffinityConfig = .init(clientIP: .init(timeoutSeconds: timeout))
        }
        spec.externalTrafficPolicy = externalTrafficPolicy.rawValue
        spec.internalTrafficPolicy = internalTrafficPolicy.rawValue
        spec.healthCheckNodePort = healthCheckNodePort.map(Int.init)
        spec.ipFamilies = ipFamilies.isEmpty ? nil : ipFamilies.map(\.kubernetesName)
        spec.publishNotReadyAddresses = publishNotReadyAddresses ? true : nil
        let ingress = loadBalancerIngress.map {
            ServiceManifest.Ingress(ip: $0.ip?.description, hostname: $0.hostname, ipMode: $0.ipMode?.rawValue)
        }
        return ServiceManifest(apiVersion: ObjectKind.service.apiVersion, kind: ObjectKind.service.rawValue,
                               metadata: metadata.manifest, spec: spec,
                               status: ingress.isEmpty ? nil : .init(loadBalancer: .init(ingress: ingress)))
    }
}

extension Service: Codable {
    public init(from decoder: any Decoder) throws {
        switch Service.validated(try ServiceManifest(from: decoder)) {
        case .success(let service): self = service
        case .failure(let failure): throw failure.decodingError(decoder)
        }
    }
    public func encode(to encoder: any Encoder) throws { try manifest.encode(to: encoder) }
}
