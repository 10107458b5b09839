import NetAddress
import Netlink

/// The node's VXLAN device, as flannel lays it out: `keel.<vni>`, learning off, MTU 50 below the
/// underlay, a MAC derived from the underlay address (`VTEP.mac`), and the node's pod-network
/// address (`10.244.1.0/32`) on it, which peers use as the onlink gateway of this node's pod CIDR.
/// Both the `vxlan` plugin and keeld ensure it, with the same parameters, so either may come first.
public struct VXLANDevice: Sendable {
    public var vni: UInt32
    public var port: UInt16
    public var underlayInterface: InterfaceName
    public var underlayAddress: IPAddress
    public var podCIDR: CIDR?

    public init(vni: UInt32 = 1, port: UInt16 = 8472, underlayInterface: InterfaceName, underlayAddress: IPAddress, podCIDR: CIDR?) {
        self.vni = vni
        self.port = port
        self.underlayInterface = underlayInterface
        self.underlayAddress = underlayAddress
        self.podCIDR = podCIDR
    }

    public var name: InterfaceName { InterfaceName("keel.\(vni)")! }
    public var mac: MACAddress { VTEP.mac(underlay: underlayAddress, vni: vni) }

    /// Creates or repairs the device; returns it and the pod MTU (underlay MTU − 50).
    @discardableResult
    public func ensure(_ socket: RouteSocket) throws -> (device: Link, podMTU: UInt32) {
        let underlay = try kernel { () throws(NetlinkError) in try socket.link(.name(underlayInterface)) }
        let mtu = underlay.mtu - VTEP.overheadIPv4
        let spec = LinkSpec(name: name, kind: .vxlan(VXLANAttributes(vni: vni, port: port, local: underlayAddress,
                                                                     underlayIndex: underlay.index, learning: false)),
                            mtu: mtu, mac: mac, up: true)
        let device = try kernel { () throws(NetlinkError) in try socket.ensureLink(spec) }
        if let podCIDR, podCIDR.family == .ipv4 {
            let address = InterfaceAddress(linkIndex: device.index, cidr: CIDR(podCIDR.network, prefixLength: 32)!)
            do { try socket.addAddress(address) } catch where error.isAlreadyExists {} catch { throw PodNetworkError.kernel(error) }
        }
        return (device, mtu)
    }
}
