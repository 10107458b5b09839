import Cluster
import NetAddress
import PolicyEnforcer
import Testing

@Suite struct SelfTrafficTests {
    @Test func aPodReachesItselfUnderADefaultDeny() {
        let pod = Pod(metadata: ObjectMeta(name: "a", namespace: "x", labels: ["app": "a"]), nodeName: "n1",
                      podIPs: [IPAddress("10.244.1.5")!])
        let deny = NetworkPolicy(metadata: ObjectMeta(name: "deny", namespace: "x"), podSelector: LabelSelector(),
                                 policyTypes: [.ingress, .egress])
        let input = PolicyInput(pods: [pod], policies: [deny])
        let me = Endpoint.pod(pod)!
        let v = evaluate(Flow(from: me, to: me, port: 80), in: input)
        #expect(v.allowed && v.ingress == .toItself && v.egress == .toItself)
        // Anyone else is denied: the exemption is for the pod itself only.
        #expect(!evaluate(Flow(from: .external(IPAddress("10.244.2.9")!), to: me, port: 80), in: input).allowed)
    }
}
