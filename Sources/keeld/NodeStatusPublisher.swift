import Dispatch
import KubeAPI
import Logging
import NetAddress
import Routes
import Synchronization

/// API mode: keeld writes to its own Node object only, and only two things:
/// - the annotation `keel.dev/vtep-mac` (merge patch on `nodes/<name>`), when the Node the watch
///   delivered does not carry this node's VTEP MAC yet;
/// - once the route controller has its node set up, the condition `NetworkUnavailable=False`
///   (strategic merge patch on `nodes/<name>/status`), as flannel and Calico report that pod routes exist.
///
/// The route controller's sync is synchronous and must not wait on the API server: patches run in
/// their own task; a failed one is retried at a later sync after `retryAfter`.
final class NodeStatusPublisher: Sendable {
    let client: KubeAPINodeClient
    let nodeName: String
    let logger: Logger
    let retryAfter: Duration
    private struct State {
        var annotation: (mac: String, at: ContinuousClock.Instant, inFlight: Bool)?
        var condition: (done: Bool, at: ContinuousClock.Instant, inFlight: Bool)?
    }
    private let state = Mutex(State())

    init(client: KubeAPINodeClient, nodeName: String, logger: Logger, retryAfter: Duration = .seconds(5)) {
        self.client = client
        self.nodeName = nodeName
        self.logger = logger
        self.retryAfter = retryAfter
    }

    /// Annotates the Node with `vtepMAC` unless `current` (its annotation as watched) already says so.
    func publish(vtepMAC: MACAddress, current: String?) {
        let mac = vtepMAC.description
        guard current != mac else { return }
        let now = ContinuousClock.now
        let start = state.withLock { s -> Bool in
            if let a = s.annotation, a.mac == mac, a.inFlight || now - a.at < retryAfter { return false }
            s.annotation = (mac, now, true)
            return true
        }
        guard start else { return }
        Task {
            do {
                try await client.annotateNode(nodeName, [vtepMACAnnotation: mac])
                logger.info("VTEP MAC published", metadata: ["node": "\(nodeName)", "annotation": "\(vtepMACAnnotation)", "mac": "\(mac)"])
            } catch {
                logger.warning("VTEP MAC not published; retrying", metadata: ["node": "\(nodeName)", "error": "\(error)"])
            }
            state.withLock { $0.annotation = (mac, ContinuousClock.now, false) }
        }
    }

    /// Sets `NetworkUnavailable=False` on the Node once per run (retried until it succeeds).
    func markNetworkAvailable() {
        let now = ContinuousClock.now
        let start = state.withLock { s -> Bool in
            if let c = s.condition, c.done || c.inFlight || now - c.at < retryAfter { return false }
            s.condition = (false, now, true)
            return true
        }
        guard start else { return }
        Task {
            var done = false
            do {
                try await client.setNodeCondition(nodeName, type: "NetworkUnavailable", status: "False", reason: "KeelIsUp",
                                                  message: "keeld programs the routes to this node's pods")
                done = true
                logger.info("node condition set", metadata: ["node": "\(nodeName)", "condition": "NetworkUnavailable=False"])
            } catch {
                logger.warning("node condition not set; retrying", metadata: ["node": "\(nodeName)", "error": "\(error)"])
            }
            state.withLock { $0.condition = (done, ContinuousClock.now, false) }
        }
    }
}
