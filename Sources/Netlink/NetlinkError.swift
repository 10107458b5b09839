import SystemPackage

/// What a kernel request was doing when it failed. Named after the netlink message (or the step)
/// so that a log line reads like the `ip` command that would have failed.
public enum NetlinkOperation: Sendable, Hashable, CustomStringConvertible {
    case newLink, setLink, delLink, getLink
    case newAddress, delAddress
    case newRoute, delRoute
    case newNeighbour, delNeighbour
    case delConntrack
    case getFamily
    case getIPVSInfo, getIPVSService
    case newIPVSService, setIPVSService, delIPVSService
    case newIPVSDestination, setIPVSDestination, delIPVSDestination
    case flushIPVS
    case dump(String)
    case socket, send, receive
    case enterNamespace, createNamespace, deleteNamespace
    case sysctl
    case other(String)

    public var description: String {
        switch self {
        case .newLink: "RTM_NEWLINK"
        case .setLink: "RTM_SETLINK"
        case .delLink: "RTM_DELLINK"
        case .getLink: "RTM_GETLINK"
        case .newAddress: "RTM_NEWADDR"
        case .delAddress: "RTM_DELADDR"
        case .newRoute: "RTM_NEWROUTE"
        case .delRoute: "RTM_DELROUTE"
        case .newNeighbour: "RTM_NEWNEIGH"
        case .delNeighbour: "RTM_DELNEIGH"
        case .delConntrack: "IPCTNL_MSG_CT_DELETE"
        case .getFamily: "CTRL_CMD_GETFAMILY"
        case .getIPVSInfo: "IPVS_CMD_GET_INFO"
        case .getIPVSService: "IPVS_CMD_GET_SERVICE"
        case .newIPVSService: "IPVS_CMD_NEW_SERVICE"
        case .setIPVSService: "IPVS_CMD_SET_SERVICE"
        case .delIPVSService: "IPVS_CMD_DEL_SERVICE"
        case .newIPVSDestination: "IPVS_CMD_NEW_DEST"
        case .setIPVSDestination: "IPVS_CMD_SET_DEST"
        case .delIPVSDestination: "IPVS_CMD_DEL_DEST"
        case .flushIPVS: "IPVS_CMD_FLUSH"
        case .dump(let what): "dump \(what)"
        case .socket: "netlink socket"
        case .send: "netlink send"
        case .receive: "netlink receive"
        case .enterNamespace: "setns"
        case .createNamespace: "create netns"
        case .deleteNamespace: "delete netns"
        case .sysctl: "sysctl"
        case .other(let s): s
        }
    }
    public var isDelete: Bool {
        switch self {
        case .delLink, .delAddress, .delRoute, .delNeighbour, .delConntrack, .deleteNamespace,
             .delIPVSService, .delIPVSDestination: true
        default: false
        }
    }
}

/// A kernel error with the operation, the object it was about and the errno, plus the kernel's own
/// extended-ACK text when it gave one ("Nexthop has invalid gateway").
public struct NetlinkError: Error, Equatable, Sendable, CustomStringConvertible {
    public var operation: NetlinkOperation
    public var subject: String
    public var errno: Errno
    public var kernelMessage: String?

    public init(_ operation: NetlinkOperation, _ subject: String, errno: Errno, kernelMessage: String? = nil) {
        self.operation = operation
        self.subject = subject
        self.errno = errno
        self.kernelMessage = kernelMessage
    }

    public var description: String {
        var text = "\(operation) \(subject): \(errno) (errno \(errno.rawValue))"
        if let kernelMessage, !kernelMessage.isEmpty { text += ": \(kernelMessage)" }
        return text
    }

    /// True when the object already exists (EEXIST): a create that a rerun may treat as done.
    public var isAlreadyExists: Bool { errno == .fileExists }

    /// A delete that found nothing to delete: DEL paths and sync loops count it as done.
    /// Links answer ENODEV, routes ESRCH, addresses EADDRNOTAVAIL, neighbours, nftables and conntrack ENOENT;
    /// IPVS answers ESRCH for a missing service and ENOENT for a missing destination.
    public var isAlreadyGone: Bool {
        operation.isDelete && [Errno.noSuchAddressOrDevice, .operationNotSupportedByDevice, .noSuchProcess, .addressNotAvailable,
                               .noSuchFileOrDirectory].contains(errno)
    }

    /// Builds the error from the global `errno` right after a failed libc call.
    static func fromErrno(_ operation: NetlinkOperation, _ subject: String) -> NetlinkError {
        NetlinkError(operation, subject, errno: Errno(rawValue: currentErrno()))
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func currentErrno() -> Int32 { Glibc.errno }
#endif
