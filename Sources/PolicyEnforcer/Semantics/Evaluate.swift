import Cluster

/// Whether NetworkPolicy allows `flow` (its initiating packet; replies of an allowed connection
/// always pass), and why.
///
/// A connection is allowed when both sides allow it:
/// - egress: the source, if it is a pod subject to policy that some policy isolates for egress,
///   needs an egress rule admitting the destination address, protocol and port;
/// - ingress: the destination, if it is a pod subject to policy that some policy isolates for
///   ingress, needs an ingress rule admitting the source address, protocol and port — unless the
///   source is its node (``Endpoint/node(_:)``), which is always allowed.
///
/// Matching is by address, as in the datapath: a selector peer admits the addresses of the pods it
/// selects, an `ipBlock` admits any address in it, pod addresses included (the Kubernetes docs
/// intend ipBlock for cluster-external addresses, but common implementations — Calico, Cilium,
/// kube-router — match pod addresses too, and so does Keel). Endpoints that are not pods Keel
/// knows, host-network pods and finished pods are not isolated on their side.
///
/// The same compiled rules as the nftables compiler reads (``isolation(of:in:)``) decide, so
/// `keelctl explain` and the datapath cannot disagree.
public func evaluate(_ flow: Flow, in input: PolicyInput) -> Verdict {
    if let key = flow.source.podKey, key == flow.destination.podKey {
        return Verdict(egress: .toItself, ingress: .toItself)
    }
    func isolated(_ endpoint: Endpoint) -> IsolatedPod? {
        guard let key = endpoint.podKey, let pod = input.pod(key) else { return nil }
        return isolation(of: pod, in: input)
    }

    let egress: SideVerdict
    if let source = isolated(flow.source), source.egressIsolated {
        let rules = source.rules(.egress, admitting: flow.destination.ip, flow.proto, flow.port)
        egress = rules.isEmpty ? .denied(isolatedBy: source.egressPolicies) : .allowed(by: rules)
    } else {
        egress = .notIsolated
    }

    let ingress: SideVerdict
    if let destination = isolated(flow.destination), destination.ingressIsolated {
        if case .node = flow.source {
            ingress = .allowedFromNode
        } else {
            let rules = destination.rules(.ingress, admitting: flow.source.ip, flow.proto, flow.port)
            ingress = rules.isEmpty ? .denied(isolatedBy: destination.ingressPolicies) : .allowed(by: rules)
        }
    } else {
        ingress = .notIsolated
    }
    return Verdict(egress: egress, ingress: ingress)
}
