import SystemPackage

/// A generic netlink family as the kernel's controller (nlctrl) describes it.
public struct GenericNetlinkFamily: Sendable, Hashable, CustomStringConvertible {
    /// A multicast group of the family (CTRL_ATTR_MCAST_GROUPS).
    public struct MulticastGroup: Sendable, Hashable {
        public var name: String
        public var id: UInt32
        public init(name: String, id: UInt32) {
            self.name = name
            self.id = id
        }
    }

    public var name: String
    /// The nlmsg_type of the family's messages, assigned when the family registered.
    public var id: UInt16
    public var version: UInt32
    /// Size of the family's own header after genlmsghdr (0 for most).
    public var headerSize: UInt32
    /// Highest attribute type of the family's commands.
    public var maxAttribute: UInt32
    public var multicastGroups: [MulticastGroup]

    public init(name: String, id: UInt16, version: UInt32, headerSize: UInt32 = 0, maxAttribute: UInt32, multicastGroups: [MulticastGroup] = []) {
        self.name = name
        self.id = id
        self.version = version
        self.headerSize = headerSize
        self.maxAttribute = maxAttribute
        self.multicastGroups = multicastGroups
    }

    public var description: String { "\(name) (id \(id), version \(version))" }
}

/// Resolving a generic netlink family failed: either the kernel has no such family, or the request
/// itself failed. The first is a missing feature to report plainly, not a kernel error.
public enum GenericNetlinkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// CTRL_CMD_GETFAMILY answered ENOENT: nothing in this kernel registered `family`. `module` is
    /// the kernel module that would register it, when the caller knows it.
    case familyNotFound(family: String, module: String?)
    /// Any other failure (socket, namespace, a different errno).
    case netlink(NetlinkError)

    public var description: String {
        switch self {
        case .familyNotFound(let family, let module?):
            "\(family) is not available in this kernel: kernel module \(module) is not loaded "
                + "(modprobe \(module); generic netlink family \"\(family)\" not found)"
        case .familyNotFound(let family, nil):
            "generic netlink family \"\(family)\" does not exist in this kernel (CTRL_CMD_GETFAMILY: ENOENT)"
        case .netlink(let e): e.description
        }
    }

    public var isFamilyNotFound: Bool {
        if case .familyNotFound = self { true } else { false }
    }
}

/// A NETLINK_GENERIC socket, the transport of families such as IPVS, WireGuard or ethtool. Like the
/// other sockets it stays in the network namespace it was opened in.
public final class GenericNetlinkSocket: Sendable {
    public let socket: NetlinkSocket

    public init() throws(NetlinkError) { socket = try NetlinkSocket(.generic) }

    /// Opens a socket bound to `namespace`.
    public static func inside(_ namespace: NetworkNamespace) throws(NetlinkError) -> GenericNetlinkSocket {
        try namespace.runTyped { () throws(NetlinkError) -> GenericNetlinkSocket in try GenericNetlinkSocket() }
    }

    /// Looks up a family by name. Throws `.familyNotFound` when the kernel has none of that name;
    /// pass the kernel module that provides it as `module` so that the error says what to load.
    /// (The kernel itself tries `request_module("net-pf-16-proto-16-family-<name>")` first, which
    /// only works where modprobe can reach the module.)
    /// Kernel: CTRL_CMD_GETFAMILY with CTRL_ATTR_FAMILY_NAME to nlctrl. Same as `genl ctrl get name NAME`.
    public func family(named name: String, module: String? = nil) throws(GenericNetlinkError) -> GenericNetlinkFamily {
        let replies: [NetlinkMessage]
        do {
            replies = try socket.get(GenericNetlinkMessage.getFamilyRequest(name: name), .getFamily, "generic netlink family \(name)")
        } catch where error.errno == .noSuchFileOrDirectory {
            throw .familyNotFound(family: name, module: module)
        } catch {
            throw .netlink(error)
        }
        guard let family = replies.lazy.compactMap(GenericNetlinkMessage.parseFamily).first(where: { $0.name == name }) else {
            throw .netlink(NetlinkError(.getFamily, "generic netlink family \(name): no CTRL_CMD_NEWFAMILY in the answer", errno: .ioError))
        }
        return family
    }
}
