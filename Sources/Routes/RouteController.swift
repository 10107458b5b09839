import Cluster
import Logging
import NetAddress
import Netlink
import Synchronization

/// The annotation a node publishes its VTEP MAC in (flannel: `flannel.alpha.coreos.com/backend-data`).
public let vtepMACAnnotation = "keel.dev/vtep-mac"

extension PeerNode {
    /// The route controller's view of a Node.
    public init(_ node: Node) {
        self.init(name: node.name, podCIDRs: node.podCIDRs, nodeIPs: node.internalIPs,
                  vtepMAC: node.metadata.annotations[vtepMACAnnotation].flatMap(MACAddress.init))
    }
}

/// Keeps every peer node's host-gw route, or VXLAN FDB entry + neighbour + onlink route, in the
/// kernel: on every change of the Node objects, and on a timer to repair what someone removed.
/// Programs nothing until the nodes have been listed once (a half-filled store would read as
/// "every peer is gone"). On shutdown it leaves the datapath as it is.
public final class RouteController: @unchecked Sendable {
    let store: ClusterStore
    let sync: PeerSync
    let nodeName: String
    let logger: Logger
    /// Node-level preparation (device, node file, publishing); returns the local facts.
    let prepare: @Sendable (Node?) throws -> LocalNode
    private var lastSkipped: [String: String] = [:]
    /// The timer and the event loop may fire together; passes run one at a time.
    private let passLock = Mutex(())

    public init(store: ClusterStore, socket: RouteSocket, nodeName: String, logger: Logger,
                prepare: @escaping @Sendable (Node?) throws -> LocalNode) {
        self.store = store
        sync = PeerSync(socket: socket)
        self.nodeName = nodeName
        self.logger = logger
        self.prepare = prepare
    }

    public enum Outcome: Sendable, Equatable {
        case waitingForNodes
        case applied(PeerChanges)
        case failed(String)
    }

    /// One full pass: desired state from the store, difference against the kernel, applied.
    @discardableResult
    public func syncOnce() -> Outcome {
        passLock.withLock { _ in pass() }
    }

    private func pass() -> Outcome {
        let snapshot = store.snapshot()
        guard snapshot.hasListed(.node) else { return .waitingForNodes }
        do {
            // Without our own Node (a missing or malformed manifest) we do not know our device or pod
            // CIDR: change nothing rather than tear down what works.
            guard let me = snapshot.nodes[nodeName] else {
                logger.warning("this node is not among the Node objects; peers left as they are", metadata: ["node": "\(nodeName)"])
                return .waitingForNodes
            }
            let local = try prepare(me)
            let desired = desiredPeerState(nodes: snapshot.nodes.values.map(PeerNode.init), local: local)
            if desired.skipped != lastSkipped {
                for (peer, reason) in desired.skipped.sorted(by: { $0.key < $1.key }) {
                    logger.warning("peer node skipped", metadata: ["object.kind": "Node", "object.name": "\(peer)", "reason": "\(reason)"])
                }
                lastSkipped = desired.skipped
            }
            let current = try sync.current(vxlanIndex: local.vxlanIndex)
            let changes = peerChanges(current: current, desired: desired)
            guard !changes.isEmpty else {
                logger.trace("peers in sync", metadata: ["peers": "\(snapshot.nodes.count - 1)"])
                return .applied(changes)
            }
            let failures = sync.apply(changes)
            for f in failures { logger.warning("peer entry not applied", metadata: ["error": "\(f)"]) }
            logger.info("peer entries synced", metadata: [
                "routes.added": "\(changes.addRoutes.count)", "routes.deleted": "\(changes.deleteRoutes.count)",
                "fdb.added": "\(changes.addFDB.count)", "fdb.deleted": "\(changes.deleteFDB.count)",
                "neighbours.added": "\(changes.addNeighbours.count)", "neighbours.deleted": "\(changes.deleteNeighbours.count)",
                "failures": "\(failures.count)",
            ])
            return failures.isEmpty ? .applied(changes) : .failed(failures.map(\.description).joined(separator: "; "))
        } catch {
            logger.error("route sync failed", metadata: ["error": "\(error)"])
            return .failed("\(error)")
        }
    }

    /// Syncs after Node changes (coalesced: a burst of events is one pass after `minInterval`) and
    /// every `resync`, until the task is cancelled.
    public func run(resync: Duration = .seconds(30), minInterval: Duration = .milliseconds(20)) async {
        await store.runCoalesced(on: [.node], resync: resync, minInterval: minInterval) { [self] in syncOnce() }
    }
}
