import Cluster
import NetAddress
import PolicyEnforcer
import Testing

/// One row: these policies in ``World``, this flow, allowed or not.
struct EvaluationRow: Sendable, CustomTestStringConvertible {
    var name: String
    var policies: [NetworkPolicy]
    var flow: Flow
    var allowed: Bool
    var testDescription: String { "\(name): \(flow) → \(allowed ? "allowed" : "denied")" }
}

private func row(_ name: String, _ policies: [NetworkPolicy], _ from: Endpoint, _ to: Endpoint,
                 _ proto: PortProtocol = .tcp, _ port: UInt16, _ allowed: Bool) -> EvaluationRow {
    EvaluationRow(name: name, policies: policies, flow: Flow(from: from, to: to, proto, port: port), allowed: allowed)
}
private let at = World.at

// Policies the rows share.
private let denyIngressProd = policy("prod", "deny-ingress")                                   // podSelector {}, types default [Ingress]
private let denyEgressProd = policy("prod", "deny-egress", types: [.egress])
private let denyAllDev = policy("dev", "deny-all", types: [.ingress, .egress])
private let dbFromWeb = policy("prod", "db-from-web", select: labels(["app": "db"]), ingress: [rule([pods(["app": "web"])])])
private let dbFromDevNS = policy("prod", "db-from-dev", select: labels(["app": "db"]), ingress: [rule([namespaces(["env": "dev"])])])
private let dbFromDevTool = policy("prod", "db-and", select: labels(["app": "db"]),
                                   ingress: [rule([.selector(pods: labels(["app": "tool"]), namespaces: labels(["env": "dev"]))])])
private let dbFromDevOrApi = policy("prod", "db-or", select: labels(["app": "db"]),
                                    ingress: [rule([namespaces(["env": "dev"]), pods(["app": "api"])])])
private let dbFromAllPodsHere = policy("prod", "db-ns", select: labels(["app": "db"]),
                                       ingress: [rule([.selector(pods: .everything, namespaces: nil)])])
private let dbFromAllNamespaces = policy("prod", "db-all-ns", select: labels(["app": "db"]),
                                         ingress: [rule([.selector(pods: nil, namespaces: .everything)])])
private let dbFromDefaultByName = policy("prod", "db-default", select: labels(["app": "db"]),
                                         ingress: [rule([namespaces(["kubernetes.io/metadata.name": "default"])])])
private let dbFromNotDev = policy("prod", "db-not-dev", select: labels(["app": "db"]), ingress: [rule([
    .selector(pods: nil, namespaces: LabelSelector(matchExpressions: [LabelSelectorRequirement(key: "env", .notIn, ["dev"])]))])])
private let webFromBlock = policy("prod", "web-block", select: labels(["app": "web"]),
                                  ingress: [rule([block("203.0.113.0/24", except: ["203.0.113.128/25"])])])
private let dbFromDevBlock = policy("prod", "db-block", select: labels(["app": "db"]), ingress: [rule([block("10.0.2.0/24")])])
private let web8080 = policy("prod", "web-8080", select: labels(["app": "web"]), ingress: [rule([], [tcp(8080)])])
private let webUDP53 = policy("prod", "web-udp53", select: labels(["app": "web"]),
                              ingress: [rule([], [NetworkPolicyPort(protocol: .udp, port: .number(53))])])
private let webAllUDP = policy("prod", "web-udp", select: labels(["app": "web"]), ingress: [rule([], [NetworkPolicyPort(protocol: .udp)])])
private let webRange = policy("prod", "web-range", select: labels(["app": "web"]), ingress: [rule([], [tcp(8000, to: 8100)])])
private let httpByName = policy("prod", "http-by-name", select: LabelSelector(matchExpressions: [
    LabelSelectorRequirement(key: "app", .in, ["web", "api", "db"])]), ingress: [rule([], [named("http")])])
private let clientEgressHTTP = policy("default", "client-egress-http", egress: [rule([], [named("http")])])
private let clientEgressBlockHTTP = policy("default", "client-egress-block-http", egress: [rule([block("0.0.0.0/0")], [named("http")])])
private let clientEgressDNS = policy("default", "client-egress-dns", types: [.egress],
                                     egress: [rule([], [named("dns", .udp)])])
private let webSCTP = policy("prod", "web-sctp", select: labels(["app": "web"]),
                             ingress: [rule([], [NetworkPolicyPort(protocol: .sctp, port: .number(3868))])])
