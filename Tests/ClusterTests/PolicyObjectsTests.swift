import Cluster
import Foundation
import NetAddress
import Testing

extension ClusterObject {
    var pod: Pod? { if case .pod(let p) = self { p } else { nil } }
    var namespaceObject: Namespace? { if case .namespace(let n) = self { n } else { nil } }
    var networkPolicy: NetworkPolicy? { if case .networkPolicy(let p) = self { p } else { nil } }
}

/// A NetworkPolicy manifest in YAML; `spec` is block text at column 0 (indented here).
func policyYAML(_ name: String, namespace: String = "shop", spec: String) -> String {
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: \(name)\n  namespace: \(namespace)\nspec:\n"
        + spec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
}
func podYAML(_ name: String, namespace: String = "shop", body: String) -> String {
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: \(name)\n  namespace: \(namespace)\n" + body + (body.hasSuffix("\n") ? "" : "\n")
}

@Suite struct PolicyObjectsTests {
    // MARK: LabelSelector

    struct SelectorRow: Sendable, CustomTestStringConvertible {
        var selector: LabelSelector
        var labels: [String: String]
        var matches: Bool
        var testDescription: String { "\(selector) on \(labels.sorted { $0.key < $1.key }) → \(matches)" }
    }
    static let selectorRows: [SelectorRow] = {
        func req(_ k: String, _ op: LabelSelectorOperator, _ v: [String] = []) -> LabelSelectorRequirement {
            LabelSelectorRequirement(key: k, op, v)
        }
        let web = ["app": "web", "tier": "front"]
        return [
            SelectorRow(selector: .everything, labels: [:], matches: true),
            SelectorRow(selector: .everything, labels: web, matches: true),
            SelectorRow(selector: LabelSelector(matchLabels: ["app": "web"]), labels: web, matches: true),
            SelectorRow(selector: LabelSelector(matchLabels: ["app": "web"]), labels: ["app": "api"], matches: false),
            SelectorRow(selector: LabelSelector(matchLabels: ["app": "web"]), labels: [:], matches: false),
            SelectorRow(selector: LabelSelector(matchLabels: ["app": "web", "tier": "back"]), labels: web, matches: false),
            SelectorRow(selector: LabelSelector(matchExpressions: [req("app", .in, ["web", "api"])]), labels: web, matches: true),
            SelectorRow(selector: LabelSelector(matchExpressions: [req("app", .in, ["db"])]), labels: web, matches: false),
            SelectorRow(selector: LabelSelector(matchExpressions: [req("app", .in, ["web"])]), labels: [:], matches: false),
            SelectorRow(selector: LabelSelector(matchExpressions: [req("app", .notIn, ["db"])]), labels: web, matches: true),
            SelectorRow(selector: LabelSelector(matchExpressions: [req("app", .notIn, ["web"])]), labels: web, matches: false),
            SelectorRow(selector: LabelSelector(matchExpressions: [req("app", .notIn, ["web"])]), labels: [:], matches: true),
            SelectorRow(selector: LabelSelector(matchExpressions: [req("tier", .exists)]), labels: web, matches: true),
            SelectorRow(selector: LabelSelector(matchExpressions: [req("tier", .exists)]), labels: ["tier": ""], matches: true),
            SelectorRow(selector: LabelSelector(matchExpressions: [req("tier", .exists)]), labels: ["app": "web"], matches: false),
            SelectorRow(selector: LabelSelector(matchExpressions: [req("debug", .doesNotExist)]), labels: web, matches: true),
            SelectorRow(selector: LabelSelector(matchExpressions: [req("app", .doesNotExist)]), labels: web, matches: false),
            SelectorRow(selector: LabelSelector(matchLabels: ["app": "web"], matchExpressions: [req("tier", .in, ["front"])]),
                        labels: web, matches: true),
            SelectorRow(selector: LabelSelector(matchLabels: ["app": "web"], matchExpressions: [req("tier", .in, ["back"])]),
                        labels: web, matches: false),
            SelectorRow(selector: LabelSelector(matchExpressions: [req("app", .exists), req("tier", .notIn, ["front"])]),
                        labels: web, matches: false),
        ]
    }()

