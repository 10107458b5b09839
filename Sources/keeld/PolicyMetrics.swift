import PolicyEnforcer
import Synchronization

/// The policy enforcer's Prometheus series, fed by every sync. Rendered by hand (as the API
/// source's are) because the per-policy series come and go with the policies the kernel refuses.
final class PolicyMetrics: Sendable {
    private struct State {
        var syncs = 0, failures = 0
        /// Policies refused by the last successful sync (each fails closed until programmed).
        var refusedNow: Set<String> = []
        /// Refusals per policy since start, one series per policy ever refused.
        var refusals: [String: Int] = [:]
    }
    private let state = Mutex(State())

    func record(_ r: PolicySyncReport) {
        state.withLock { s in
            s.syncs += 1
            guard r.succeeded else { s.failures += 1; return }
            s.refusedNow = Set(r.unprogrammable.map { Self.labels($0) })
            for p in r.unprogrammable { s.refusals[Self.labels(p), default: 0] += 1 }
        }
    }

    private static func labels(_ p: UnprogrammablePolicy) -> String {
        func escaped(_ v: String) -> String {
            v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        }
        return "namespace=\"\(escaped(p.policy.namespace ?? ""))\",policy=\"\(escaped(p.policy.name))\""
    }

    func text() -> String {
        let s = state.withLock { $0 }
        var out = """
        # HELP keel_policy_syncs_total Policy syncs
        # TYPE keel_policy_syncs_total counter
        keel_policy_syncs_total \(s.syncs)
        # HELP keel_policy_sync_failures_total Policy syncs that changed nothing because the kernel refused what no policy explains
        # TYPE keel_policy_sync_failures_total counter
        keel_policy_sync_failures_total \(s.failures)
        # HELP keel_policy_unprogrammable NetworkPolicies the kernel refused at the last sync (their pods allow nothing on that side)
        # TYPE keel_policy_unprogrammable gauge

        """
        for l in s.refusedNow.sorted() { out += "keel_policy_unprogrammable{\(l)} 1\n" }
        out += "# HELP keel_policy_refusals_total Syncs at which the kernel refused a NetworkPolicy\n# TYPE keel_policy_refusals_total counter\n"
        for (l, n) in s.refusals.sorted(by: { $0.key < $1.key }) { out += "keel_policy_refusals_total{\(l)} \(n)\n" }
        return out
    }
}