private let webSCTPNamed = policy("prod", "web-sctp-named", select: labels(["app": "web"]), ingress: [rule([], [named("sig", .sctp)])])
private let unionA = policy("prod", "a", select: labels(["app": "db"]), ingress: [rule([pods(["app": "api"])], [tcp(5432)])])
private let unionB = policy("prod", "b", select: labels(["app": "db"]), ingress: [rule([namespaces(["env": "dev"])])])
private let webEgressDNSOnly = policy("prod", "web-dns", select: labels(["app": "web"]), types: [.egress],
                                      egress: [rule([.selector(pods: nil, namespaces: .everything)],
                                                    [NetworkPolicyPort(protocol: .udp, port: .number(53))])])
private let webEgressRulesNoTypes = policy("prod", "web-egress-default-types", select: labels(["app": "web"]),
                                           egress: [rule([block("8.8.8.0/24")], [NetworkPolicyPort(protocol: .udp, port: .number(53))])])
private let webIngressOnlyNoTypes = policy("prod", "web-ingress-default-types", select: labels(["app": "web"]),
                                           ingress: [rule([pods(["app": "api"])])])
private let webEmptyEgressList = policy("prod", "web-empty-egress", select: labels(["app": "web"]), ingress: [rule()], egress: [])
private let webTypesIngressWithEgressRules = policy("prod", "web-types-ingress", select: labels(["app": "web"]),
                                                    types: [.ingress], ingress: [rule()], egress: [rule([block("10.9.9.0/24")])])
private let webAllowAll = policy("prod", "web-allow-all", select: labels(["app": "web"]), ingress: [rule()])
private let webDenyAll = policy("prod", "web-deny-all", select: labels(["app": "web"]), types: [.ingress], ingress: [])
private let dbRoleExists = policy("prod", "role-exists", select: LabelSelector(matchExpressions: [
    LabelSelectorRequirement(key: "role", .exists)]))
private let noRoleDeny = policy("prod", "no-role", select: LabelSelector(matchExpressions: [
    LabelSelectorRequirement(key: "role", .doesNotExist)]))
private let webEgressToNode = policy("prod", "web-to-node", select: labels(["app": "web"]), types: [.egress],
                                     egress: [rule([block("192.168.1.0/24")])])

