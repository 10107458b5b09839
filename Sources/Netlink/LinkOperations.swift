import CMnl
import Glibc
import NetAddress


extension RouteSocket {
    /// Creates a link and returns it as the kernel now reports it (index and MAC assigned).
    /// A veth's peer is created in the same request, directly in its target namespace.
    /// Throws EEXIST (`isAlreadyExists`) if the name is taken.
    /// Kernel: RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL. Same as `ip link add NAME type KIND …`.
    @discardableResult
    public func createLink(_ spec: LinkSpec) throws(NetlinkError) -> Link {
        try socket.request(LinkMessage.create(spec), .newLink, "\(spec.kind.kindName) \(spec.name)\(Self.peerText(spec.kind))")
        do {
            return try link(.name(spec.name))
        } catch {
            // Created but unreadable: remove it rather than leave a link nobody knows about.
            try? deleteLink(.name(spec.name))  // best effort: the read error is the one to report
            throw error
        }
    }

    /// Makes sure a link like `spec` exists: created if missing; an existing one of another kind, or
    /// a VXLAN device with other VNI/port/local/underlay/learning settings, is deleted and recreated;
    /// MTU, MAC and up state are then set as `spec` says. Safe to call from concurrent processes.
    /// Kernel: RTM_GETLINK, then RTM_NEWLINK / RTM_DELLINK / RTM_SETLINK as needed.
    @discardableResult
    public func ensureLink(_ spec: LinkSpec) throws(NetlinkError) -> Link {
        var existing: Link?
        do { existing = try link(.name(spec.name)) } catch where error.errno == .operationNotSupportedByDevice { existing = nil }
        if let current = existing, !Self.matches(current, spec) {
            do { try deleteLink(.index(current.index)) } catch where error.isAlreadyGone {}
            existing = nil
        }
        guard var current = existing else {
            do { return try createLink(spec) } catch where error.isAlreadyExists {
                return try ensureLink(spec)   // another process created it first: check what it made
            }
        }
        if let mtu = spec.mtu, current.mtu != mtu { try setMTU(.index(current.index), mtu) }
        if let mac = spec.mac, current.mac != mac { try setMAC(.index(current.index), mac) }
        if spec.up && !current.isUp { try setUp(.index(current.index)) }
        current = try link(.index(current.index))
        return current
    }

    static func matches(_ link: Link, _ spec: LinkSpec) -> Bool {
        guard link.kind == spec.kind.kindName else { return false }
        if case .vxlan(let want) = spec.kind { return link.vxlan == want }
        return true
    }

    /// Deletes a link (a veth takes its peer along). Throws ENODEV (`isAlreadyGone`) if missing.
    /// Kernel: RTM_DELLINK. Same as `ip link del`.
    public func deleteLink(_ ref: LinkRef) throws(NetlinkError) {
        try socket.request(LinkMessage.addressing(ref, type: u16(RTM_DELLINK), flags: [.ack]), .delLink, ref.description)
    }

    /// Looks a link up by name or index. Throws ENODEV if there is none.
    /// Kernel: RTM_GETLINK. Same as `ip link show dev NAME`.
    public func link(_ ref: LinkRef) throws(NetlinkError) -> Link {
        let m = LinkMessage.addressing(ref, type: u16(RTM_GETLINK), flags: [])
        var found: Link?
        try requestReplies(m, .getLink, ref.description) { reply in found = found ?? LinkMessage.parse(reply) }
        guard let found else { throw NetlinkError(.getLink, ref.description, errno: .operationNotSupportedByDevice) }
        return found
    }

    /// Every link of the namespace. Kernel: RTM_GETLINK dump. Same as `ip link show`.
    public func links() throws(NetlinkError) -> [Link] {
        let m = NetlinkMessageBuilder(type: u16(RTM_GETLINK), flags: .dump)
        m.putFamilyHeader(LinkMessage.header())
        return try socket.dump(m, "links").compactMap(LinkMessage.parse)
    }

    /// Sets IFF_UP or clears it. Kernel: RTM_SETLINK. Same as `ip link set dev X up|down`.
    public func setUp(_ ref: LinkRef, _ up: Bool = true) throws(NetlinkError) {
        let flag = UInt32(IFF_UP)
        try socket.request(LinkMessage.addressing(ref, type: u16(RTM_SETLINK), flags: [.ack], ifFlags: up ? flag : 0, change: flag),
                           .setLink, "\(ref) \(up ? "up" : "down")")
    }

    /// Kernel: RTM_SETLINK with IFLA_MTU. Same as `ip link set dev X mtu N`.
    public func setMTU(_ ref: LinkRef, _ mtu: UInt32) throws(NetlinkError) {
        let m = LinkMessage.addressing(ref, type: u16(RTM_SETLINK), flags: [.ack])
        m.put(u16(IFLA_MTU), u32: mtu)
        try socket.request(m, .setLink, "\(ref) mtu \(mtu)")
    }

