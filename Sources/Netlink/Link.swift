import NetAddress

/// A network interface as the kernel reports it (RTM_NEWLINK answer to RTM_GETLINK).
public struct Link: Sendable, Equatable {
    public var index: Int32
    public var name: String
    /// IFLA_INFO_KIND: "veth", "bridge", "vxlan", "dummy"; nil for physical and loopback devices.
    public var kind: String?
    public var mtu: UInt32
    public var mac: MACAddress?
    /// IFF_UP: administratively up.
    public var isUp: Bool
    /// IFF_LOWER_UP: carrier present.
    public var hasCarrier: Bool
    /// IFLA_MASTER: the bridge this link is a port of.
    public var masterIndex: Int32?
    /// IFLA_LINK: the peer's index for veth (in the peer's namespace), the underlay for vxlan.
    public var parentIndex: Int32?
    /// Bridge-port hairpin mode (IFLA_BRPORT_MODE), when this link is a bridge port.
    public var hairpin: Bool?
    /// Bridge-port isolation (IFLA_BRPORT_ISOLATED), when this link is a bridge port.
    public var isolated: Bool? = nil
    /// IFF_PROMISC.
    public var isPromiscuous: Bool = false
    public var vxlan: VXLANAttributes?
}

/// The VXLAN attributes of a link, as created or as read back.
public struct VXLANAttributes: Sendable, Equatable {
    public var vni: UInt32
    /// Destination UDP port; Linux's default is 8472 (flannel's), IANA's is 4789.
    public var port: UInt16
    public var local: IPAddress?
    /// Underlay device index (IFLA_VXLAN_LINK).
    public var underlayIndex: Int32?
    /// Learning off: FDB entries come from the control plane, never from flooded traffic.
    public var learning: Bool

    public init(vni: UInt32, port: UInt16 = 8472, local: IPAddress? = nil, underlayIndex: Int32? = nil, learning: Bool = false) {
        self.vni = vni
        self.port = port
        self.local = local
        self.underlayIndex = underlayIndex
        self.learning = learning
    }
}

/// What to create: each shape named, rather than a bag of optional flags.
public enum LinkKind: Sendable, Equatable {
    /// A veth pair. The peer is created directly in `peerNamespace` (by fd) when given, so the pair
    /// never exists half-placed.
    case veth(peerName: String, peerNamespace: NetworkNamespace? = nil, peerMAC: MACAddress? = nil)
    case bridge
    case vxlan(VXLANAttributes)
    case dummy

    public var kindName: String {
        switch self {
        case .veth: "veth"
        case .bridge: "bridge"
        case .vxlan: "vxlan"
        case .dummy: "dummy"
        }
    }

    public static func == (l: LinkKind, r: LinkKind) -> Bool {
        switch (l, r) {
        case let (.veth(a, na, ma), .veth(b, nb, mb)): a == b && na?.path == nb?.path && ma == mb
        case (.bridge, .bridge), (.dummy, .dummy): true
        case let (.vxlan(a), .vxlan(b)): a == b
        default: false
        }
    }
}

/// A link to create: name, shape and the settings that go into the same RTM_NEWLINK.
public struct LinkSpec: Sendable {
    public var name: InterfaceName
    public var kind: LinkKind
    public var mtu: UInt32?
    public var mac: MACAddress?
    public var masterIndex: Int32?
    public var up: Bool

    public init(name: InterfaceName, kind: LinkKind, mtu: UInt32? = nil, mac: MACAddress? = nil,
                masterIndex: Int32? = nil, up: Bool = false) {
        self.name = name
        self.kind = kind
        self.mtu = mtu
        self.mac = mac
        self.masterIndex = masterIndex
        self.up = up
    }
}

/// An interface name the kernel accepts: 1…15 bytes, no '/', no whitespace, not "." or "..".
/// Checked once here so that nothing downstream sends a name the kernel would refuse with EINVAL.
public struct InterfaceName: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let value: String

    public init?(_ value: String) {
        let bytes = Array(value.utf8)
        guard !bytes.isEmpty, bytes.count <= 15, value != ".", value != "..",
              !bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 32 || $0 == 127 })
        else { return nil }
        self.value = value
    }
    public init(stringLiteral value: String) {
        guard let name = InterfaceName(value) else { preconditionFailure("invalid interface name literal \(value)") }
        self = name
    }
    public var description: String { value }
}