let evaluationRows: [EvaluationRow] = [
    // No policy: everything flows.
    row("no policies", [], at("default/client"), at("prod/web"), .tcp, 8080, true),
    row("no policies, external", [], at("prod/web"), ext("8.8.8.8"), .udp, 53, true),
    // Default deny ingress (podSelector {}, policyTypes defaulted to [Ingress]).
    row("default-deny ingress", [denyIngressProd], at("default/client"), at("prod/web"), .tcp, 8080, false),
    row("default-deny ingress: same namespace too", [denyIngressProd], at("prod/api"), at("prod/web"), .tcp, 8080, false),
    row("default-deny ingress leaves egress open", [denyIngressProd], at("prod/web"), at("dev/web"), .tcp, 8081, true),
    row("policy in another namespace selects nothing here", [denyAllDev], at("default/client"), at("prod/web"), .tcp, 8080, true),
    row("policy in another namespace isolates its own pods", [denyAllDev], at("default/client"), at("dev/web"), .tcp, 8081, false),
    row("podSelector not matching leaves the pod open", [dbFromWeb], at("default/client"), at("prod/web"), .tcp, 8080, true),
    // Default deny egress.
    row("default-deny egress", [denyEgressProd], at("prod/web"), at("dev/web"), .tcp, 8081, false),
    row("default-deny egress to external", [denyEgressProd], at("prod/web"), ext("8.8.8.8"), .udp, 53, false),
    row("default-deny egress leaves ingress open", [denyEgressProd], at("default/client"), at("prod/web"), .tcp, 8080, true),
    // Default policyTypes.
    row("no policyTypes + egress rules: egress isolated, rule allows", [webEgressRulesNoTypes], at("prod/web"), ext("8.8.8.8"), .udp, 53, true),
    row("no policyTypes + egress rules: egress isolated, rest denied", [webEgressRulesNoTypes], at("prod/web"), ext("1.1.1.1"), .udp, 53, false),
    row("no policyTypes + egress rules: Ingress isolated too", [webEgressRulesNoTypes], at("default/client"), at("prod/web"), .tcp, 8080, false),
    row("no policyTypes, ingress rules only: egress open", [webIngressOnlyNoTypes], at("prod/web"), ext("1.1.1.1"), .tcp, 443, true),
    row("no policyTypes, egress: [] is no egress rule", [webEmptyEgressList], at("prod/web"), ext("1.1.1.1"), .tcp, 443, true),
    row("policyTypes [Ingress] ignores egress rules", [webTypesIngressWithEgressRules], at("prod/web"), ext("1.1.1.1"), .tcp, 443, true),
    // ingress: [{}] vs ingress: [].
    row("ingress: [{}] allows all", [webAllowAll], ext("198.51.100.7"), at("prod/web"), .udp, 9999, true),
    row("ingress: [] allows nothing", [webDenyAll], at("prod/api"), at("prod/web"), .tcp, 8080, false),
    // podSelector peers: the policy's namespace only.
    row("podSelector peer, same namespace", [dbFromWeb], at("prod/web"), at("prod/db"), .tcp, 5432, true),
    row("podSelector peer, same labels in another namespace", [dbFromWeb], at("dev/web"), at("prod/db"), .tcp, 5432, false),
    // namespaceSelector peers.
    row("namespaceSelector peer admits its namespace's pods", [dbFromDevNS], at("dev/tool"), at("prod/db"), .tcp, 5432, true),
    row("namespaceSelector peer: other namespace denied", [dbFromDevNS], at("prod/api"), at("prod/db"), .tcp, 5432, false),
    // AND vs OR.
    row("AND peer: both selectors match", [dbFromDevTool], at("dev/tool"), at("prod/db"), .tcp, 5432, true),
    row("AND peer: namespace matches, pod does not", [dbFromDevTool], at("dev/web"), at("prod/db"), .tcp, 5432, false),
    row("AND peer: pod labels match in the wrong namespace", [dbFromDevTool], at("default/client"), at("prod/db"), .tcp, 5432, false),
    row("OR peers: namespace branch", [dbFromDevOrApi], at("dev/web"), at("prod/db"), .tcp, 5432, true),
    row("OR peers: pod branch", [dbFromDevOrApi], at("prod/api"), at("prod/db"), .tcp, 5432, true),
    row("OR peers: neither", [dbFromDevOrApi], at("default/client"), at("prod/db"), .tcp, 5432, false),
    // Empty selectors.
    row("podSelector {} peer: every pod of the policy's namespace", [dbFromAllPodsHere], at("prod/web"), at("prod/db"), .tcp, 1, true),
    row("podSelector {} peer: not other namespaces", [dbFromAllPodsHere], at("dev/tool"), at("prod/db"), .tcp, 1, false),
    row("namespaceSelector {} peer: every namespace, even without an object", [dbFromAllNamespaces], at("default/client"), at("prod/db"), .tcp, 1, true),
    row("namespaceSelector {} peer: not external addresses", [dbFromAllNamespaces], ext("10.0.3.99"), at("prod/db"), .tcp, 1, false),
    // The automatic kubernetes.io/metadata.name label, and matchExpressions.
    row("namespace by its automatic name label", [dbFromDefaultByName], at("default/client"), at("prod/db"), .tcp, 5432, true),
    row("namespace by name label: other namespace", [dbFromDefaultByName], at("dev/tool"), at("prod/db"), .tcp, 5432, false),
    row("namespaceSelector NotIn: label absent matches", [dbFromNotDev], at("default/client"), at("prod/db"), .tcp, 5432, true),
    row("namespaceSelector NotIn: excluded namespace", [dbFromNotDev], at("dev/tool"), at("prod/db"), .tcp, 5432, false),
    row("spec.podSelector Exists isolates labelled pod", [dbRoleExists], at("prod/api"), at("prod/db"), .tcp, 5432, false),
    row("spec.podSelector Exists leaves others open", [dbRoleExists], at("prod/api"), at("prod/web"), .tcp, 8080, true),
    row("spec.podSelector DoesNotExist", [noRoleDeny], at("prod/db"), at("prod/web"), .tcp, 8080, false),
    // ipBlock with except.
    row("ipBlock: inside cidr", [webFromBlock], ext("203.0.113.5"), at("prod/web"), .tcp, 8080, true),
    row("ipBlock: inside except", [webFromBlock], ext("203.0.113.200"), at("prod/web"), .tcp, 8080, false),
    row("ipBlock: outside cidr", [webFromBlock], ext("198.51.100.1"), at("prod/web"), .tcp, 8080, false),
    row("ipBlock matches pod addresses too", [dbFromDevBlock], at("dev/tool"), at("prod/db"), .tcp, 5432, true),
    row("ipBlock: pod outside it", [dbFromDevBlock], at("default/client"), at("prod/db"), .tcp, 5432, false),
    // Ports and protocols.
    row("numeric port", [web8080], at("default/client"), at("prod/web"), .tcp, 8080, true),
    row("numeric port: other port", [web8080], at("default/client"), at("prod/web"), .tcp, 8081, false),
    row("numeric port: protocol defaults to TCP, UDP denied", [web8080], at("default/client"), at("prod/web"), .udp, 8080, false),
    row("UDP port", [webUDP53], at("default/client"), at("prod/web"), .udp, 53, true),
    row("UDP port: TCP same number denied", [webUDP53], at("default/client"), at("prod/web"), .tcp, 53, false),
    row("protocol without port: every UDP port", [webAllUDP], at("default/client"), at("prod/web"), .udp, 40000, true),
    row("protocol without port: TCP denied", [webAllUDP], at("default/client"), at("prod/web"), .tcp, 40000, false),
    row("endPort: inside range", [webRange], at("default/client"), at("prod/web"), .tcp, 8080, true),
    row("endPort: range end inclusive", [webRange], at("default/client"), at("prod/web"), .tcp, 8100, true),
    row("endPort: above range", [webRange], at("default/client"), at("prod/web"), .tcp, 8101, false),
    row("endPort: below range", [webRange], at("default/client"), at("prod/web"), .tcp, 7999, false),
    row("SCTP port", [webSCTP], at("default/client"), at("prod/web"), .sctp, 3868, true),
    row("SCTP port: TCP same number denied", [webSCTP], at("default/client"), at("prod/web"), .tcp, 3868, false),
    row("SCTP named port", [webSCTPNamed], at("default/client"), at("prod/web"), .sctp, 3868, true),
    // Named ports, ingress: resolved on the destination pod itself.
    row("ingress named port on web (8080)", [httpByName], at("default/client"), at("prod/web"), .tcp, 8080, true),
    row("ingress named port: web's other number", [httpByName], at("default/client"), at("prod/web"), .tcp, 9000, false),
    row("ingress named port on api (9000)", [httpByName], at("default/client"), at("prod/api"), .tcp, 9000, true),
    row("ingress named port: api is not 8080", [httpByName], at("default/client"), at("prod/api"), .tcp, 8080, false),
    row("ingress named port the pod lacks matches nothing", [httpByName], at("default/client"), at("prod/db"), .tcp, 8080, false),
    // Named ports, egress: resolved on each destination pod.
    row("egress named port to web (8080)", [clientEgressHTTP], at("default/client"), at("prod/web"), .tcp, 8080, true),
    row("egress named port to web, api's number", [clientEgressHTTP], at("default/client"), at("prod/web"), .tcp, 9000, false),
    row("egress named port to api (9000)", [clientEgressHTTP], at("default/client"), at("prod/api"), .tcp, 9000, true),
    row("egress named port to api, web's number", [clientEgressHTTP], at("default/client"), at("prod/api"), .tcp, 8080, false),
    row("egress named port to dev/web (8081)", [clientEgressHTTP], at("default/client"), at("dev/web"), .tcp, 8081, true),
    row("egress named port: external address matches nothing", [clientEgressHTTP], at("default/client"), ext("8.8.8.8"), .tcp, 8080, false),
    row("egress named port + ipBlock: pod in block", [clientEgressBlockHTTP], at("default/client"), at("prod/api"), .tcp, 9000, true),
    row("egress named port + ipBlock: non-pod address", [clientEgressBlockHTTP], at("default/client"), ext("203.0.113.5"), .tcp, 9000, false),
    row("egress named port: name and protocol", [clientEgressDNS], at("default/client"), at("prod/api"), .udp, 53, true),
    row("egress named port: TCP is another port", [clientEgressDNS], at("default/client"), at("prod/api"), .tcp, 53, false),
    // Union of policies.
    row("union: first policy's rule", [unionA, unionB], at("prod/api"), at("prod/db"), .tcp, 5432, true),
    row("union: second policy's rule", [unionA, unionB], at("dev/web"), at("prod/db"), .tcp, 22, true),
    row("union: neither", [unionA, unionB], at("prod/api"), at("prod/db"), .tcp, 22, false),
    // Both sides must allow.
    row("egress allows, ingress denies", [webEgressDNSOnly, policy("prod", "api-deny", select: labels(["app": "api"]))],
        at("prod/web"), at("prod/api"), .udp, 53, false),
    row("egress allows, ingress open", [webEgressDNSOnly], at("prod/web"), at("prod/api"), .udp, 53, true),
    row("egress to namespaceSelector {} is pods only", [webEgressDNSOnly], at("prod/web"), ext("8.8.8.8"), .udp, 53, false),
    row("ingress allows, egress denies", [webAllowAll, denyEgressProd], at("prod/api"), at("prod/web"), .tcp, 8080, false),
    // The node, host-network and finished pods.
    row("node to an ingress-isolated pod (probes)", [denyIngressProd], World.node, at("prod/web"), .tcp, 8080, true),
    row("pod to its node under default-deny egress", [denyEgressProd], at("prod/web"), World.node, .tcp, 10250, false),
    row("pod to its node allowed by ipBlock", [webEgressToNode], at("prod/web"), World.node, .tcp, 10250, true),
    row("host-network pod is not isolated", [webDenyAll], at("default/client"),
        .pod(namespace: "prod", name: "hostnet", ip: ip("192.168.1.11")), .tcp, 8080, true),
    row("host-network pod's egress is not isolated", [denyEgressProd],
        .pod(namespace: "prod", name: "hostnet", ip: ip("192.168.1.11")), ext("8.8.8.8"), .tcp, 443, true),
    row("host-network pod is not matched by podSelector", [dbFromWeb],
        .pod(namespace: "prod", name: "hostnet", ip: ip("192.168.1.11")), at("prod/db"), .tcp, 5432, false),
    row("finished pod is not matched by podSelector", [dbFromWeb],
        .pod(namespace: "prod", name: "done", ip: ip("10.0.1.99")), at("prod/db"), .tcp, 5432, false),
]

