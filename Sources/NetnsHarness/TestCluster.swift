import Glibc
import NetAddress
import Netlink

/// A simulated cluster in network namespaces: an underlay namespace with a bridge, and N node
/// namespaces joined to it by veth, each with its node IP and a /24 pod CIDR out of the cluster CIDR
/// (as flannel hands them out). Pods are made by running the CNI plugins inside a node namespace.
/// Used by the integration tests, the demo and the overlay benchmark alike.
public final class TestCluster: @unchecked Sendable {
    public let lab: NetnsLab
    public let underlay: LabNamespace
    public let nodes: [ClusterNode]
    public let clusterCIDR: CIDR
    public let underlaySubnet: CIDR
    /// The underlay bridge's address: every node's default gateway.
    public let gateway: IPAddress
    private var clients = 0

    /// A node of the test cluster.
    public struct ClusterNode: Sendable {
        public let name: String
        public let namespace: LabNamespace
        public let ip: IPAddress
        public let podCIDR: CIDR
        /// The node's underlay interface (its veth to the underlay bridge).
        public let underlayInterface: InterfaceName

        /// The v1 Node manifest keeld reads for this node.
        public var manifest: String {
            """
            apiVersion: v1
            kind: Node
            metadata:
              name: \(name)
            spec:
              podCIDR: \(podCIDR)
              podCIDRs:
              - \(podCIDR)
            status:
              addresses:
              - type: InternalIP
                address: \(ip)
              - type: Hostname
                address: \(name)

            """
        }
    }

    /// Builds the underlay and `nodeCount` nodes named node1…nodeN with IPs .11, .12, … of
    /// `underlaySubnet` and pod CIDRs 10.244.1.0/24, 10.244.2.0/24, … of `clusterCIDR`.
    public init(lab: NetnsLab, nodeCount: Int, clusterCIDR: CIDR = CIDR("10.244.0.0/16")!,
                underlaySubnet: CIDR = CIDR("192.168.50.0/24")!, mtu: UInt32 = 1500, label: String = "") throws {
        self.lab = lab
        self.clusterCIDR = clusterCIDR
        self.underlaySubnet = underlaySubnet
        underlay = try lab.namespace("\(label)underlay")
        let bridge = try underlay.route.createLink(LinkSpec(name: "ul0", kind: .bridge, mtu: mtu, up: true))
        // The underlay's first address is the nodes' default gateway (the "outside"; it forwards nothing),
        // so that traffic to service addresses is routed and reaches the filter hooks.
        let gateway = underlaySubnet.network.advanced(by: 1)!
        try underlay.route.addAddress(.withBroadcast(linkIndex: bridge.index, cidr: CIDR(gateway, prefixLength: underlaySubnet.prefixLength)!))
        self.gateway = gateway
        var nodes: [ClusterNode] = []
        for i in 1...nodeCount {
            let ns = try lab.namespace("\(label)node\(i)")
            guard let ip = underlaySubnet.network.advanced(by: Int64(10 + i)), let podCIDR = clusterCIDR.subnet(Int64(i), prefixLength: 24) else {
                throw ProcessError(command: ["TestCluster"], reason: "node \(i) does not fit \(underlaySubnet) / \(clusterCIDR)")
            }
            let (port, _) = try connect(underlay, InterfaceName("n\(i)")!, nil, to: ns, "eth0",
                                        CIDR(ip, prefixLength: underlaySubnet.prefixLength), mtu: mtu)
            try underlay.route.setMaster(.index(port.index), bridge.index)
            try ns.route.addRoute(Route(destination: CIDR("0.0.0.0/0")!, gateway: gateway))
            nodes.append(ClusterNode(name: "node\(i)", namespace: ns, ip: ip, podCIDR: podCIDR, underlayInterface: "eth0"))
        }
        self.nodes = nodes
    }

    /// A namespace outside the cluster on the underlay (address .200, .201, … of the underlay subnet),
    /// playing an external client: its traffic comes from outside the cluster CIDR.
    public func externalClient(_ label: String = "client") throws -> (LabNamespace, IPAddress) {
        clients += 1
        let ns = try lab.namespace("\(label)\(clients)")
        let ip = underlaySubnet.network.advanced(by: Int64(199 + clients))!
        let bridge = try underlay.route.link("ul0")
        let (port, _) = try connect(underlay, InterfaceName("x\(clients)")!, nil, to: ns, "eth0", CIDR(ip, prefixLength: underlaySubnet.prefixLength))
        try underlay.route.setMaster(.index(port.index), bridge.index)
        return (ns, ip)
    }

    /// Every node's manifest, one YAML stream.
    public var manifests: String { nodes.map(\.manifest).joined(separator: "---\n") }

    /// Writes one file per node (`<name>.yaml`) into `directory` (created if missing).
    public func writeManifests(to directory: String) throws {
        mkdir(directory, 0o755)
        for node in nodes { try writeFile("\(directory)/\(node.name).yaml", node.manifest) }
    }
}

/// Writes `text` to `path` atomically (temp + rename), so a watcher never reads half a file.
public func writeFile(_ path: String, _ text: String) throws {
    let tmp = "\(path).tmp-\(getpid())"
    guard let f = fopen(tmp, "w") else { throw ProcessError(command: ["write \(path)"], reason: String(cString: strerror(errno))) }
    fputs(text, f)
    fclose(f)
    guard rename(tmp, path) == 0 else { throw ProcessError(command: ["rename \(path)"], reason: String(cString: strerror(errno))) }
}
