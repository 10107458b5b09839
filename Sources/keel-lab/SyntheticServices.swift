import NetAddress
import ServiceProxy

/// The synthetic services the proxy benchmarks program (`bench proxy` on the host, `bench ipvs` in the
/// VM lane): N ClusterIP services with the same shape, so that every data plane gets the same input.
enum SyntheticServices {
    static let clusterCIDR = CIDR("10.244.0.0/16")!

    /// Service `i`: ClusterIP 10.96.0.0 + i + 1, TCP port 80, unnamed port (so every chain name is a
    /// plain nft identifier), `endpoints` backends from `backend(i, j)`.
    static func state(count: Int, endpoints: Int, backend: (Int, Int) -> Backend = backend) -> ProxyState {
        ProxyState(services: (0..<count).map { service($0, endpoints: endpoints, backend: backend) }, clusterCIDR: clusterCIDR)
    }

    static func service(_ i: Int, endpoints: Int, backend: (Int, Int) -> Backend = backend) -> ServicePortState {
        ServicePortState(name: ServicePortName(namespace: "bench", name: "svc-\(i)", port: "", proto: .tcp),
                         clusterIPs: [vip(i)], port: 80, internalBackends: (0..<endpoints).map { backend(i, $0) })
    }

    static func vip(_ i: Int) -> IPAddress { .v4(IPv4Address(0x0A60_0000 + UInt32(i) + 1)) }

    /// Distinct-looking pod addresses in 10.244.0.0/16 (100K endpoints wrap around the /16).
    static func backend(_ i: Int, _ j: Int) -> Backend {
        Backend(.v4(IPv4Address(0x0AF4_0000 + UInt32((i * 10 + j) % 65_000 + 2))), 8080)
    }

    /// Endpoint `j` of service `i` moves to another pod (a rolling update replacing one pod).
    static func movedBackend(_ i: Int, _ j: Int, generation: Int) -> Backend {
        Backend(.v4(IPv4Address(0x0AF4_0000 + UInt32(60_000 + (i + generation * 7) % 5_000))), 8080)
    }

    /// The service whose endpoint moves in change `generation` of a table of `size` services: spread
    /// over the table, never the same twice in a row.
    static func changedService(generation: Int, size: Int) -> Int { (generation * 997 + size / 2) % size }

    /// `count` states after `base`, each moving one endpoint of one more service (`changedService`):
    /// what a data plane sees during a rolling update, one EndpointSlice event at a time. Built before
    /// any clock runs: the controller hands the data plane a finished `ProxyState`.
    static func endpointMoves(from base: ProxyState, count: Int, endpoints: Int) -> [ProxyState] {
        let moved = min(3, endpoints - 1)
        var states: [ProxyState] = []
        var s = base
        for generation in 0..<count {
            let i = changedService(generation: generation, size: base.services.count)
            let index = s.services.firstIndex { $0.name.name == "svc-\(i)" }!
            s.services[index].internalBackends[moved] = movedBackend(i, moved, generation: generation)
            s.services[index].externalBackends = s.services[index].internalBackends
            states.append(s)
        }
        return states
    }
}
