import Cluster
import KubeAPI

/// The API source's per-kind counters in the Prometheus text format (0.0.4), one series per kind
/// keeld lists, read from ``KubeAPIMetrics`` at scrape time.
func apiMetricsText(_ metrics: KubeAPIMetrics, kinds: Set<ObjectKind>, now: ContinuousClock.Instant = .now) -> String {
    let snapshot = metrics.snapshot()
    let ordered = ObjectKind.allCases.filter(kinds.contains)
    func family(_ name: String, _ type: String, _ help: String, _ value: (KubeAPIKindMetrics) -> Double?) -> String {
        var text = "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for kind in ordered {
            guard let v = value(snapshot[kind] ?? KubeAPIKindMetrics()) else { continue }
            text += "\(name){kind=\"\(kind.rawValue)\"} \(v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v))\n"
        }
        return text
    }
    return family("keel_api_watch_restarts_total", "counter", "Watches of the Kubernetes API started again after one ended",
                  { Double($0.watchRestarts) })
        + family("keel_api_relists_total", "counter", "LISTs after the first (resourceVersion expired, or an error)",
                 { Double($0.relists) })
        + family("keel_api_events_total", "counter", "Watch events received", { Double($0.eventsReceived) })
        + family("keel_api_seconds_since_last_event", "gauge",
                 "Seconds since the last watch event or completed LIST (absent before the first LIST)",
                 { m in m.lastEventAt.map { at in
                     let d = (now - at).components
                     return Double(d.seconds) + Double(d.attoseconds) / 1e18 } })
}
