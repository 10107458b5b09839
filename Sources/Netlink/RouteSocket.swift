import CMnl

/// An rtnetlink (NETLINK_ROUTE) socket: links, addresses, routes, neighbours and FDB entries of the
/// network namespace it was opened in. Open it inside `NetworkNamespace.run { }` to manage another
/// namespace; the socket stays bound to that namespace for its whole life.
public final class RouteSocket: Sendable {
    public let socket: NetlinkSocket

    public init() throws(NetlinkError) { socket = try NetlinkSocket(.route) }

    /// Opens a socket bound to `namespace`.
    public static func inside(_ namespace: NetworkNamespace) throws(NetlinkError) -> RouteSocket {
        try namespace.runTyped { () throws(NetlinkError) -> RouteSocket in try RouteSocket() }
    }
}

/// Names a link by index or by name; the kernel resolves IFLA_IFNAME when the index is 0.
public enum LinkRef: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    case index(Int32)
    case name(InterfaceName)

    public init(stringLiteral value: String) { self = .name(InterfaceName(stringLiteral: value)) }
    public var description: String {
        switch self {
        case .index(let i): "link #\(i)"
        case .name(let n): n.value
        }
    }
}

/// Address and route scopes (RT_SCOPE_*).
public enum Scope: UInt8, Sendable, Hashable {
    case universe = 0
    case site = 200
    case link = 253
    case host = 254
    case nowhere = 255
}
