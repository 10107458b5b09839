import CMnl
import Glibc
import NetAddress

extension RouteSocket {
    /// Adds or overwrites a neighbour entry (the VXLAN peer's VTEP MAC for its gateway address).
    /// Kernel: RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE. Same as `ip neigh replace A lladdr M dev X nud permanent`.
    public func replaceNeighbour(_ n: Neighbour) throws(NetlinkError) {
        try socket.request(NeighbourMessage.build(n, type: Int32(RTM_NEWNEIGH), flags: [.ack, .create, .replace]), .newNeighbour, n.description)
    }

    /// Adds a neighbour entry; EEXIST if one exists. Kernel: RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL. Same as `ip neigh add`.
    public func addNeighbour(_ n: Neighbour) throws(NetlinkError) {
        try socket.request(NeighbourMessage.build(n, type: Int32(RTM_NEWNEIGH), flags: [.ack, .create, .exclusive]), .newNeighbour, n.description)
    }

    /// Deletes a neighbour entry; ENOENT (`isAlreadyGone`) if missing. Kernel: RTM_DELNEIGH. Same as `ip neigh del`.
    public func deleteNeighbour(_ n: Neighbour) throws(NetlinkError) {
        try socket.request(NeighbourMessage.build(n, type: Int32(RTM_DELNEIGH), flags: [.ack]), .delNeighbour, n.description)
    }

    /// IP neighbours, optionally of one link. Kernel: RTM_GETNEIGH dump. Same as `ip neigh show`.
    public func neighbours(link: Int32? = nil, family: AddressFamily? = nil) throws(NetlinkError) -> [Neighbour] {
        try socket.dump(NeighbourMessage.dumpRequest(family: family?.rawValue ?? UInt8(AF_UNSPEC)), "neighbours")
            .compactMap(NeighbourMessage.parseNeighbour)
            .filter { (link == nil || $0.linkIndex == link) && (family == nil || $0.address.family == family) }
    }

    /// Adds an FDB entry, keeping others for the same MAC (how a VXLAN device floods to several VTEPs
    /// with the all-zero MAC). Kernel: RTM_NEWNEIGH AF_BRIDGE, NLM_F_CREATE | NLM_F_APPEND.
    /// Same as `bridge fdb append M dev X dst D self permanent`.
    public func appendFDB(_ e: FDBEntry) throws(NetlinkError) {
        try socket.request(NeighbourMessage.build(e, type: Int32(RTM_NEWNEIGH), flags: [.ack, .create, .append]), .newNeighbour, "fdb \(e)")
    }

    /// Adds or overwrites the FDB entry for a MAC. Kernel: RTM_NEWNEIGH AF_BRIDGE, NLM_F_CREATE | NLM_F_REPLACE.
    /// Same as `bridge fdb replace M dev X dst D self permanent`.
    public func replaceFDB(_ e: FDBEntry) throws(NetlinkError) {
        try socket.request(NeighbourMessage.build(e, type: Int32(RTM_NEWNEIGH), flags: [.ack, .create, .replace]), .newNeighbour, "fdb \(e)")
    }

    /// Deletes an FDB entry; ENOENT (`isAlreadyGone`) if missing. Kernel: RTM_DELNEIGH AF_BRIDGE. Same as `bridge fdb del`.
    public func deleteFDB(_ e: FDBEntry) throws(NetlinkError) {
        try socket.request(NeighbourMessage.build(e, type: Int32(RTM_DELNEIGH), flags: [.ack]), .delNeighbour, "fdb \(e)")
    }

    /// FDB entries, optionally of one link. Kernel: RTM_GETNEIGH AF_BRIDGE dump. Same as `bridge fdb show`.
    public func fdbEntries(link: Int32? = nil) throws(NetlinkError) -> [FDBEntry] {
        try socket.dump(NeighbourMessage.dumpRequest(family: UInt8(AF_BRIDGE)), "fdb")
            .compactMap(NeighbourMessage.parseFDB)
            .filter { link == nil || $0.linkIndex == link }
    }
}
