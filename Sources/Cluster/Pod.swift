import NetAddress

/// A v1 Pod, reduced to what a policy enforcer uses (labels, addresses, container ports, node,
/// host networking, phase) and validated on the way in.
///
/// In manifest mode Pods are written with `status.podIP`/`status.podIPs` after the CNI ADD (the demo
/// and the tests do it), as the kubelet reports them to the API server. A Pod without an address
/// yet is valid: it is selectable by labels, but no address-based rule can name it.
///
/// Its `Codable` form is the Kubernetes wire shape; decoding validates and throws
/// `DecodingError.dataCorrupted` naming the first bad field.
public struct Pod: Hashable, Sendable {
    public var metadata: ObjectMeta
    /// `spec.nodeName`; nil while unscheduled.
    public var nodeName: String?
    /// `spec.hostNetwork`: the pod uses the node's network namespace and addresses.
    public var hostNetwork: Bool
    /// The `ports` of every entry of `spec.containers`, in container then port order.
    /// (`initContainers` are not read.)
    public var containerPorts: [ContainerPort]
    /// `status.podIPs` (or `[status.podIP]`), primary first, at most one per family.
    public var podIPs: [IPAddress]
    /// `status.phase`; nil when not written.
    public var phase: PodPhase?

    /// Builds a Pod without validation; tests and the API source's conversions use it.
    public init(metadata: ObjectMeta, nodeName: String? = nil, hostNetwork: Bool = false,
                containerPorts: [ContainerPort] = [], podIPs: [IPAddress] = [], phase: PodPhase? = nil) {
        self.metadata = metadata
        self.nodeName = nodeName
        self.hostNetwork = hostNetwork
        self.containerPorts = containerPorts
        self.podIPs = podIPs
        self.phase = phase
    }

    public var name: String { metadata.name }
    /// `metadata.namespace`, or `default` when the manifest has none.
    public var namespace: String { metadata.namespace ?? "default" }
    public var labels: [String: String] { metadata.labels }
    /// `Pod/<namespace>/<name>`: the key in ``ClusterSnapshot/pods``.
    public var key: ObjectKey { ObjectKey(kind: .pod, namespace: metadata.namespace, name: metadata.name) }
    /// `status.podIP`: the primary address.
    public var podIP: IPAddress? { podIPs.first }
    /// `Succeeded` or `Failed`: the pod's containers have stopped for good and its address may
    /// already belong to another pod.
    public var isTerminal: Bool { phase == .succeeded || phase == .failed }

    /// The number of the container port called `name` with `protocol` (first in container order),
    /// as NetworkPolicy and Service `targetPort` names resolve.
    public func port(named name: String, protocol: PortProtocol = .tcp) -> UInt16? {
        containerPorts.first { $0.name == name && $0.protocol == `protocol` }?.port
    }
}

/// One entry of a container's `ports`.
public struct ContainerPort: Hashable, Sendable {
    /// The container's `name`.
    public var container: String
    /// `name`; empty when the port is unnamed.
    public var name: String
    /// `containerPort`.
    public var port: UInt16
    public var `protocol`: PortProtocol

    public init(container: String = "", name: String = "", port: UInt16, protocol: PortProtocol = .tcp) {
        self.container = container
        self.name = name
        self.port = port
        self.protocol = `protocol`
    }
}

/// `status.phase` of a Pod.
public enum PodPhase: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case pending = "Pending"
    case running = "Running"
    case succeeded = "Succeeded"
    case failed = "Failed"
    case unknown = "Unknown"
    public var description: String { rawValue }
}

// MARK: - Wire form and validation

/// A v1 Pod as a manifest writes it: every field optional. Fields Keel does not read are ignored.
struct PodManifest: Codable {
    struct Port: Codable {
        var name: String?
        var containerPort: Int?
        var `protocol`: String?
    }
    struct Container: Codable {
        var name: String?
        var ports: [Port]?
    }
    struct Spec: Codable {
        var nodeName: String?
        var hostNetwork: Bool?
        var containers: [Container]?
    }
    struct PodIP: Codable { var ip: String? }
    struct Status: Codable {
        var phase: String?
        var podIP: String?
        var podIPs: [PodIP]?
    }
    var apiVersion: String?
    var kind: String?
    var metadata: NodeManifest.Metadata?
    var spec: Spec?
    var status: Status?
}

