import NetAddress

/// VXLAN tunnel endpoint addressing shared by the `vxlan` plugin (which creates the device) and the
/// route controller (which programs the peers).
public enum VTEP {
    /// The VXLAN device's MAC, derived from the node's underlay address and the VNI: every node can
    /// compute every peer's VTEP MAC from its Node object alone, so the overlay works before (or
    /// without) the published `keel.dev/vtep-mac` annotation. Locally administered, unicast.
    public static func mac(underlay: IPAddress, vni: UInt32) -> MACAddress {
        let a = underlay.bytes
        // 0x0e: locally administered + unicast; then the VNI's low byte and the address's last 4 bytes.
        return MACAddress(bytes: [0x0e, UInt8(vni & 0xff)] + Array(a.suffix(4)))!
    }

    /// Bytes of VXLAN encapsulation: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
    public static let overheadIPv4: UInt32 = 50
}
