import NetAddress

/// An ARP / NDP entry: `10.244.2.0 lladdr 66:77:88:99:aa:bb dev flannel.1 PERMANENT`.
public struct Neighbour: Sendable, Hashable, CustomStringConvertible {
    public var linkIndex: Int32
    public var address: IPAddress
    public var mac: MACAddress?
    public var state: NeighbourState

    public init(linkIndex: Int32, address: IPAddress, mac: MACAddress?, state: NeighbourState = .permanent) {
        self.linkIndex = linkIndex
        self.address = address
        self.mac = mac
        self.state = state
    }
    public var description: String { "\(address) lladdr \(mac?.description ?? "-") dev #\(linkIndex) \(state)" }
}

/// A bridge/VXLAN forwarding entry: `66:77:88:99:aa:bb dev flannel.1 dst 192.168.50.12 self permanent`.
/// On a VXLAN device, `destination` is the remote VTEP the frame is sent to.
public struct FDBEntry: Sendable, Hashable, CustomStringConvertible {
    public var linkIndex: Int32
    public var mac: MACAddress
    public var destination: IPAddress?
    public var state: NeighbourState
    /// NTF_SELF: the entry lives in the device's own table (VXLAN), not its master bridge's.
    public var onSelf: Bool
    /// NTF_MASTER: the entry is in the master bridge's table.
    public var onMaster: Bool
    /// VLAN id on a VLAN-filtering bridge.
    public var vlan: UInt16?

    public init(linkIndex: Int32, mac: MACAddress, destination: IPAddress? = nil, state: NeighbourState = .permanent,
                onSelf: Bool = true, onMaster: Bool = false, vlan: UInt16? = nil) {
        self.linkIndex = linkIndex
        self.mac = mac
        self.destination = destination
        self.state = state
        self.onSelf = onSelf
        self.onMaster = onMaster
        self.vlan = vlan
    }
    public var description: String { "\(mac) dev #\(linkIndex)\(destination.map { " dst \($0)" } ?? "") \(state)" }
}

/// NUD_* states.
public struct NeighbourState: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let incomplete = NeighbourState(rawValue: 0x01)
    public static let reachable = NeighbourState(rawValue: 0x02)
    public static let stale = NeighbourState(rawValue: 0x04)
    public static let delay = NeighbourState(rawValue: 0x08)
    public static let probe = NeighbourState(rawValue: 0x10)
    public static let failed = NeighbourState(rawValue: 0x20)
    public static let noARP = NeighbourState(rawValue: 0x40)
    public static let permanent = NeighbourState(rawValue: 0x80)
    public var description: String {
        [(0x80, "PERMANENT"), (0x40, "NOARP"), (0x02, "REACHABLE"), (0x04, "STALE"), (0x08, "DELAY"), (0x10, "PROBE"),
         (0x20, "FAILED"), (0x01, "INCOMPLETE")].first { rawValue & UInt16($0.0) != 0 }?.1 ?? "NONE"
    }
}