extension Pod {
    /// Validates a decoded manifest. All bad fields are reported, not only the first.
    static func validated(_ m: PodManifest) -> Validation<Pod> {
        var check = FieldChecks()
        let name = check.metadata(m.metadata, kind: .pod)
        let spec = m.spec ?? PodManifest.Spec()
        if let node = spec.nodeName, !node.isEmpty, !FieldChecks.isDNSSubdomain(node) {
            check.fail("spec.nodeName", "\"\(node)\" is not a node name (a DNS-1123 subdomain)")
        }

        var ports: [ContainerPort] = []
        var containerNames: [String: Int] = [:]
        for (c, container) in (spec.containers ?? []).enumerated() {
            // Kubernetes requires unique DNS-1123 label names; keeld reads only the ports: said, not skipped.
            let containerName = container.name ?? ""
            if containerName.isEmpty {
                check.warn("spec.containers[\(c)].name", "missing (Kubernetes requires a container name)")
            } else if !FieldChecks.isDNSLabel(containerName) {
                check.warn("spec.containers[\(c)].name", "\"\(containerName)\" is not a DNS-1123 label (Kubernetes refuses it)")
            } else if let first = containerNames[containerName] {
                check.warn("spec.containers[\(c)].name", "duplicate name \"\(containerName)\" (also spec.containers[\(first)]; Kubernetes refuses it)")
            } else {
                containerNames[containerName] = c
            }
            var names: [String: Int] = [:]
            for (i, p) in (container.ports ?? []).enumerated() {
                let field = "spec.containers[\(c)].ports[\(i)]"
                let portName = p.name ?? ""
                if !portName.isEmpty {
                    if !FieldChecks.isIANAServiceName(portName) {
                        check.fail(field + ".name", "\"\(portName)\" is not a port name (at most 15 of a-z, 0-9, '-', with a letter)")
                    } else if let first = names[portName] {
                        check.fail(field + ".name", "duplicate name \"\(portName)\" (also ports[\(first)])")
                    } else {
                        names[portName] = i
                    }
                }
                let proto = check.portProtocol(p.protocol, field + ".protocol")
                let number = check.port(p.containerPort, field + ".containerPort", required: true)
                if let proto, let number {
                    ports.append(ContainerPort(container: container.name ?? "", name: portName, port: number, protocol: proto))
                }
            }
        }

        let status = m.status ?? PodManifest.Status()
        var addresses: [IPAddress] = []
        let single = status.podIP.flatMap { $0.isEmpty ? nil : $0 }
        let singleIP = single.flatMap { check.ip($0, "status.podIP") }
        if let list = status.podIPs, !list.isEmpty {
            for (i, entry) in list.enumerated() {
                guard let text = entry.ip, !text.isEmpty else {
                    check.fail("status.podIPs[\(i)].ip", "missing")
                    continue
                }
                if let a = check.ip(text, "status.podIPs[\(i)].ip") {
                    check.programmedFamily(a, "status.podIPs[\(i)].ip", "traffic to and from it is not policed")
                    addresses.append(a)
                }
            }
            if let singleIP, let first = list[0].ip.flatMap(IPAddress.init), first != singleIP {
                check.fail("status.podIPs[0].ip", "\"\(first)\" does not match status.podIP \"\(singleIP)\"")
            }
            if addresses.count == 2, addresses[0].family == addresses[1].family {
                check.fail("status.podIPs", "two \(addresses[0].family.kubernetesName) addresses (at most one per family)")
            } else if addresses.count > 2 {
                check.fail("status.podIPs", "\(addresses.count) addresses (at most one per family)")
            }
        } else if let singleIP {
            check.programmedFamily(singleIP, "status.podIP", "traffic to and from it is not policed")
            addresses = [singleIP]
        }
        let phase = status.phase.flatMap { check.oneOf($0, "status.phase", default: PodPhase.pending) }

        return check.validation(Pod(metadata: ObjectMeta(m.metadata, name: name),
                                    nodeName: spec.nodeName.flatMap { $0.isEmpty ? nil : $0 },
                                    hostNetwork: spec.hostNetwork ?? false, containerPorts: ports, podIPs: addresses, phase: phase))
    }

    var manifest: PodManifest {
        var containers: [PodManifest.Container] = []
        for p in containerPorts {
            let port = PodManifest.Port(name: p.name.isEmpty ? nil : p.name, containerPort: Int(p.port), protocol: p.protocol.rawValue)
            if let last = containers.indices.last, containers[last].name == p.container {
                containers[last].ports = (containers[last].ports ?? []) + [port]
            } else {
                containers.append(.init(name: p.container, ports: [port]))
            }
        }
        return PodManifest(
            apiVersion: ObjectKind.pod.apiVersion, kind: ObjectKind.pod.rawValue, metadata: metadata.manifest,
            spec: .init(nodeName: nodeName, hostNetwork: hostNetwork ? true : nil, containers: containers.isEmpty ? nil : containers),
            status: .init(phase: phase?.rawValue, podIP: podIP?.description,
                          podIPs: podIPs.isEmpty ? nil : podIPs.map { .init(ip: $0.description) }))
    }
}

extension Pod: Codable {
    public init(from decoder: any Decoder) throws {
        self = try Pod.validated(try PodManifest(from: decoder)).get(decoder)
    }
    public func encode(to encoder: any Encoder) throws { try manifest.encode(to: encoder) }
}
