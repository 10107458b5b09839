import Cluster
import NetAddress
import PolicyEnforcer

func ip(_ s: String) -> IPAddress { IPAddress(s)! }
func cidr(_ s: String) -> CIDR { CIDR(s)! }

/// The cluster every evaluation row runs in.
///
/// | pod            | labels            | address     | named ports                          |
/// |----------------|-------------------|-------------|--------------------------------------|
/// | prod/web       | app=web           | 10.0.1.10   | http=TCP 8080, metrics=TCP 9090, sig=SCTP 3868 |
/// | prod/api       | app=api           | 10.0.1.11   | http=TCP 9000, dns=UDP 53            |
/// | prod/db        | app=db, role=db   | 10.0.1.12   | –                                    |
/// | prod/hostnet   | app=web           | 192.168.1.11 (hostNetwork) | –                     |
/// | prod/done      | app=web           | 10.0.1.99 (Succeeded)      | –                     |
/// | dev/web        | app=web           | 10.0.2.10   | http=TCP 8081                        |
/// | dev/tool       | app=tool          | 10.0.2.11   | –                                    |
/// | default/client | app=client        | 10.0.3.10   | –                                    |
///
/// Namespaces: prod {env=prod, team=a}, dev {env=dev}; `default` has no Namespace object.
/// The node is 192.168.1.11.
enum World {
    static let pods: [Pod] = [
        pod("prod", "web", ["app": "web"], "10.0.1.10",
            ports: [ContainerPort(name: "http", port: 8080), ContainerPort(name: "metrics", port: 9090),
                    ContainerPort(name: "sig", port: 3868, protocol: .sctp)]),
        pod("prod", "api", ["app": "api"], "10.0.1.11",
            ports: [ContainerPort(name: "http", port: 9000), ContainerPort(name: "dns", port: 53, protocol: .udp)]),
        pod("prod", "db", ["app": "db", "role": "db"], "10.0.1.12"),
        Pod(metadata: ObjectMeta(name: "hostnet", namespace: "prod", labels: ["app": "web"]), hostNetwork: true,
            podIPs: [ip("192.168.1.11")], phase: .running),
        Pod(metadata: ObjectMeta(name: "done", namespace: "prod", labels: ["app": "web"]),
            podIPs: [ip("10.0.1.99")], phase: .succeeded),
        pod("dev", "web", ["app": "web"], "10.0.2.10", ports: [ContainerPort(name: "http", port: 8081)]),
        pod("dev", "tool", ["app": "tool"], "10.0.2.11"),
        pod("default", "client", ["app": "client"], "10.0.3.10"),
    ]
    static let namespaces = [Namespace(name: "prod", labels: ["env": "prod", "team": "a"]),
                             Namespace(name: "dev", labels: ["env": "dev"])]
    static let node = Endpoint.node(ip("192.168.1.11"))

    static func input(_ policies: [NetworkPolicy]) -> PolicyInput {
        PolicyInput(pods: pods, namespaces: namespaces, policies: policies)
    }

    /// `"prod/web"` → that pod's IPv4 endpoint.
    static func at(_ path: String) -> Endpoint {
        let parts = path.split(separator: "/").map(String.init)
        let pod = pods.first { $0.namespace == parts[0] && $0.name == parts[1] }!
        return Endpoint.pod(pod)!
    }

    private static func pod(_ ns: String, _ name: String, _ labels: [String: String], _ address: String,
                            ports: [ContainerPort] = []) -> Pod {
        Pod(metadata: ObjectMeta(name: name, namespace: ns, labels: labels), nodeName: "node1",
            containerPorts: ports, podIPs: [ip(address)], phase: .running)
    }
}

func ext(_ s: String) -> Endpoint { .external(ip(s)) }

func policy(_ ns: String, _ name: String, select: LabelSelector = .everything, types: [PolicyType]? = nil,
            ingress: [NetworkPolicyRule] = [], egress: [NetworkPolicyRule] = []) -> NetworkPolicy {
    NetworkPolicy(metadata: ObjectMeta(name: name, namespace: ns), podSelector: select, policyTypes: types,
                  ingress: ingress, egress: egress)
}
func labels(_ l: [String: String]) -> LabelSelector { LabelSelector(matchLabels: l) }
func pods(_ l: [String: String]) -> NetworkPolicyPeer { .selector(pods: labels(l), namespaces: nil) }
func namespaces(_ l: [String: String]) -> NetworkPolicyPeer { .selector(pods: nil, namespaces: labels(l)) }
func block(_ c: String, except: [String] = []) -> NetworkPolicyPeer { .ipBlock(IPBlock(cidr: cidr(c), except: except.map(cidr))) }
func tcp(_ n: UInt16, to end: UInt16? = nil) -> NetworkPolicyPort { NetworkPolicyPort(protocol: .tcp, port: .number(n), endPort: end) }
func named(_ s: String, _ p: PortProtocol = .tcp) -> NetworkPolicyPort { NetworkPolicyPort(protocol: p, port: .name(s)) }
func rule(_ peers: [NetworkPolicyPeer] = [], _ ports: [NetworkPolicyPort] = []) -> NetworkPolicyRule {
    NetworkPolicyRule(peers: peers, ports: ports)
}
func ref(_ ns: String, _ name: String, _ d: Direction, _ i: Int) -> RuleRef {
    RuleRef(policy: ObjectKey(kind: .networkPolicy, namespace: ns, name: name), direction: d, index: i)
}
