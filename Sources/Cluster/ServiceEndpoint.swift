import NetAddress

/// One backend address of a Service, merged from all of its EndpointSlices
/// (``ClusterSnapshot/endpoints(of:)``), with the port numbers of the slice it came from.
public struct ServiceEndpoint: Hashable, Sendable {
    /// The endpoint's first address (Kubernetes: addresses are interchangeable; kube-proxy uses the first).
    public var address: IPAddress
    public var conditions: EndpointConditions
    public var nodeName: String?
    public var zone: String?
    public var hostname: String?
    public var zoneHints: [String]
    /// The ports of the slice that lists this address. When another slice lists the same address,
    /// the ports it names that this one does not are added too.
    public var ports: [EndpointPort]
    /// The name of the slice that supplied the conditions.
    public var sliceName: String

    public init(address: IPAddress, conditions: EndpointConditions = EndpointConditions(), nodeName: String? = nil,
                zone: String? = nil, hostname: String? = nil, zoneHints: [String] = [], ports: [EndpointPort],
                sliceName: String) {
        self.address = address
        self.conditions = conditions
        self.nodeName = nodeName
        self.zone = zone
        self.hostname = hostname
        self.zoneHints = zoneHints
        self.ports = ports
        self.sliceName = sliceName
    }

    public var isReady: Bool { conditions.isReady }
    public var isServing: Bool { conditions.isServing }
    public var isTerminating: Bool { conditions.isTerminating }

    /// The number on this endpoint for a Service port: the slice port with the same name and protocol.
    /// Nil when the slice does not carry that port, in which case nothing is forwarded to this
    /// endpoint for it (what kube-proxy does; a `targetPort` number is never used directly).
    public func port(for servicePort: ServicePort) -> UInt16? {
        port(named: servicePort.name, protocol: servicePort.protocol)
    }
    /// The number on this endpoint for the Service port called `name`.
    public func port(named name: String, protocol: PortProtocol = .tcp) -> UInt16? {
        ports.first { $0.name == name && $0.protocol == `protocol` }?.port
    }

    /// Preference when two slices list the same address: ready, then serving, then not terminating.
    var rank: (Bool, Bool, Bool) { (isReady, isServing, !isTerminating) }
}

extension ClusterSnapshot {
    /// The EndpointSlices of `service` (label `kubernetes.io/service-name` in its namespace), by name.
    public func endpointSlices(of service: ObjectKey) -> [EndpointSlice] {
        (sliceIndex[service] ?? []).sorted().compactMap { endpointSliceStorage[ObjectKey(kind: .endpointSlice,
                                                                                    namespace: service.namespace, name: $0)] }
    }

    /// Every IP endpoint of `service`, merged from all of its EndpointSlices, sorted by address.
    ///
    /// - `FQDN` slices are left out; IPv4 and IPv6 endpoints of a dual-stack Service are both listed.
    /// - An address listed by several slices (a slice controller moving endpoints between slices)
    ///   appears once: the entry that is ready (then serving, then not terminating) wins, ties going to
    ///   the slice whose name sorts first; port names only the other slices carry are added.
    /// - Each endpoint keeps the ports of its own slice, so ``ServiceEndpoint/port(for:)`` resolves a
    ///   named `targetPort` per slice.
    ///
    /// Endpoints are listed whatever their conditions; the proxy chooses by ``ServiceEndpoint/isReady``,
    /// ``ServiceEndpoint/isServing`` and the Service's `publishNotReadyAddresses`.
    public func endpoints(of service: ObjectKey) -> [ServiceEndpoint] {
        var merged: [IPAddress: ServiceEndpoint] = [:]
        for slice in endpointSlices(of: service) where slice.addressType != .fqdn {
            for e in slice.endpoints {
                guard let address = e.addresses.first?.ip else { continue }
                let candidate = ServiceEndpoint(address: address, conditions: e.conditions, nodeName: e.nodeName,
                                                zone: e.zone, hostname: e.hostname, zoneHints: e.zoneHints,
                                                ports: slice.ports, sliceName: slice.name)
                guard let existing = merged[address] else {
                    merged[address] = candidate
                    continue
                }
                var (winner, other) = existing.rank >= candidate.rank ? (existing, candidate) : (candidate, existing)
                for p in other.ports where !winner.ports.contains(where: { $0.name == p.name && $0.protocol == p.protocol }) {
                    winner.ports.append(p)
                }
                merged[address] = winner
            }
        }
        return merged.values.sorted { $0.address < $1.address }
    }
}

/// Tuples of Bools are not Comparable; false < true, left to right.
private func >= (l: (Bool, Bool, Bool), r: (Bool, Bool, Bool)) -> Bool {
    let a = [l.0, l.1, l.2].map { $0 ? 1 : 0 }, b = [r.0, r.1, r.2].map { $0 ? 1 : 0 }
    return !a.lexicographicallyPrecedes(b)
}
