/// A ctnetlink socket (NETLINK_NETFILTER, subsystem NFNL_SUBSYS_CTNETLINK): the connection-tracking
/// table of the network namespace it was opened in. Open it inside `NetworkNamespace.run { }` (or
/// with `inside(_:)`) to manage another namespace; it stays bound to that namespace for good.
public final class ConntrackSocket: Sendable {
    public let socket: NetlinkSocket

    public init() throws(NetlinkError) { socket = try NetlinkSocket(.netfilter) }

    /// Opens a socket bound to `namespace`.
    public static func inside(_ namespace: NetworkNamespace) throws(NetlinkError) -> ConntrackSocket {
        try namespace.runTyped { () throws(NetlinkError) -> ConntrackSocket in try ConntrackSocket() }
    }
}