@Suite struct SemanticsTests {
    @Test(arguments: evaluationRows)
    func evaluation(_ r: EvaluationRow) {
        let verdict = evaluate(r.flow, in: World.input(r.policies))
        #expect(verdict.allowed == r.allowed, "\(r.name): \(verdict)")
    }

    @Test func tableIsLarge() { #expect(evaluationRows.count >= 40) }

    @Test func verdictNamesRulesAndPolicies() {
        let input = World.input([unionA, unionB, denyIngressProd])
        let both = evaluate(Flow(from: at("prod/api"), to: at("prod/db"), port: 5432), in: input)
        // unionA matches (api, 5432); unionB does not (api is in prod); deny-ingress has no rules.
        #expect(both.ingress == .allowed(by: [ref("prod", "a", .ingress, 0)]))
        #expect(both.egress == .notIsolated)

        let unionBoth = World.input([unionA, unionB, policy("prod", "c", select: labels(["app": "db"]), ingress: [rule([], [tcp(5432)])])])
        #expect(evaluate(Flow(from: at("prod/api"), to: at("prod/db"), port: 5432), in: unionBoth).ingress
            == .allowed(by: [ref("prod", "a", .ingress, 0), ref("prod", "c", .ingress, 0)]))

        let denied = evaluate(Flow(from: at("default/client"), to: at("prod/db"), port: 5432), in: input)
        let isolatedBy = ["a", "b", "deny-ingress"].map { ObjectKey(kind: .networkPolicy, namespace: "prod", name: $0) }
        #expect(denied.ingress == .denied(isolatedBy: isolatedBy))
        #expect(!denied.allowed)
        #expect(evaluate(Flow(from: World.node, to: at("prod/db"), port: 5432), in: input).ingress == .allowedFromNode)
        // A flow from an isolated pod whose egress is open: the egress side says so.
        let egressDenied = evaluate(Flow(from: at("prod/web"), to: ext("8.8.8.8"), .udp, port: 53), in: World.input([denyEgressProd]))
        #expect(egressDenied.egress == .denied(isolatedBy: [ObjectKey(kind: .networkPolicy, namespace: "prod", name: "deny-egress")]))
        #expect(egressDenied.ingress == .notIsolated)
    }

