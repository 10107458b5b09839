import Cluster
import Glibc
import Logging
import NetAddress
import Netlink
import PodNetwork
import Routes

/// Where keeld publishes what peers need to know about its node (the VTEP MAC).
enum NodePublisher: Sendable {
    /// A manifest overlay file in the folder keeld reads.
    case manifests(String)
    /// PATCHes of its own Node object in the Kubernetes API.
    case api(NodeStatusPublisher)
}

/// What keeld does for its own node before programming peers: find the underlay, ensure the VXLAN
/// device, write the node file for the plugins, and publish the VTEP MAC.
struct NodeSetup: Sendable {
    let nodeName: String
    let backend: OverlayBackend
    let vni: UInt32
    let port: UInt16
    let underlayInterface: InterfaceName?
    let clusterCIDR: CIDR
    let nodeFile: String
    let publisher: NodePublisher
    let socket: RouteSocket
    let logger: Logger

    func prepare(_ me: Node?) throws -> LocalNode {
        guard let me else { return LocalNode(name: nodeName, backend: backend, vni: vni) }
        guard let nodeIP = me.internalIPs.first(where: \.isIPv4) ?? me.internalIPs.first else {
            return LocalNode(name: nodeName, backend: backend, vni: vni)
        }
        let underlay = try underlayLink(for: nodeIP)
        var file = NodeFile(network: clusterCIDR, subnets: me.podCIDRs, mtu: underlay.mtu, backend: backend.rawValue,
                            underlayInterface: underlay.name, underlayAddress: nodeIP, ipMasq: true)
        var local = LocalNode(name: nodeName, backend: backend, vni: vni)
        if backend == .vxlan {
            let device = VXLANDevice(vni: vni, port: port, underlayInterface: InterfaceName(underlay.name)!, underlayAddress: nodeIP,
                                     podCIDR: me.podCIDRs.first { $0.family == .ipv4 })
            let (link, podMTU) = try device.ensure(socket)
            local.vxlanIndex = link.index
            file.mtu = podMTU
            file.vni = vni
            file.port = port
            switch publisher {
            case .manifests(let folder): try publish(vtepMAC: device.mac, of: me, folder: folder)
            case .api(let api): api.publish(vtepMAC: device.mac, current: me.metadata.annotations[vtepMACAnnotation])
            }
        }
        if case .api(let api) = publisher { api.markNetworkAvailable() }
        if (try? NodeFile.read(nodeFile)) != file {   // unreadable or different: (re)write it
            try file.write(nodeFile)
            logger.info("node file written", metadata: ["path": "\(nodeFile)", "subnets": "\(me.podCIDRs)", "mtu": "\(file.mtu ?? 0)"])
        }
        return local
    }

    func underlayLink(for nodeIP: IPAddress) throws -> Link {
        if let name = underlayInterface { return try socket.link(.name(name)) }
        guard let address = try socket.addresses().first(where: { $0.cidr.address == nodeIP }) else {
            throw NetlinkError(.other("find underlay"), "no interface holds the node address \(nodeIP) (use --underlay-interface)",
                               errno: .noSuchAddressOrDevice)
        }
        return try socket.link(.index(address.linkIndex))
    }

    /// Manifest mode: the annotation goes into `<manifests>/<node>.keel-overlay.yaml`, an overlay the
    /// manifest source merges into the Node (peers of this folder see it); rewritten only on change.
    func publish(vtepMAC: MACAddress, of me: Node, folder manifests: String) throws {
        guard me.metadata.annotations[vtepMACAnnotation] != vtepMAC.description else { return }
        let text = """
        # written by keeld on \(nodeName): merged into Node \(nodeName) by Keel's manifest source
        apiVersion: v1
        kind: Node
        metadata:
          name: \(nodeName)
          annotations:
            \(vtepMACAnnotation): "\(vtepMAC)"

        """
        let path = "\(manifests)/\(nodeName).keel-overlay.yaml"
        let tmp = "\(manifests)/.\(nodeName).keel-overlay.tmp"
        guard let f = fopen(tmp, "w") else { throw NetlinkError(.other("publish VTEP MAC"), tmp, errno: .ioError) }
        fputs(text, f)
        fclose(f)
        guard rename(tmp, path) == 0 else { throw NetlinkError(.other("publish VTEP MAC"), path, errno: .ioError) }
        logger.info("VTEP MAC published", metadata: ["path": "\(path)", "mac": "\(vtepMAC)"])
    }
}
