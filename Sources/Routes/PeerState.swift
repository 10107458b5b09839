import NetAddress
import Netlink

/// How pods on different nodes reach each other.
public enum OverlayBackend: String, Sendable, Hashable, CaseIterable {
    /// Plain routes: `podCIDR via peerNodeIP`. The nodes must share an L2 segment.
    case hostGW = "host-gw"
    /// flannel's VXLAN design: one device per node; per peer an FDB entry (peer VTEP MAC → peer node
    /// IP), a permanent neighbour (peer's pod-network address → VTEP MAC) and an onlink route.
    case vxlan
}

/// What the route controller needs to know of a node. Built from a Cluster `Node` by keeld.
public struct PeerNode: Sendable, Hashable {
    public var name: String
    public var podCIDRs: [CIDR]
    public var nodeIPs: [IPAddress]
    /// The VTEP MAC the node published (`keel.dev/vtep-mac`); nil: derived with `VTEP.mac`.
    public var vtepMAC: MACAddress?

    public init(name: String, podCIDRs: [CIDR], nodeIPs: [IPAddress], vtepMAC: MACAddress? = nil) {
        self.name = name
        self.podCIDRs = podCIDRs
        self.nodeIPs = nodeIPs
        self.vtepMAC = vtepMAC
    }

    func nodeIP(_ family: AddressFamily) -> IPAddress? { nodeIPs.first { $0.family == family } }
}

/// The local facts the desired state depends on, gathered before the pure computation.
public struct LocalNode: Sendable, Hashable {
    public var name: String
    public var backend: OverlayBackend
    /// Index of the VXLAN device (vxlan backend).
    public var vxlanIndex: Int32?
    public var vni: UInt32

    public init(name: String, backend: OverlayBackend, vxlanIndex: Int32? = nil, vni: UInt32 = 1) {
        self.name = name
        self.backend = backend
        self.vxlanIndex = vxlanIndex
        self.vni = vni
    }
}

/// Everything the route controller keeps in the kernel for its peers.
public struct PeerState: Sendable, Equatable {
    public var routes: Set<Route> = []
    public var fdb: Set<FDBEntry> = []
    public var neighbours: Set<Neighbour> = []
    /// Peers that could not be programmed, with the reason (logged by the sync loop).
    public var skipped: [String: String] = [:]

    public init(routes: Set<Route> = [], fdb: Set<FDBEntry> = [], neighbours: Set<Neighbour> = [], skipped: [String: String] = [:]) {
        self.routes = routes
        self.fdb = fdb
        self.neighbours = neighbours
        self.skipped = skipped
    }
}

/// The desired peer entries for `local`, from every node in the cluster. Pure: no kernel, no clock.
///
/// host-gw: `podCIDR via nodeIP` (same family) with protocol `keel`.
/// vxlan (IPv4): `podCIDR via <podCIDR network> dev vxlan onlink`, neighbour `<podCIDR network> lladdr
/// <VTEP MAC> nud permanent`, FDB `<VTEP MAC> dst <nodeIP> self permanent` — flannel's layout, so the
/// kernel needs no ARP or flooding across the overlay.
public func desiredPeerState(nodes: [PeerNode], local: LocalNode) -> PeerState {
    var state = PeerState()
    for node in nodes.sorted(by: { $0.name < $1.name }) where node.name != local.name {
        guard !node.podCIDRs.isEmpty else { state.skipped[node.name] = "no pod CIDR"; continue }
        switch local.backend {
        case .hostGW:
            for cidr in node.podCIDRs {
                guard let gw = node.nodeIP(cidr.family) else {
                    state.skipped[node.name] = "no \(cidr.family == .ipv4 ? "IPv4" : "IPv6") node address for \(cidr)"
                    continue
                }
                state.routes.insert(Route(destination: cidr, gateway: gw, proto: .keel))
            }
        case .vxlan:
            guard let device = local.vxlanIndex else { state.skipped[node.name] = "no VXLAN device"; continue }
            guard let underlay = node.nodeIP(.ipv4) else { state.skipped[node.name] = "no IPv4 node address"; continue }
            let mac = node.vtepMAC ?? VTEP.mac(underlay: underlay, vni: local.vni)
            for cidr in node.podCIDRs where cidr.family == .ipv4 {
                let peerGateway = cidr.network
                state.routes.insert(Route(destination: cidr, gateway: peerGateway, device: device, onlink: true, proto: .keel))
                state.neighbours.insert(Neighbour(linkIndex: device, address: peerGateway, mac: mac, state: .permanent))
            }
            state.fdb.insert(FDBEntry(linkIndex: device, mac: mac, destination: underlay, state: .permanent))
            if node.podCIDRs.contains(where: { $0.family == .ipv6 }) {
                state.skipped[node.name] = "IPv6 pod CIDRs are not carried over VXLAN (IPv4 underlay only)"
            }
        }
    }
    return state
}
