import NetAddress
import Netlink

/// The changes that turn `current` (what Keel owns in the kernel now) into `desired`.
public struct PeerChanges: Sendable, Equatable {
    public var addRoutes: [Route] = []
    public var deleteRoutes: [Route] = []
    public var addFDB: [FDBEntry] = []
    public var deleteFDB: [FDBEntry] = []
    public var addNeighbours: [Neighbour] = []
    public var deleteNeighbours: [Neighbour] = []

    public var isEmpty: Bool {
        addRoutes.isEmpty && deleteRoutes.isEmpty && addFDB.isEmpty && deleteFDB.isEmpty && addNeighbours.isEmpty && deleteNeighbours.isEmpty
    }
    public var count: Int {
        addRoutes.count + deleteRoutes.count + addFDB.count + deleteFDB.count + addNeighbours.count + deleteNeighbours.count
    }
}

/// Pure diff. Routes are compared by what makes them the same kernel route (destination and table),
/// so a changed gateway becomes a delete + add of that destination.
public func peerChanges(current: PeerState, desired: PeerState) -> PeerChanges {
    var c = PeerChanges()
    c.addRoutes = desired.routes.subtracting(current.routes).sorted { $0.destination.description < $1.destination.description }
    c.deleteRoutes = current.routes.subtracting(desired.routes).sorted { $0.destination.description < $1.destination.description }
    c.addFDB = desired.fdb.subtracting(current.fdb).sorted { $0.mac.description < $1.mac.description }
    c.deleteFDB = current.fdb.subtracting(desired.fdb).sorted { $0.mac.description < $1.mac.description }
    c.addNeighbours = desired.neighbours.subtracting(current.neighbours).sorted { $0.address < $1.address }
    c.deleteNeighbours = current.neighbours.subtracting(desired.neighbours).sorted { $0.address < $1.address }
    return c
}

/// Reads what Keel owns and applies the difference to the desired state. Owned means: routes with
/// protocol `keel` in the main table; FDB entries with a destination and permanent neighbours on
/// Keel's VXLAN device. Everything else in the kernel is left alone.
public struct PeerSync: Sendable {
    let socket: RouteSocket

    public init(socket: RouteSocket) { self.socket = socket }

    /// What Keel owns in the kernel now, normalised like `desiredPeerState`'s output.
    public func current(vxlanIndex: Int32?) throws(NetlinkError) -> PeerState {
        var state = PeerState()
        for r in try socket.routes(table: .main) where r.proto == .keel {
            // Normalised as desiredPeerState builds them: the device only where onlink pins it, and no
            // metric where the kernel filled in its default (IPv6 routes come back with 1024).
            let defaultMetric: UInt32 = r.destination.family == .ipv4 ? 0 : 1024
            state.routes.insert(Route(destination: r.destination, gateway: r.gateway, device: r.onlink ? r.device : nil,
                                      onlink: r.onlink, metric: r.metric == defaultMetric ? nil : r.metric, proto: .keel))
        }
        if let vxlanIndex {
            for e in try socket.fdbEntries(link: vxlanIndex) where e.destination != nil && e.state == .permanent {
                state.fdb.insert(FDBEntry(linkIndex: vxlanIndex, mac: e.mac, destination: e.destination, state: .permanent))
            }
            for n in try socket.neighbours(link: vxlanIndex, family: .ipv4) where n.state == .permanent {
                state.neighbours.insert(Neighbour(linkIndex: vxlanIndex, address: n.address, mac: n.mac, state: .permanent))
            }
        }
        return state
    }

    /// Applies `changes`: deletes first (a moved peer frees its destination), then adds, routes last
    /// so that a route never points at a neighbour that is not there yet. Goes on past failures and
    /// throws the first one at the end; "already gone" deletes count as done.
    @discardableResult
    public func apply(_ changes: PeerChanges) -> [NetlinkError] {
        var failures: [NetlinkError] = []
        func attempt(_ body: () throws(NetlinkError) -> Void) {
            do { try body() } catch where error.isAlreadyGone && error.operation.isDelete {} catch { failures.append(error) }
        }
        if !changes.deleteRoutes.isEmpty {
            attempt { () throws(NetlinkError) in try socket.apply(changes.deleteRoutes.map(RouteChange.delete)) }
        }
        for n in changes.deleteNeighbours { attempt { () throws(NetlinkError) in try socket.deleteNeighbour(n) } }
        for e in changes.deleteFDB { attempt { () throws(NetlinkError) in try socket.deleteFDB(e) } }
        for e in changes.addFDB { attempt { () throws(NetlinkError) in try socket.appendFDB(e) } }
        for n in changes.addNeighbours { attempt { () throws(NetlinkError) in try socket.replaceNeighbour(n) } }
        if !changes.addRoutes.isEmpty {
            // add, not replace: a route to the same prefix that someone else made is not ours to overwrite.
            attempt { () throws(NetlinkError) in try socket.apply(changes.addRoutes.map(RouteChange.add)) }
        }
        return failures
    }
}
