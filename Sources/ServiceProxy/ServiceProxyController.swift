import Cluster
import Logging
import NetAddress
import Synchronization

/// What a sync reports, for metrics and health.
public struct ProxySyncReport: Sendable {
    public var duration: Duration
    public var succeeded: Bool
    public var servicePorts: Int
    public var endpoints: Int
}

/// Keeps the data plane equal to the Services and EndpointSlices in the store: one pass per store
/// change and per resync period. Nothing is programmed before both kinds have been listed once, so a
/// half-filled store never deletes live services.
public final class ServiceProxyController: @unchecked Sendable {
    let store: ClusterStore
    let dataplane: any ServiceDataplane
    let node: @Sendable () throws -> ProxyNodeConfig
    let logger: Logger
    let report: @Sendable (ProxySyncReport) -> Void
    /// Held for a whole pass (passes never overlap): the state as last built.
    private let cache = Mutex(ProxyStateCache())

    public init(store: ClusterStore, dataplane: any ServiceDataplane, node: @escaping @Sendable () throws -> ProxyNodeConfig,
                logger: Logger, report: @escaping @Sendable (ProxySyncReport) -> Void = { _ in }) {
        self.store = store
        self.dataplane = dataplane
        self.node = node
        self.logger = logger
        self.report = report
    }

    /// The kinds the proxy reads. ServiceCIDRs are not waited for: an API server may not serve them,
    /// and `--service-cidr` stands in.
    public static let kinds: Set<ObjectKind> = [.service, .endpointSlice, .serviceCIDR]

    public enum Outcome: Sendable, Equatable { case waiting, synced, failed(String) }

    @discardableResult
    public func syncOnce() -> Outcome {
        cache.withLock { cache in
            let snapshot = store.snapshot()
            guard snapshot.hasListed(.service, .endpointSlice) else { return .waiting }
            let clock = ContinuousClock()
            let start = clock.now
            do {
                // Only the Services whose objects changed since the last pass are recomputed, and
                // the data plane compares only their ports.
                let (state, changed) = cache.update(snapshot, node: try node())
                try dataplane.apply(state, changed: changed)
                let elapsed = clock.now - start
                let endpoints = state.services.reduce(0) { $0 + $1.internalBackends.count }
                report(ProxySyncReport(duration: elapsed, succeeded: true, servicePorts: state.services.count, endpoints: endpoints))
                logger.debug("proxy rules synced", metadata: ["service.ports": "\(state.services.count)", "endpoints": "\(endpoints)",
                                                              "duration": "\(elapsed)"])
                return .synced
            } catch {
                report(ProxySyncReport(duration: clock.now - start, succeeded: false, servicePorts: 0, endpoints: 0))
                logger.error("proxy sync failed", metadata: ["error": "\(error)"])
                return .failed("\(error)")
            }
        }
    }

    /// Syncs after store changes (at once when idle; a burst of events, such as a full list, is
    /// coalesced into passes at least `minInterval` apart) and every `resync`, until the task is cancelled.
    public func run(resync: Duration = .seconds(30), minInterval: Duration = .milliseconds(50)) async {
        await store.runCoalesced(on: Self.kinds, resync: resync, minInterval: minInterval) { [self] in syncOnce() }
    }
}