    @Test func isolationListsOnlyIsolatedPodsWithDirections() {
        let pods = isolation(World.input([dbFromWeb, denyEgressProd, denyAllDev]))
        let summary = pods.map { "\($0.pod.namespace)/\($0.pod.name) in=\($0.ingressIsolated) eg=\($0.egressIsolated)" }
        #expect(summary == [
            "dev/tool in=true eg=true", "dev/web in=true eg=true",
            "prod/api in=false eg=true", "prod/db in=true eg=true", "prod/web in=false eg=true",
        ])   // prod/hostnet and prod/done are never listed; default/client is not selected
        let db = pods.first { $0.pod.name == "db" }!
        #expect(db.ips == [ip("10.0.1.12")])
        #expect(db.ingressRules == [ResolvedRule(ref: ref("prod", "db-from-web", .ingress, 0),
                                                 peers: [.address(ip("10.0.1.10"))], ports: [.any])])
        #expect(db.egressRules.isEmpty && db.egressPolicies == [ObjectKey(kind: .networkPolicy, namespace: "prod", name: "deny-egress")])
    }

    @Test func resolvedRulesCompileSelectorsPortsAndBlocks() throws {
        let p = policy("prod", "mixed", select: labels(["app": "web"]), ingress: [
            rule([namespaces(["env": "dev"]), block("203.0.113.0/24", except: ["203.0.113.0/28"])],
                 [tcp(8000, to: 8100), named("metrics"), named("nope"), NetworkPolicyPort(protocol: .udp)]),
            rule([pods(["app": "nothing-has-this"])]),   // selects no pod: compiled away
        ])
        let web = try #require(isolation(World.input([p])).first { $0.pod.name == "web" && $0.pod.namespace == "prod" })
        #expect(web.ingressRules == [ResolvedRule(
            ref: ref("prod", "mixed", .ingress, 0),
            peers: [.address(ip("10.0.2.10")), .address(ip("10.0.2.11")), .block(cidr("203.0.113.0/24"), except: [cidr("203.0.113.0/28")])],
            ports: [.port(.tcp, lo: 8000, hi: 8100), .port(.tcp, lo: 9090, hi: 9090), .port(.udp, lo: 0, hi: 65535)])])
        #expect(!web.egressIsolated && web.egressRules.isEmpty)
    }

    @Test func egressNamedPortsResolvePerDestinationPod() throws {
        let p = policy("default", "mixed-egress", egress: [rule([namespaces(["env": "prod"])], [tcp(443), named("http")])])
        let client = try #require(isolation(World.input([p])).first)
        #expect(client.pod.name == "client" && client.egressIsolated && client.ingressIsolated)
        let r = ref("default", "mixed-egress", .egress, 0)
        #expect(client.egressRules == [
            ResolvedRule(ref: r, peers: [.address(ip("10.0.1.10")), .address(ip("10.0.1.11")), .address(ip("10.0.1.12"))],
                         ports: [.port(.tcp, lo: 443, hi: 443)]),
            ResolvedRule(ref: r, peers: [.address(ip("10.0.1.11"))], ports: [.port(.tcp, lo: 9000, hi: 9000)]),   // api
            ResolvedRule(ref: r, peers: [.address(ip("10.0.1.10"))], ports: [.port(.tcp, lo: 8080, hi: 8080)]),   // web
        ])
    }

    @Test func dualStackPodMatchesByEitherAddress() {
        let a = Pod(metadata: ObjectMeta(name: "a", namespace: "x", labels: ["app": "a"]), podIPs: [ip("10.1.0.1"), ip("fd00::1")])
        let b = Pod(metadata: ObjectMeta(name: "b", namespace: "x", labels: ["app": "b"]), podIPs: [ip("10.1.0.2"), ip("fd00::2")])
        let input = PolicyInput(pods: [a, b], policies: [policy("x", "b-from-a", select: labels(["app": "b"]), ingress: [rule([pods(["app": "a"])])])])
        #expect(evaluate(Flow(from: .pod(a, family: .ipv6)!, to: .pod(b, family: .ipv6)!, port: 80), in: input).allowed)
        #expect(evaluate(Flow(from: .pod(a)!, to: .pod(b)!, port: 80), in: input).allowed)
        #expect(!evaluate(Flow(from: .external(ip("fd00::9")), to: .pod(b, family: .ipv6)!, port: 80), in: input).allowed)
    }

    @Test func inputFromSnapshot() {
        var snapshot = ClusterSnapshot()
        for p in World.pods { snapshot.pods[p.key] = p }
        for n in World.namespaces { snapshot.namespaces[n.name] = n }
        snapshot.networkPolicies[denyIngressProd.key] = denyIngressProd
        let input = PolicyInput(snapshot: snapshot)
        #expect(input.pods.count == World.pods.count && input.policies == [denyIngressProd])
        #expect(input.namespaceLabels("default") == ["kubernetes.io/metadata.name": "default"])
        #expect(input.namespaceLabels("dev") == ["env": "dev", "kubernetes.io/metadata.name": "dev"])
        #expect(!evaluate(Flow(from: at("default/client"), to: at("prod/web"), port: 8080), in: input).allowed)
    }
}
