import Cluster
import NetAddress

/// Which remote addresses a resolved rule admits.
public enum PeerMatch: Sendable, Hashable, CustomStringConvertible {
    /// Every address (`from`/`to` empty or absent).
    case any
    /// One address of a pod that a `podSelector`/`namespaceSelector` peer selected.
    case address(IPAddress)
    /// An `ipBlock`: `cidr` minus `except`.
    case block(CIDR, except: [CIDR])

    public func matches(_ ip: IPAddress) -> Bool {
        switch self {
        case .any: true
        case .address(let a): a == ip
        case .block(let cidr, let except): cidr.contains(ip) && !except.contains { $0.contains(ip) }
        }
    }
    public var description: String {
        switch self {
        case .any: "any"
        case .address(let a): "\(a)"
        case .block(let c, let except): except.isEmpty ? "\(c)" : "\(c) except \(except.map(\.description).joined(separator: ","))"
        }
    }
}

/// Which protocol and destination ports a resolved rule admits.
public enum PortMatch: Sendable, Hashable, CustomStringConvertible {
    /// Every protocol and port (`ports` empty or absent).
    case any
    /// `proto` with a destination port in `lo...hi`. A NetworkPolicy port without `port` (every
    /// port of one protocol) is `lo: 0, hi: 65535`; a named port is resolved to its number.
    case port(PortProtocol, lo: UInt16, hi: UInt16)

    public func matches(_ proto: PortProtocol, _ port: UInt16) -> Bool {
        switch self {
        case .any: true
        case .port(let p, let lo, let hi): p == proto && lo <= port && port <= hi
        }
    }
    public var description: String {
        switch self {
        case .any: "any"
        case .port(let p, 0, 65535): "\(p)/*"
        case .port(let p, let lo, let hi) where lo == hi: "\(p)/\(lo)"
        case .port(let p, let lo, let hi): "\(p)/\(lo)-\(hi)"
        }
    }
}

/// One policy rule in compiled form, for one isolated pod: it admits a connection when the remote
/// address matches one of ``peers`` AND the protocol/port matches one of ``ports``.
///
/// Both lists are never empty (a rule that can match nothing — a selector that selects no pod, a
/// named port the pod lacks — produces no `ResolvedRule`). Selectors are resolved to pod addresses,
/// named ports to numbers:
/// - ingress: a named port is the isolated pod's own container port of that name and protocol;
/// - egress: a named port is each destination pod's own number, so one egress rule with a named
///   port becomes one `ResolvedRule` per destination pod (peers: that pod's addresses), all with
///   the same ``ref``. Non-pod addresses (an `ipBlock`'s outside world) have no named ports and
///   match no named port.
public struct ResolvedRule: Sendable, Hashable, CustomStringConvertible {
    public var ref: RuleRef
    public var peers: [PeerMatch]
    public var ports: [PortMatch]

    public init(ref: RuleRef, peers: [PeerMatch], ports: [PortMatch]) {
        self.ref = ref
        self.peers = peers
        self.ports = ports
    }

    /// True when the remote address `ip` and `proto`/`port` are admitted.
    public func matches(_ ip: IPAddress, _ proto: PortProtocol, _ port: UInt16) -> Bool {
        peers.contains { $0.matches(ip) } && ports.contains { $0.matches(proto, port) }
    }
    public var description: String {
        "\(ref): peers [\(peers.map(\.description).joined(separator: ", "))] ports [\(ports.map(\.description).joined(separator: ", "))]"
    }
}

// MARK: - Resolution

extension PolicyInput {
    /// The pods a selector peer of a policy in `policyNamespace` selects (selectable pods only,
    /// see ``isSelectablePeer(_:)``), in namespace then name order.
    func pods(selectedBy pods: LabelSelector?, namespaces: LabelSelector?, policyNamespace: String) -> [Pod] {
        let names = namespaces.map { selector in allNamespaceNames.filter { selector.matches(namespaceLabels($0)) } }
            ?? [policyNamespace]
        let podSelector = pods ?? .everything
        return names.flatMap { peerPodsByNamespace[$0] ?? [] }.filter { podSelector.matches($0.labels) }
    }

    /// A rule's `from`/`to` as address matches: `.any` for no peers, pod addresses for selectors,
    /// blocks for ipBlocks. Addresses are sorted and unique, blocks follow in rule order.
    func peerMatches(_ peers: [NetworkPolicyPeer], policyNamespace: String) -> [PeerMatch] {
        guard !peers.isEmpty else { return [.any] }
        var addresses: Set<IPAddress> = []
        var blocks: [PeerMatch] = []
        for peer in peers {
            switch peer {
            case .selector(let pods, let namespaces):
                for pod in self.pods(selectedBy: pods, namespaces: namespaces, policyNamespace: policyNamespace) {
                    addresses.formUnion(pod.podIPs)
                }
            case .ipBlock(let b):
                let m = PeerMatch.block(b.cidr, except: b.except)
                if !blocks.contains(m) { blocks.append(m) }
            }
        }
        return addresses.sorted().map(PeerMatch.address) + blocks
    }

    /// The pods a rule's peers can reach as egress destinations, with the addresses of each that
    /// the peers admit: for ipBlock peers only the pod addresses inside the block.
    func destinationPods(_ peers: [NetworkPolicyPeer], policyNamespace: String) -> [(pod: Pod, addresses: [IPAddress])] {
        var found: [ObjectKey: (pod: Pod, addresses: Set<IPAddress>)] = [:]
        func add(_ pod: Pod, _ addresses: [IPAddress]) {
            guard !addresses.isEmpty else { return }
            found[pod.key, default: (pod, [])].addresses.formUnion(addresses)
        }
        let everyPod = { peerPodsByNamespace.keys.sorted().flatMap { peerPodsByNamespace[$0]! } }
        if peers.isEmpty {
            for pod in everyPod() { add(pod, pod.podIPs) }
        }
        for peer in peers {
            switch peer {
            case .selector(let pods, let namespaces):
                for pod in self.pods(selectedBy: pods, namespaces: namespaces, policyNamespace: policyNamespace) {
                    add(pod, pod.podIPs)
                }
            case .ipBlock(let b):
                for pod in everyPod() { add(pod, pod.podIPs.filter(b.contains)) }
            }
        }
        return found.values.sorted { ($0.pod.namespace, $0.pod.name) < ($1.pod.namespace, $1.pod.name) }
            .map { ($0.pod, $0.addresses.sorted()) }
    }
}

/// A rule's `ports` as port matches, named ports resolved on `pod` (nil: named ports resolve to
/// nothing). `.any` for no ports; a port that resolves to nothing is left out.
func portMatches(_ ports: [NetworkPolicyPort], on pod: Pod?) -> [PortMatch] {
    guard !ports.isEmpty else { return [.any] }
    var result: [PortMatch] = []
    for p in ports {
        let match: PortMatch? = switch p.port {
        case nil: .port(p.protocol, lo: 0, hi: 65535)
        case .number(let n)?: .port(p.protocol, lo: n, hi: max(n, p.endPort ?? n))
        case .name(let name)?: pod?.port(named: name, protocol: p.protocol).map { .port(p.protocol, lo: $0, hi: $0) }
        }
        if let match, !result.contains(match) { result.append(match) }
    }
    return result
}

extension NetworkPolicyPort {
    var isNamed: Bool { if case .name? = port { true } else { false } }
}