    /// Kernel: RTM_SETLINK with IFLA_ADDRESS. Same as `ip link set dev X address MAC`.
    public func setMAC(_ ref: LinkRef, _ mac: MACAddress) throws(NetlinkError) {
        let m = LinkMessage.addressing(ref, type: u16(RTM_SETLINK), flags: [.ack])
        m.put(u16(IFLA_ADDRESS), bytes: mac.bytes)
        try socket.request(m, .setLink, "\(ref) address \(mac)")
    }

    /// Renames a link (it must be down). Kernel: RTM_SETLINK with IFLA_IFNAME. Same as `ip link set dev X name Y`.
    public func rename(_ index: Int32, to name: InterfaceName) throws(NetlinkError) {
        let m = LinkMessage.addressing(.index(index), type: u16(RTM_SETLINK), flags: [.ack])
        m.put(u16(IFLA_IFNAME), string: name.value)
        try socket.request(m, .setLink, "link #\(index) name \(name)")
    }

    /// Enslaves a link to a bridge, or frees it with nil. Kernel: RTM_SETLINK with IFLA_MASTER.
    /// Same as `ip link set dev X master BR` / `nomaster`.
    public func setMaster(_ ref: LinkRef, _ master: Int32?) throws(NetlinkError) {
        let m = LinkMessage.addressing(ref, type: u16(RTM_SETLINK), flags: [.ack])
        m.put(u16(IFLA_MASTER), u32: UInt32(bitPattern: master ?? 0))
        try socket.request(m, .setLink, "\(ref) master \(master.map { "#\($0)" } ?? "none")")
    }

    /// Sets bridge-port hairpin mode, so a pod can reach itself through a service address.
    /// Kernel: RTM_SETLINK, family AF_BRIDGE, IFLA_PROTINFO { IFLA_BRPORT_MODE }.
    /// Same as `bridge link set dev X hairpin on`.
    public func setHairpin(_ ref: LinkRef, _ on: Bool) throws(NetlinkError) {
        try setBridgePort(ref, hairpin: on)
    }

    /// Sets bridge-port flags on a link enslaved to a bridge; nil leaves a flag as it is.
    /// `isolated` ports cannot talk to each other, only to non-isolated ones (the bridge itself).
    /// Kernel: RTM_SETLINK, family AF_BRIDGE, IFLA_PROTINFO { IFLA_BRPORT_MODE, IFLA_BRPORT_ISOLATED }.
    /// Same as `bridge link set dev X hairpin on isolated on`.
    public func setBridgePort(_ ref: LinkRef, hairpin: Bool? = nil, isolated: Bool? = nil) throws(NetlinkError) {
        let m = LinkMessage.addressing(ref, type: u16(RTM_SETLINK), flags: [.ack], family: UInt8(AF_BRIDGE))
        m.nest(u16(IFLA_PROTINFO) | u16(NLA_F_NESTED)) {
            if let hairpin { m.put(u16(IFLA_BRPORT_MODE), u8: hairpin ? 1 : 0) }
            if let isolated { m.put(u16(IFLA_BRPORT_ISOLATED), u8: isolated ? 1 : 0) }
        }
        let what = [hairpin.map { "hairpin \($0 ? "on" : "off")" }, isolated.map { "isolated \($0 ? "on" : "off")" }]
        try socket.request(m, .setLink, "\(ref) \(what.compactMap { $0 }.joined(separator: " "))")
    }

    /// Sets or clears IFF_PROMISC. Kernel: RTM_SETLINK. Same as `ip link set dev X promisc on|off`.
    public func setPromiscuous(_ ref: LinkRef, _ on: Bool) throws(NetlinkError) {
        let flag = UInt32(IFF_PROMISC)
        try socket.request(LinkMessage.addressing(ref, type: u16(RTM_SETLINK), flags: [.ack], ifFlags: on ? flag : 0, change: flag),
                           .setLink, "\(ref) promisc \(on ? "on" : "off")")
    }

    /// Moves a link into another namespace. Kernel: RTM_SETLINK with IFLA_NET_NS_FD.
    /// Same as `ip link set dev X netns NS`.
    public func move(_ ref: LinkRef, to namespace: NetworkNamespace) throws(NetlinkError) {
        let m = LinkMessage.addressing(ref, type: u16(RTM_SETLINK), flags: [.ack])
        m.put(u16(IFLA_NET_NS_FD), u32: UInt32(bitPattern: namespace.fileDescriptor))
        try socket.request(m, .setLink, "\(ref) netns \(namespace.path)")
    }

    private static func peerText(_ kind: LinkKind) -> String {
        if case let .veth(peer, ns, _) = kind { return " (peer \(peer)\(ns.map { " in \($0.path)" } ?? ""))" }
        return ""
    }

    /// A request whose answer is a single object (RTM_GET* without DUMP): collect the replies, then the ACK.
    func requestReplies(_ message: NetlinkMessageBuilder, _ operation: NetlinkOperation, _ subject: String,
                        _ each: (NetlinkMessage) -> Void) throws(NetlinkError) {
        for reply in try socket.get(message, operation, subject) { each(reply) }
    }
}
