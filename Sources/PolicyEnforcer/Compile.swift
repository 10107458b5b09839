import Cluster
import NetAddress

/// The pods of `nodeName` that policies isolate, compiled for the nftables layout from the same
/// resolution the evaluation (`evaluate`, keelctl) uses: one implementation of selectors, named
/// ports and ipBlocks. Pure. IPv4 only, like the rest of the datapath so far.
public func compiledPods(_ snapshot: ClusterSnapshot, nodeName: String) -> [CompiledPod] {
    let input = PolicyInput(snapshot: snapshot)
    // Only this node's pods are programmed: the cluster's other pods are peers, resolved through
    // the selectors, but their own isolation is never needed here (5K pods, 200 of them local).
    let local = input.pods.filter { $0.nodeName == nodeName }
    return compiledPods(local.compactMap { isolation(of: $0, in: input) }, nodeName: nodeName)
}

public func compiledPods(_ isolated: [IsolatedPod], nodeName: String) -> [CompiledPod] {
    isolated.compactMap { iso -> CompiledPod? in
        guard iso.pod.nodeName == nodeName, case .v4(let address)? = iso.ips.first(where: \.isIPv4) else { return nil }
        func compile(_ rules: [ResolvedRule]) -> [CompiledRule] {
            rules.compactMap { r in
                let peers = r.peers.flatMap { p -> [AddressRange] in
                    switch p {
                    case .any: [.all]
                    case .address(.v4(let a)): [AddressRange(a, a)]
                    case .address(.v6): []
                    case .block(let cidr, let except): AddressRange.ranges(of: cidr, except: except)
                    }
                }
                let ports = r.ports.map { p -> PortRange in
                    switch p {
                    case .any: .all
                    case .port(let proto, let lo, let hi): PortRange(proto: proto.number, lo, hi)
                    }
                }
                // A rule whose peers are all IPv6 has nothing to match here.
                guard !peers.isEmpty, !ports.isEmpty else { return nil }
                return CompiledRule(label: "\(r.ref)", policy: r.ref.policy, peers: peers, ports: ports)
            }
        }
        return CompiledPod(name: "\(iso.pod.namespace)/\(iso.pod.name)", address: address,
                           ingress: iso.ingressIsolated ? compile(iso.ingressRules) : nil,
                           egress: iso.egressIsolated ? compile(iso.egressRules) : nil,
                           ingressPolicies: Set(iso.ingressPolicies), egressPolicies: Set(iso.egressPolicies))
    }
}

extension PortProtocol {
    /// The IP protocol number.
    public var number: UInt8 {
        switch self {
        case .tcp: 6
        case .udp: 17
        case .sctp: 132
        }
    }
}
