import Glibc
import Prometheus
import ServiceProxy
import Synchronization

/// The proxy's Prometheus metrics and the health state behind /healthz, fed by every sync.
final class ProxyMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let duration: DurationHistogram
    private let syncs: Counter
    private let failures: Counter
    private let servicePorts: Gauge
    private let endpoints: Gauge
    /// Wall-clock seconds of the last successful sync, and whether the last sync failed.
    private let health = Mutex<(lastSuccess: Double?, lastFailed: Bool)>((nil, false))

    init() {
        duration = registry.makeDurationHistogram(
            name: "sync_proxy_rules_duration_seconds",
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
                      .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10)],
            help: "SyncProxyRules latency in seconds")
        syncs = registry.makeCounter(name: "keel_proxy_syncs_total", help: "Proxy syncs")
        failures = registry.makeCounter(name: "keel_proxy_sync_failures_total", help: "Proxy syncs that failed")
        servicePorts = registry.makeGauge(name: "keel_proxy_service_ports", help: "Service ports programmed")
        endpoints = registry.makeGauge(name: "keel_proxy_endpoints", help: "Backends programmed")
    }

    func record(_ r: ProxySyncReport) {
        syncs.increment()
        duration.recordNanoseconds(Int64(r.duration.components.seconds) * 1_000_000_000 + r.duration.components.attoseconds / 1_000_000_000)
        if r.succeeded {
            servicePorts.set(Double(r.servicePorts))
            endpoints.set(Double(r.endpoints))
            health.withLock { $0 = (now(), false) }
        } else {
            failures.increment()
            health.withLock { $0.lastFailed = true }
        }
    }

    /// kube-proxy's rule: healthy while syncs succeed; unhealthy before the first success or after a failure.
    func healthz() -> (Int, String) {
        let (last, failed) = health.withLock { $0 }
        let body = "{\"lastUpdated\": \(last.map { "\($0)" } ?? "null"), \"currentTime\": \(now())}"
        return (last != nil && !failed ? 200 : 503, body)
    }

    func text() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

private func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
