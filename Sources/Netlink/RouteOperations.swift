import CMnl
import NetAddress

extension RouteSocket {
    /// Adds `route`; throws EEXIST (`isAlreadyExists`) if the kernel has it already.
    /// Kernel: RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL. Same as `ip route add`.
    public func addRoute(_ route: Route) throws(NetlinkError) {
        try socket.request(RouteMessage.build(route, type: Int32(RTM_NEWROUTE), flags: [.ack, .create, .exclusive]), .newRoute, route.description)
    }

    /// Adds or overwrites `route`. Sync loops use this so that running twice changes nothing.
    /// Kernel: RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE. Same as `ip route replace`.
    public func replaceRoute(_ route: Route) throws(NetlinkError) {
        try socket.request(RouteMessage.build(route, type: Int32(RTM_NEWROUTE), flags: [.ack, .create, .replace]), .newRoute, route.description)
    }

    /// Deletes `route`; throws ESRCH (`isAlreadyGone`) if there is no such route.
    /// Kernel: RTM_DELROUTE. Same as `ip route del`.
    public func deleteRoute(_ route: Route) throws(NetlinkError) {
        try socket.request(RouteMessage.build(route, type: Int32(RTM_DELROUTE), flags: [.ack]), .delRoute, route.description)
    }

    /// Many route changes pipelined in large sendmsg calls (one ACK each): the fast path for a sync
    /// loop installing a whole table of peer routes. Every change is attempted; the first failure is
    /// thrown after the rest went through.
    public func apply(_ changes: [RouteChange]) throws(NetlinkError) {
        try socket.requestAll(changes.map { change in
            switch change {
            case .add(let r): (RouteMessage.build(r, type: Int32(RTM_NEWROUTE), flags: [.ack, .create, .exclusive]), .newRoute, r.description)
            case .replace(let r): (RouteMessage.build(r, type: Int32(RTM_NEWROUTE), flags: [.ack, .create, .replace]), .newRoute, r.description)
            case .delete(let r): (RouteMessage.build(r, type: Int32(RTM_DELROUTE), flags: [.ack]), .delRoute, r.description)
            }
        })
    }

    /// Routes of every table (or one), optionally one family. Kernel: RTM_GETROUTE dump.
    /// Same as `ip route show table all`.
    public func routes(table: RouteTable? = nil, family: AddressFamily? = nil) throws(NetlinkError) -> [Route] {
        try socket.dump(RouteMessage.dumpRequest(family: family), "routes")
            .compactMap(RouteMessage.parse)
            .filter { table == nil || $0.table == table }
    }
}

public enum RouteChange: Sendable, Hashable {
    case add(Route), replace(Route), delete(Route)
}
