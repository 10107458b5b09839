import NetAddress

/// A v1 Service as a manifest writes it: every field optional, so that a missing field is a
/// validation problem with a precise name rather than a decoding failure. Fields Keel does not
/// read (`allocateLoadBalancerNodePorts`, `trafficDistribution`, …) are ignored; `ipFamilyPolicy`
/// is read only to be checked.
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
        var ipFamilyPolicy: String?
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
    static func validated(_ m: ServiceManifest) -> Validation<Service> {
        var check = FieldChecks()
        let name = check.metadata(m.metadata, kind: .service)
        let spec = m.spec ?? ServiceManifest.Spec()
        check.labels(spec.selector, "spec.selector")

        let type = check.oneOf(spec.type, "spec.type", default: ServiceType.clusterIP) ?? .clusterIP
        var service = Service(metadata: ObjectMeta(m.metadata, name: name), type: type,
                              selector: spec.selector ?? [:], publishNotReadyAddresses: spec.publishNotReadyAddresses ?? false)

        if type == .externalName {
            // clusterIP is "ignored if type is ExternalName" (API reference); the name is what matters.
            let externalName = spec.externalName ?? ""
            if externalName.isEmpty {
                check.fail("spec.externalName", "missing (required for type ExternalName)")
            } else if !FieldChecks.isDNSSubdomain(externalName.hasSuffix(".") ? String(externalName.dropLast()) : externalName) {
                check.fail("spec.externalName", "\"\(externalName)\" is not a DNS-1123 subdomain (lowercase a-z, 0-9, '-' and '.', at most 253)")
            }
            if !(spec.clusterIP ?? "").isEmpty || !(spec.clusterIPs ?? []).isEmpty {
                check.warn("spec.clusterIP", "ignored: an ExternalName Service has no cluster IP (Kubernetes refuses one)")
            }
            service.externalName = spec.externalName
        } else {
            (service.clusterIPs, service.isHeadless) = clusterIPs(spec, type: type, &check)
            service.externalName = spec.externalName.flatMap { $0.isEmpty ? nil : $0 }
            if service.clusterIPs.isEmpty, !service.isHeadless, (spec.clusterIP ?? "").isEmpty, (spec.clusterIPs ?? []).isEmpty {
                // The API server allocates it; a manifest folder has no allocator.
                check.warn("spec.clusterIP", "missing: nothing is programmed for this Service until it has one (the API server allocates it; a manifest writes it)")
            }
        }

        let ports = spec.ports ?? []
        if ports.isEmpty, type != .externalName, !service.isHeadless {
            check.fail("spec.ports", "missing (required unless the Service is headless or ExternalName)")
        }
        service.ports = servicePorts(ports, type: type, &check)

        service.externalIPs = (spec.externalIPs ?? []).enumerated().compactMap { i, text in
            let ip = check.ip(text, "spec.externalIPs[\(i)]")
            if let ip {
                check.nonSpecialIP(ip, "spec.externalIPs[\(i)]")
                check.programmedFamily(ip, "spec.externalIPs[\(i)]")
            }
            return ip
        }
        if let text = spec.loadBalancerIP, !text.isEmpty {
            service.loadBalancerIP = check.ip(text, "spec.loadBalancerIP")
            if let ip = service.loadBalancerIP { check.programmedFamily(ip, "spec.loadBalancerIP") }
        }
        service.loadBalancerSourceRanges = (spec.loadBalancerSourceRanges ?? []).enumerated().compactMap { i, text in
            let cidr = check.cidr(text, "spec.loadBalancerSourceRanges[\(i)]")
            if let cidr, cidr.family != FieldChecks.programmedFamily {
                check.warn("spec.loadBalancerSourceRanges[\(i)]",
                           "\(cidr) is \(cidr.family.kubernetesName): ignored (keeld's data path is \(FieldChecks.programmedFamily.kubernetesName)-only)")
            }
            return cidr
        }
        service.loadBalancerIngress = (m.status?.loadBalancer?.ingress ?? []).enumerated().map { i, entry in
            let field = "status.loadBalancer.ingress[\(i)]"
            let ip = entry.ip.flatMap { $0.isEmpty ? nil : check.ip($0, field + ".ip") }
            if let ip { check.programmedFamily(ip, field + ".ip") }
            return LoadBalancerIngress(
                ip: ip,
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
        case .none?:
            service.sessionAffinity = .none
            if spec.sessionAffinityConfig != nil {
                check.warn("spec.sessionAffinityConfig", "ignored: sessionAffinity is None (Kubernetes refuses the config then)")
            }
        case nil:
            service.sessionAffinity = .none
        }
        service.externalTrafficPolicy = check.oneOf(spec.externalTrafficPolicy, "spec.externalTrafficPolicy",
                                                     default: TrafficPolicy.cluster) ?? .cluster
        // What only externally accessible Services use (ProxyStateBuilder), said where it is ignored.
        if service.externalTrafficPolicy == .local, !service.isExternallyAccessible, type != .externalName {
            check.warn("spec.externalTrafficPolicy", "Local: ignored for a \(type) Service without external IPs (Kubernetes refuses it there)")
        }
        if type != .loadBalancer, type != .externalName {
            if !service.loadBalancerSourceRanges.isEmpty {
                check.warn("spec.loadBalancerSourceRanges", "ignored: only a LoadBalancer Service has them (Kubernetes refuses them on a \(type) Service)")
            }
            if !service.loadBalancerIngressIPs.isEmpty {
                check.warn("status.loadBalancer.ingress", "ignored: a \(type) Service is not a LoadBalancer")
            }
        }
        service.internalTrafficPolicy = check.oneOf(spec.internalTrafficPolicy, "spec.internalTrafficPolicy",
                                                     default: TrafficPolicy.cluster) ?? .cluster
        service.healthCheckNodePort = check.port(spec.healthCheckNodePort, "spec.healthCheckNodePort",
                                                 required: false, zeroMeansUnset: true)
        if let port = service.healthCheckNodePort {
            check.warn("spec.healthCheckNodePort", "\(port): ignored (keeld answers no load-balancer health checks)")
        }
        service.ipFamilies = (spec.ipFamilies ?? []).enumerated().compactMap { i, text in
            switch text {
            case "IPv4": return .ipv4
            case "IPv6": return .ipv6
            default:
                check.fail("spec.ipFamilies[\(i)]", "\"\(text)\" is not IPv4 or IPv6")
                return nil
            }
        }
        if type != .externalName { ipFamilies(spec, service, &check) }
        return check.validation(service)
    }

    /// The spellings of `spec.ipFamilyPolicy`.
    private enum IPFamilyPolicy: String, CaseIterable {
        case singleStack = "SingleStack"
        case preferDualStack = "PreferDualStack"
        case requireDualStack = "RequireDualStack"
    }

    /// `spec.ipFamilies` against `spec.clusterIPs` and `spec.ipFamilyPolicy`, as Kubernetes'
    /// `validateIPFamilies` checks them; and the IPv6 cluster IPs the data path leaves alone.
    private static func ipFamilies(_ spec: ServiceManifest.Spec, _ service: Service, _ check: inout FieldChecks) {
        let policy = spec.ipFamilyPolicy.flatMap { check.oneOf($0, "spec.ipFamilyPolicy", default: IPFamilyPolicy.singleStack) }
        let families = service.ipFamilies
        if families.count > 2 {
            check.fail("spec.ipFamilies", "\(families.count) entries (at most one per family)")
        } else if families.count == 2, families[0] == families[1] {
            check.fail("spec.ipFamilies[1]", "duplicate \(families[1].kubernetesName)")
        }
        for (i, (ip, family)) in zip(service.clusterIPs, families).enumerated() where ip.family != family {
            check.fail("spec.ipFamilies[\(i)]", "\(family.kubernetesName) does not match spec.clusterIPs[\(i)] \(ip)")
        }
        if policy == .singleStack, max(families.count, service.clusterIPs.count) > 1 {
            check.fail("spec.ipFamilyPolicy", "SingleStack with two families (spec.ipFamilies or spec.clusterIPs)")
        }
        if policy == .requireDualStack {
            let only = FieldChecks.programmedFamily.kubernetesName
            check.warn("spec.ipFamilyPolicy", "RequireDualStack: only the \(only) family is served (keeld's data path is \(only)-only)")
        }
        for (i, ip) in service.clusterIPs.enumerated() {
            check.programmedFamily(ip, spec.clusterIPs == nil ? "spec.clusterIP" : "spec.clusterIPs[\(i)]")
        }
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

    private static func servicePorts(_ ports: [ServiceManifest.Port], type: ServiceType, _ check: inout FieldChecks) -> [ServicePort] {
        var result: [ServicePort] = []
        var names: [String: Int] = [:]
        var numbers: [String: Int] = [:]
        var nodePorts: [String: Int] = [:]
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
            if let port, case .some(nil) = target, let written = p.targetPort {
                check.warn(field + ".targetPort", "\(written == .int(0) ? "0" : "\"\"") is no port: taken as port \(port), as Kubernetes defaults it")
            }
            let nodePort = check.port(p.nodePort, field + ".nodePort", required: false, zeroMeansUnset: true)
            if let n = nodePort, let proto {
                if type == .clusterIP || type == .externalName {
                    // kube-proxy and keeld open node ports for NodePort and LoadBalancer Services only.
                    check.warn(field + ".nodePort", "ignored: a \(type) Service has no node ports (Kubernetes refuses one)")
                } else if let first = nodePorts["\(n)/\(proto)"] {
                    check.fail(field + ".nodePort", "duplicate node port \(n)/\(proto) (also spec.ports[\(first)])")
                } else {
                    nodePorts["\(n)/\(proto)"] = i
                }
            }
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
        case nil, .int(0)?, .string("")?:
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
        self = try Service.validated(try ServiceManifest(from: decoder)).get(decoder)
    }
    public func encode(to encoder: any Encoder) throws { try manifest.encode(to: encoder) }
}
