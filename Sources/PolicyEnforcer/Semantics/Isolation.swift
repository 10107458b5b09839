import Cluster
import NetAddress

/// A pod that at least one NetworkPolicy isolates, with the rules that apply to it, compiled.
///
/// The rules of every policy that selects the pod are a union: a connection is allowed on a side
/// when any rule of that side matches. A pod isolated for a direction with no rules for it (a
/// default-deny policy, `ingress: []`) allows nothing on that side. The node's own connections to
/// the pod (kubelet probes) are allowed on the ingress side whatever the rules say; they are not
/// listed here, and the datapath must accept them before consulting ``ingressRules``.
public struct IsolatedPod: Sendable, Hashable {
    public var pod: Pod
    public var ingressIsolated: Bool
    public var egressIsolated: Bool
    /// Compiled `spec.ingress` rules of the policies that isolate the pod for ingress; peers are
    /// sources. Empty when not ingress-isolated.
    public var ingressRules: [ResolvedRule]
    /// Compiled `spec.egress` rules of the policies that isolate the pod for egress; peers are
    /// destinations. Empty when not egress-isolated.
    public var egressRules: [ResolvedRule]
    /// The policies that isolate the pod for ingress / egress, sorted.
    public var ingressPolicies: [PolicyRef]
    public var egressPolicies: [PolicyRef]

    /// The pod's addresses (`status.podIPs`): what the datapath keys this pod's rules by.
    public var ips: [IPAddress] { pod.podIPs }

    /// Every rule of `direction` that admits `remote` with `proto`/`port`, sorted and unique.
    public func rules(_ direction: Direction, admitting remote: IPAddress, _ proto: PortProtocol, _ port: UInt16) -> [RuleRef] {
        let rules = direction == .ingress ? ingressRules : egressRules
        return Set(rules.filter { $0.matches(remote, proto, port) }.map(\.ref)).sorted()
    }
}

/// Every pod that some NetworkPolicy isolates (for ingress, egress or both), in namespace then
/// name order. Pods not listed are not isolated in either direction; host-network and finished
/// pods are never listed (see ``PolicyInput/isSubjectToPolicy(_:)``).
///
/// A pod without an address is listed (it is isolated), though no datapath rule can key on it yet.
public func isolation(_ input: PolicyInput) -> [IsolatedPod] {
    input.pods.compactMap { isolation(of: $0, in: input) }
}

/// The isolation of one pod, or nil when no policy isolates it (or it is not subject to policy).
///
/// A policy selects a pod when it is in the pod's namespace and its `podSelector` matches the pod's
/// labels; it isolates the pod for each of its effective ``NetworkPolicy/policyTypes``.
public func isolation(of pod: Pod, in input: PolicyInput) -> IsolatedPod? {
    guard PolicyInput.isSubjectToPolicy(pod) else { return nil }
    let selecting = (input.policiesByNamespace[pod.namespace] ?? []).filter { $0.podSelector.matches(pod.labels) }
    let ingressPolicies = selecting.filter(\.affectsIngress)
    let egressPolicies = selecting.filter(\.affectsEgress)
    guard !ingressPolicies.isEmpty || !egressPolicies.isEmpty else { return nil }

    var ingressRules: [ResolvedRule] = []
    for policy in ingressPolicies {
        for (i, rule) in policy.ingress.enumerated() {
            let resolved = ResolvedRule(ref: RuleRef(policy: policy.key, direction: .ingress, index: i),
                                        peers: input.peerMatches(rule.peers, policyNamespace: policy.namespace),
                                        ports: portMatches(rule.ports, on: pod))
            if !resolved.peers.isEmpty && !resolved.ports.isEmpty { ingressRules.append(resolved) }
        }
    }

    var egressRules: [ResolvedRule] = []
    for policy in egressPolicies {
        for (i, rule) in policy.egress.enumerated() {
            let ref = RuleRef(policy: policy.key, direction: .egress, index: i)
            let numbered = rule.ports.filter { !$0.isNamed }
            let named = rule.ports.filter(\.isNamed)
            if rule.ports.isEmpty || !numbered.isEmpty {
                let resolved = ResolvedRule(ref: ref, peers: input.peerMatches(rule.peers, policyNamespace: policy.namespace),
                                            ports: portMatches(numbered, on: nil))
                if !resolved.peers.isEmpty { egressRules.append(resolved) }
            }
            guard !named.isEmpty else { continue }
            // Named ports: each destination pod's own number for the name.
            for destination in input.destinationPods(rule.peers, policyNamespace: policy.namespace) {
                let ports = portMatches(named, on: destination.pod)
                if !ports.isEmpty {
                    egressRules.append(ResolvedRule(ref: ref, peers: destination.addresses.map(PeerMatch.address), ports: ports))
                }
            }
        }
    }

    return IsolatedPod(pod: pod, ingressIsolated: !ingressPolicies.isEmpty, egressIsolated: !egressPolicies.isEmpty,
                       ingressRules: ingressRules, egressRules: egressRules,
                       ingressPolicies: ingressPolicies.map(\.key), egressPolicies: egressPolicies.map(\.key))
}