    @Test(arguments: selectorRows)
    func labelSelector(_ r: SelectorRow) { #expect(r.selector.matches(r.labels) == r.matches) }

    // MARK: Decoding

    @Test func podFields() throws {
        let text = podYAML("web-1", body: """
        metadata:
        spec:
          nodeName: node1
          containers:
          - name: app
            ports:
            - {name: http, containerPort: 8080}
            - {containerPort: 9090, protocol: UDP}
          - name: sidecar
            ports: [{name: sig, containerPort: 3868, protocol: SCTP}]
        status:
          phase: Running
          podIP: 10.244.1.5
          podIPs: [{ip: 10.244.1.5}, {ip: "fd00:10:244:1::5"}]
        """).replacingOccurrences(of: "metadata:\n  name: web-1\n  namespace: shop\nmetadata:\n", with: "metadata:\n  name: web-1\n  namespace: shop\n  labels: {app: web}\n")
        let r = ManifestDecoder.decode(text, file: "pods.yaml")
        #expect(r.problems.map(\.field) == ["status.podIPs[1].ip"] && r.problems.allSatisfy { !$0.isError }, "the IPv6 address: a warning")
        let pod = try #require(r.objects.first?.pod)
        #expect(pod.key == ObjectKey(kind: .pod, namespace: "shop", name: "web-1"))
        #expect(pod.labels == ["app": "web"])
        #expect(pod.nodeName == "node1" && !pod.hostNetwork && pod.phase == .running)
        #expect(pod.podIPs == [ip("10.244.1.5"), ip("fd00:10:244:1::5")])
        #expect(pod.containerPorts == [ContainerPort(container: "app", name: "http", port: 8080),
                                       ContainerPort(container: "app", port: 9090, protocol: .udp),
                                       ContainerPort(container: "sidecar", name: "sig", port: 3868, protocol: .sctp)])
        #expect(pod.port(named: "http") == 8080 && pod.port(named: "http", protocol: .udp) == nil)
        #expect(pod.port(named: "sig", protocol: .sctp) == 3868)
        // Round trip through the wire form.
        let again = try JSONDecoder().decode(Pod.self, from: JSONEncoder().encode(pod))
        #expect(again == pod)
    }

    @Test func podWithoutAddressAndHostNetwork() throws {
        let r = ManifestDecoder.decode(podYAML("pending", body: "spec: {containers: [{name: a}]}") + "---\n"
                                       + podYAML("agent", body: "spec: {hostNetwork: true}\nstatus: {podIP: 192.168.1.11}"),
                                       file: "p.yaml")
        #expect(r.problems == [])
        #expect(r.objects.compactMap(\.pod).map(\.podIPs) == [[], [ip("192.168.1.11")]])
        #expect(r.objects.compactMap(\.pod).map(\.hostNetwork) == [false, true])
    }

    @Test func namespaceGetsItsNameLabel() throws {
        let text = """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: shop
          labels: {team: a, kubernetes.io/metadata.name: wrong}
        """
        let r = ManifestDecoder.decode(text, file: "ns.yaml")
        #expect(r.problems.map(\.field) == ["metadata.labels[kubernetes.io/metadata.name]"] && r.problems.allSatisfy { !$0.isError },
                "the overwritten label: a warning")
        let ns = try #require(r.objects.first?.namespaceObject)
        #expect(ns.key == ObjectKey(kind: .namespace, name: "shop"))
        #expect(ns.labels == ["team": "a", "kubernetes.io/metadata.name": "shop"])
        #expect(Namespace(name: "dev").labels == ["kubernetes.io/metadata.name": "dev"])
        let again = try JSONDecoder().decode(Namespace.self, from: JSONEncoder().encode(ns))
        #expect(again == ns)
    }

    @Test func networkPolicyFields() throws {
        let text = policyYAML("api", spec: """
        podSelector:
          matchLabels: {app: api}
          matchExpressions: [{key: tier, operator: NotIn, values: [debug]}]
        policyTypes: [Ingress, Egress]
        ingress:
        - from:
          - podSelector: {matchLabels: {app: web}}
          - namespaceSelector: {matchLabels: {env: prod}}
            podSelector: {}
          - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
          ports:
          - {port: 8080}
          - {protocol: UDP, port: dns}
          - {protocol: SCTP, port: 3000, endPort: 3100}
        - {}
        egress:
        - to: [{namespaceSelector: {}}]
          ports: [{protocol: UDP}]
        """)
        let r = ManifestDecoder.decode(text, file: "np.yaml")
        #expect(r.problems == [])
        let p = try #require(r.objects.first?.networkPolicy)
        #expect(p.key == ObjectKey(kind: .networkPolicy, namespace: "shop", name: "api"))
        #expect(p.podSelector == LabelSelector(matchLabels: ["app": "api"],
                                               matchExpressions: [LabelSelectorRequirement(key: "tier", .notIn, ["debug"])]))
        #expect(p.policyTypes == [.ingress, .egress])
        #expect(p.ingress == [
            NetworkPolicyRule(peers: [.selector(pods: LabelSelector(matchLabels: ["app": "web"]), namespaces: nil),
                                      .selector(pods: .everything, namespaces: LabelSelector(matchLabels: ["env": "prod"])),
                                      .ipBlock(IPBlock(cidr: cidr("10.0.0.0/8"), except: [cidr("10.1.0.0/16")]))],
                              ports: [NetworkPolicyPort(port: .number(8080)),
                                      NetworkPolicyPort(protocol: .udp, port: .name("dns")),
                                      NetworkPolicyPort(protocol: .sctp, port: .number(3000), endPort: 3100)]),
            NetworkPolicyRule(),
        ])
        #expect(p.egress == [NetworkPolicyRule(peers: [.selector(pods: nil, namespaces: .everything)],
                                               ports: [NetworkPolicyPort(protocol: .udp)])])
        let again = try JSONDecoder().decode(NetworkPolicy.self, from: JSONEncoder().encode(p))
        #expect(again == p)
    }

    @Test(arguments: [
        ("absent, no egress", "podSelector: {}", [PolicyType.ingress]),
        ("absent, egress rules", "podSelector: {}\negress: [{}]", [.ingress, .egress]),
        ("absent, egress: []", "podSelector: {}\negress: []", [.ingress]),
        ("empty list", "podSelector: {}\npolicyTypes: []\negress: [{}]", [.ingress, .egress]),
        ("egress only", "podSelector: {}\npolicyTypes: [Egress]\ningress: [{}]", [.egress]),
        ("order normalized", "podSelector: {}\npolicyTypes: [Egress, Ingress]", [.ingress, .egress]),
    ])
    func policyTypesDefault(name: String, spec: String, expected: [PolicyType]) throws {
        let r = ManifestDecoder.decode(policyYAML("p", spec: spec), file: "np.yaml")
        #expect(r.problems == [], "\(name)")
        #expect(r.objects.first?.networkPolicy?.policyTypes == expected, "\(name)")
    }

    @Test func emptyIngressListIsKeptApartFromAllowAll() throws {
        let r = ManifestDecoder.decode(policyYAML("deny", spec: "podSelector: {}\ningress: []") + "---\n"
                                       + policyYAML("allow", spec: "podSelector: {}\ningress: [{}]"), file: "np.yaml")
        #expect(r.objects.compactMap(\.networkPolicy).map(\.ingress) == [[], [NetworkPolicyRule()]])
    }

    // MARK: Malformed

    struct Malformed: Sendable, CustomTestStringConvertible {
        var name: String
        var kind: String
        var yaml: String
        var field: String
        var reasonContains: String
        var testDescription: String { name }
    }

    static let malformed: [Malformed] = [
        Malformed(name: "bad podIP", kind: "Pod", yaml: podYAML("bad", body: "status: {podIP: 10.244.1.300}"),
                  field: "status.podIP", reasonContains: "\"10.244.1.300\" is not an IP address"),
        Malformed(name: "bad podIPs entry", kind: "Pod", yaml: podYAML("bad", body: "status: {podIPs: [{ip: 10.0.0.1}, {ip: nope}]}"),
                  field: "status.podIPs[1].ip", reasonContains: "\"nope\" is not an IP address"),
        Malformed(name: "podIPs[0] differs from podIP", kind: "Pod",
                  yaml: podYAML("bad", body: "status: {podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.2}]}"),
                  field: "status.podIPs[0].ip", reasonContains: "does not match status.podIP"),
        Malformed(name: "two IPv4 podIPs", kind: "Pod", yaml: podYAML("bad", body: "status: {podIPs: [{ip: 10.0.0.1}, {ip: 10.0.0.2}]}"),
                  field: "status.podIPs", reasonContains: "two IPv4 addresses"),
        Malformed(name: "containerPort out of range", kind: "Pod",
                  yaml: podYAML("bad", body: "spec: {containers: [{name: a, ports: [{containerPort: 70000}]}]}"),
                  field: "spec.containers[0].ports[0].containerPort", reasonContains: "70000 is not a port number"),
        Malformed(name: "containerPort missing", kind: "Pod",
                  yaml: podYAML("bad", body: "spec: {containers: [{name: a, ports: [{name: http}]}]}"),
                  field: "spec.containers[0].ports[0].containerPort", reasonContains: "missing"),
        Malformed(name: "container port protocol unknown", kind: "Pod",
                  yaml: podYAML("bad", body: "spec: {containers: [{name: a, ports: [{containerPort: 80, protocol: ICMP}]}]}"),
                  field: "spec.containers[0].ports[0].protocol", reasonContains: "\"ICMP\" is not TCP, UDP or SCTP"),
        Malformed(name: "container port name invalid", kind: "Pod",
                  yaml: podYAML("bad", body: "spec: {containers: [{name: a, ports: [{name: Web_Port, containerPort: 80}]}]}"),
                  field: "spec.containers[0].ports[0].name", reasonContains: "is not a port name"),
        Malformed(name: "duplicate container port name", kind: "Pod",
                  yaml: podYAML("bad", body: "spec: {containers: [{name: a, ports: [{name: http, containerPort: 80}, {name: http, containerPort: 81}]}]}"),
                  field: "spec.containers[0].ports[1].name", reasonContains: "duplicate name \"http\""),
        Malformed(name: "unknown phase", kind: "Pod", yaml: podYAML("bad", body: "status: {phase: Sleeping}"),
                  field: "status.phase", reasonContains: "\"Sleeping\""),
        Malformed(name: "hostNetwork not a boolean", kind: "Pod", yaml: podYAML("bad", body: "spec: {hostNetwork: perhaps}"),
                  field: "spec.hostNetwork", reasonContains: "expected a boolean"),
        Malformed(name: "namespace name not a DNS label", kind: "Namespace",
                  yaml: "apiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_NS}", field: "metadata.name",
                  reasonContains: "is not a DNS-1123 label"),
        Malformed(name: "bad CIDR in ipBlock", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]"),
                  field: "spec.ingress[0].from[0].ipBlock.cidr", reasonContains: "\"10.0.0.0/33\" is not a CIDR"),
        Malformed(name: "ipBlock without cidr", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\negress: [{to: [{ipBlock: {except: [10.0.0.0/24]}}]}]"),
                  field: "spec.egress[0].to[0].ipBlock.cidr", reasonContains: "missing"),
        Malformed(name: "except outside cidr", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]"),
                  field: "spec.ingress[0].from[0].ipBlock.except[0]", reasonContains: "is not inside cidr 10.0.0.0/16"),
        Malformed(name: "except equal to cidr", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]}]"),
                  field: "spec.ingress[0].from[0].ipBlock.except[0]", reasonContains: "strict subset"),
        Malformed(name: "except of the other family", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [\"fd00::/64\"]}}]}]"),
                  field: "spec.ingress[0].from[0].ipBlock.except[0]", reasonContains: "is not inside cidr"),
        Malformed(name: "ipBlock with a selector", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]"),
                  field: "spec.ingress[0].from[0].ipBlock", reasonContains: "may not be combined"),
        Malformed(name: "empty peer", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: [{from: [{}]}]"),
                  field: "spec.ingress[0].from[0]", reasonContains: "empty peer"),
        Malformed(name: "bad selector operator", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {matchExpressions: [{key: app, operator: Equals, values: [a]}]}"),
                  field: "spec.podSelector.matchExpressions[0].operator", reasonContains: "\"Equals\" is not In, NotIn, Exists or DoesNotExist"),
        Malformed(name: "In without values", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: [{from: [{namespaceSelector: {matchExpressions: [{key: env, operator: In}]}}]}]"),
                  field: "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values", reasonContains: "required for In"),
        Malformed(name: "NotIn with empty values", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {matchExpressions: [{key: env, operator: NotIn, values: []}]}"),
                  field: "spec.podSelector.matchExpressions[0].values", reasonContains: "required for NotIn"),
        Malformed(name: "Exists with values", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {matchExpressions: [{key: env, operator: Exists, values: [x]}]}"),
                  field: "spec.podSelector.matchExpressions[0].values", reasonContains: "must be empty for Exists"),
        Malformed(name: "requirement without key", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {matchExpressions: [{operator: Exists}]}"),
                  field: "spec.podSelector.matchExpressions[0].key", reasonContains: "missing"),
        Malformed(name: "endPort without port", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: [{ports: [{endPort: 90}]}]"),
                  field: "spec.ingress[0].ports[0].endPort", reasonContains: "set without port"),
        Malformed(name: "endPort below port", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: [{ports: [{port: 90, endPort: 80}]}]"),
                  field: "spec.ingress[0].ports[0].endPort", reasonContains: "80 is less than port 90"),
        Malformed(name: "endPort with a named port", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\negress: [{ports: [{port: http, endPort: 90}]}]"),
                  field: "spec.egress[0].ports[0].endPort", reasonContains: "named port \"http\""),
        Malformed(name: "port out of range", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: [{ports: [{port: 0}]}]"),
                  field: "spec.ingress[0].ports[0].port", reasonContains: "0 is not a port number"),
        Malformed(name: "port name invalid", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: [{ports: [{port: -http-}]}]"),
                  field: "spec.ingress[0].ports[0].port", reasonContains: "neither a port number nor a port name"),
        Malformed(name: "unknown protocol", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: [{ports: [{protocol: ICMP, port: 1}]}]"),
                  field: "spec.ingress[0].ports[0].protocol", reasonContains: "\"ICMP\" is not TCP, UDP or SCTP"),
        Malformed(name: "bad policyTypes", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\npolicyTypes: [Ingress, Both]"),
                  field: "spec.policyTypes[1]", reasonContains: "\"Both\" is not Ingress or Egress"),
        Malformed(name: "duplicate policyTypes", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\npolicyTypes: [Egress, Egress]"),
                  field: "spec.policyTypes[1]", reasonContains: "duplicate Egress"),
        Malformed(name: "ingress not a list", kind: "NetworkPolicy",
                  yaml: policyYAML("bad", spec: "podSelector: {}\ningress: {from: []}"),
                  field: "spec.ingress", reasonContains: "expected a list"),
    ]

    /// Each malformed object is reported naming kind, object and field, and skipped; its neighbours stay.
    @Test(arguments: malformed)
    func malformedObjectIsReportedAndSkipped(_ c: Malformed) throws {
        let good = [podYAML("good", body: "status: {podIP: 10.0.0.9}"),
                    policyYAML("good", spec: "podSelector: {}"),
                    "apiVersion: v1\nkind: Namespace\nmetadata: {name: good}\n"]
        let text = ([good[0], c.yaml] + good.dropFirst()).joined(separator: "\n---\n")
        let r = ManifestDecoder.decode(text, file: "objects.yaml")
        #expect(r.objects.map(\.key.description) == ["Pod/shop/good", "NetworkPolicy/shop/good", "Namespace/good"])
        let p = try #require(r.problems.first)
        #expect(r.problems.count == 1, "\(r.problems)")
        #expect(p.file == "objects.yaml" && p.kind == c.kind)
        #expect(p.objectName != nil)
        #expect(p.field == c.field, "\(p)")
        #expect(p.reason.contains(c.reasonContains), "\(p.reason)")
    }

    @Test func problemDescriptionNamesObjectAndField() {
        let r = ManifestDecoder.decode(policyYAML("db", spec: "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]"),
                                       file: "np.yaml")
        #expect(r.problems.map(\.description) == [
            #"np.yaml: NetworkPolicy "db": spec.ingress[0].from[0].ipBlock.except[0]: 10.1.0.0/24 is not inside cidr 10.0.0.0/16 (except must be a strict subset)"#])
    }

    // MARK: Store and snapshot

    @Test func storeHoldsTheNewKinds() {
        let text = [podYAML("web", body: "status: {podIP: 10.0.0.5}"), policyYAML("deny", spec: "podSelector: {}"),
                    "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"].joined(separator: "---\n")
        let r = ManifestDecoder.decode(text, file: "all.yaml")
        #expect(r.problems == [])
        let store = ClusterStore()
        for kind in [ObjectKind.pod, .namespace, .networkPolicy] { store.replaceAll(kind, with: r.objects) }
        let s = store.snapshot()
        #expect(s.hasListed(.pod, .namespace, .networkPolicy))
        let podKey = ObjectKey(kind: .pod, namespace: "shop", name: "web")
        #expect(s.pods[podKey]?.podIP == ip("10.0.0.5"))
        #expect(s.namespaces["shop"]?.labels == ["kubernetes.io/metadata.name": "shop"])
        #expect(s.networkPolicies.keys.map(\.description) == ["NetworkPolicy/shop/deny"])
        #expect(Set(s.keys(.pod)) == [podKey] && s.object(podKey)?.pod?.name == "web")
        store.delete(podKey)
        store.delete(ObjectKey(kind: .namespace, name: "shop"))
        #expect(store.snapshot().pods.isEmpty && store.snapshot().namespaces.isEmpty)
    }
}
