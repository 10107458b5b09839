import Cluster
import Foundation
import Logging
import NetAddress
import Testing

/// Kubernetes' validation rules as keeld and `keelctl validate` apply them (one mechanism: the decoder's):
/// errors skip the object, warnings keep it and say what keeld ignores or what Kubernetes would refuse.
@Suite struct ValidationRulesTests {
    /// One decoded document: its objects, and its problems as `severity field: reason`.
    struct Outcome {
        var objects: [ClusterObject]
        var problems: [ManifestProblem]
        var errors: [String] { problems.filter(\.isError).map { "\($0.field): \($0.reason)" } }
        var warnings: [String] { problems.filter { !$0.isError }.map { "\($0.field): \($0.reason)" } }
        var kept: Bool { !objects.isEmpty }
    }

    static func decode(_ yaml: String) -> Outcome {
        let (objects, problems) = ManifestDecoder.decode(yaml, file: "t.yaml")
        return Outcome(objects: objects, problems: problems)
    }

    static func service(_ name: String = "web", namespace: String = "default", metadata: String = "", spec: String,
                        status: String? = nil) -> Outcome {
        decode("""
            apiVersion: v1
            kind: Service
            metadata:
              name: "\(name)"
              namespace: "\(namespace)"
            \(metadata.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            spec:
            \(spec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            \(status.map { "status:\n  " + $0 } ?? "")
            """)
    }

    static let plainSpec = "clusterIP: 10.96.0.10\nports: [{port: 80}]"

    // MARK: names and metadata

    @Test(arguments: [
        // (kind line, name, kept, warned)
        ("apiVersion: v1\nkind: Service", "web", true, false),
        ("apiVersion: v1\nkind: Service", "1web", true, true),        // DNS-1123 label, not DNS-1035: served, said
        ("apiVersion: v1\nkind: Service", "Web", false, false),
        ("apiVersion: v1\nkind: Service", "web.shop", false, false),  // a label, no dots
        ("apiVersion: v1\nkind: Service", String(repeating: "a", count: 63), true, false),
        ("apiVersion: v1\nkind: Service", String(repeating: "a", count: 64), false, false),
        ("apiVersion: v1\nkind: Namespace", "shop", true, false),
        ("apiVersion: v1\nkind: Namespace", "shop.eu", false, false),
        ("apiVersion: v1\nkind: Node", "node1.example.com", true, false),
        ("apiVersion: v1\nkind: Node", "Node_1", false, false),
        ("apiVersion: v1\nkind: Pod", "web-7d9f.abc", true, false),
        ("apiVersion: v1\nkind: Pod", "web-", false, false),
        ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice", "web-abc.x", true, false),
        ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy", "allow.dns", true, false),
        ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy", String(repeating: "a.", count: 127) + "a", false, false),
    ])
    func namesFollowTheKindsRule(kindLines: String, name: String, kept: Bool, warned: Bool) {
        let body: String = switch kindLines {
        case let k where k.hasSuffix("Service"): "spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}"
        case let k where k.hasSuffix("Node"): "status: {addresses: [{type: InternalIP, address: 10.0.0.1}]}"
        case let k where k.hasSuffix("EndpointSlice"): "addressType: IPv4\nendpoints: []"
        default: ""
        }
        let namespaced = !kindLines.hasSuffix("Node") && !kindLines.hasSuffix("Namespace")
        let o = Self.decode("\(kindLines)\nmetadata:\n  name: \"\(name)\"\n\(namespaced ? "  namespace: default\n" : "")"
            + "  labels: {kubernetes.io/service-name: web}\n\(body)")
        #expect(o.kept == kept, "\(o.problems)")
        #expect(o.problems.contains { $0.field == "metadata.name" } == (!kept || warned), "\(o.problems)")
        #expect(o.problems.contains { !$0.isError } == warned, "\(o.problems)")
    }

    @Test func namespaceAndLabelsAndAnnotations() {
        #expect(Self.service(namespace: "Shop", spec: Self.plainSpec).errors == [
            "metadata.namespace: \"Shop\" is not a DNS-1123 label (at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric)"])
        // Kubernetes accepts an empty value, a prefixed key, dots and underscores in values.
        let fine = Self.service(metadata: """
            labels: {app: "", example.com/tier: front_end.v1, "A-b_c.d": x}
            annotations: {keel.dev/vtep-mac: "02:42:0a:00:00:01", Example.COM/Owner: anyone}
            """, spec: Self.plainSpec)
        #expect(fine.kept && fine.problems.isEmpty, "\(fine.problems)")

        let bad = Self.service(metadata: """
            labels: {"app/": x, "-app": x, "a/b/c": x, "Ex_ample.com/app": x, tier: "front end", long: "\(String(repeating: "v", count: 64))"}
            annotations: {"bad key": x}
            """, spec: Self.plainSpec)
        #expect(!bad.kept)
        #expect(bad.errors.count == 7, "\(bad.errors)")
        #expect(bad.errors.contains("metadata.labels[tier]: \"front end\" is not a label value (at most 63 of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending alphanumeric, or empty)"))
        #expect(bad.errors.contains { $0.hasPrefix("metadata.labels: key \"Ex_ample.com/app\": the prefix") })
        #expect(bad.errors.contains { $0.hasPrefix("metadata.annotations: key \"bad key\"") })
        #expect(bad.errors.contains { $0.hasPrefix("metadata.labels[long]:") })

        let big = Self.service(metadata: "annotations: {a: \"\(String(repeating: "x", count: 256 * 1024))\"}", spec: Self.plainSpec)
        #expect(big.errors == ["metadata.annotations: 262145 bytes (at most 262144, keys and values together)"])
        // A Service selector is a label map too.
        #expect(Self.service(spec: "selector: {app: \"web server\"}\n" + Self.plainSpec).errors
                    == ["spec.selector[app]: \"web server\" is not a label value (at most 63 of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending alphanumeric, or empty)"])
        // A namespace on a cluster-scoped kind is ignored, not an error.
        let node = Self.decode("apiVersion: v1\nkind: Node\nmetadata: {name: n1, namespace: default}\nstatus: {addresses: [{type: InternalIP, address: 10.0.0.1}]}")
        #expect(node.kept && node.warnings == ["metadata.namespace: ignored: Node is cluster-scoped"])
    }

    // MARK: IPv6 while the data path is IPv4-only: kept, with a warning

    @Test func ipv6PartsAreKeptAndWarnedAbout() throws {
        let dual = Self.service(spec: """
            ipFamilyPolicy: PreferDualStack
            ipFamilies: [IPv4, IPv6]
            clusterIPs: [10.96.0.10, "fd00::10"]
            externalIPs: [192.168.1.5, "2001:db8::5"]
            ports: [{port: 80}]
            """)
        #expect(dual.errors.isEmpty)
        #expect(dual.warnings == [
            "spec.externalIPs[1]: 2001:db8::5 is IPv6: ignored (keeld's data path is IPv4-only)",
            "spec.clusterIPs[1]: fd00::10 is IPv6: ignored (keeld's data path is IPv4-only)",
        ])
        guard case .service(let s)? = dual.objects.first else { Issue.record("no service"); return }
        #expect(s.clusterIPs == [ip("10.96.0.10"), ip("fd00::10")], "the model keeps what was written")

        let v6only = Self.service(spec: "clusterIP: \"fd00::10\"\nports: [{port: 80}]")
        #expect(v6only.kept && v6only.warnings == ["spec.clusterIP: fd00::10 is IPv6: ignored (keeld's data path is IPv4-only)"])

        let slice = Self.decode("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: web-v6, namespace: default, labels: {kubernetes.io/service-name: web}}
            addressType: IPv6
            endpoints: [{addresses: ["fd00::1"]}]
            """)
        #expect(slice.kept && slice.warnings == ["addressType: IPv6: ignored (keeld's data path is IPv4-only)"])
        let fqdn = Self.decode("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: web-names, namespace: default, labels: {kubernetes.io/service-name: web}}
            addressType: FQDN
            endpoints: [{addresses: [db.example.com]}]
            """)
        #expect(fqdn.kept && fqdn.warnings.count == 1 && fqdn.warnings[0].hasPrefix("addressType: FQDN: ignored"))

        let pod = Self.decode("""
            apiVersion: v1
            kind: Pod
            metadata: {name: p, namespace: default}
            spec: {containers: [{name: main}]}
            status: {podIP: 10.244.0.5, podIPs: [{ip: 10.244.0.5}, {ip: "fd00:244::5"}]}
            """)
        #expect(pod.kept && pod.warnings == ["status.podIPs[1].ip: fd00:244::5 is IPv6: traffic to and from it is not policed (keeld's data path is IPv4-only)"])

        let policy = Self.decode("""
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: np, namespace: default}
            spec:
              podSelector: {}
              ingress: [{from: [{ipBlock: {cidr: "2001:db8::/32"}}, {ipBlock: {cidr: 10.0.0.0/8}}]}]
            """)
        #expect(policy.kept && policy.warnings == [
            "spec.ingress[0].from[0].ipBlock.cidr: 2001:db8::/32 is IPv6: this peer allows nothing (keeld's data path is IPv4-only)"])
    }

    // MARK: Service spec

    @Test func ipFamilyPolicyAndFamilies() {
        #expect(Self.service(spec: "ipFamilyPolicy: DualStack\n" + Self.plainSpec).errors
                    == ["spec.ipFamilyPolicy: \"DualStack\" is not SingleStack, PreferDualStack or RequireDualStack"])
        #expect(Self.service(spec: "ipFamilyPolicy: SingleStack\nclusterIPs: [10.96.0.10, \"fd00::10\"]\nports: [{port: 80}]").errors
                    == ["spec.ipFamilyPolicy: SingleStack with two families (spec.ipFamilies or spec.clusterIPs)"])
        #expect(Self.service(spec: "ipFamilies: [IPv6]\n" + Self.plainSpec).errors
                    == ["spec.ipFamilies[0]: IPv6 does not match spec.clusterIPs[0] 10.96.0.10"])
        #expect(Self.service(spec: "ipFamilies: [IPv4, IPv4]\nports: [{port: 80}]").errors == ["spec.ipFamilies[1]: duplicate IPv4"])
        let required = Self.service(spec: "ipFamilyPolicy: RequireDualStack\n" + Self.plainSpec)
        #expect(required.kept && required.warnings == [
            "spec.ipFamilyPolicy: RequireDualStack: only the IPv4 family is served (keeld's data path is IPv4-only)"])
        #expect(Self.service(spec: "ipFamilyPolicy: SingleStack\nipFamilies: [IPv4]\n" + Self.plainSpec).problems.isEmpty)
    }

    @Test func portsAndPolicies() throws {
        // targetPort 0: Kubernetes defaults it to the port; served so, and said.
        let zero = Self.service(spec: "clusterIP: 10.96.0.10\nports: [{name: a, port: 80, targetPort: 0}, {name: b, port: 81}]")
        #expect(zero.errors.isEmpty)
        #expect(zero.warnings == ["spec.ports[0].targetPort: 0 is no port: taken as port 80, as Kubernetes defaults it"])
        guard case .service(let s)? = zero.objects.first else { Issue.record("no service"); return }
        #expect(s.ports.map(\.targetPort) == [.number(80), .number(81)])
        // The API's JSON can carry "" (Foundation keeps it; YAML reads a quoted "" as null, i.e. absent).
        let json = ManifestDecoder.decodeJSON(Data(#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"clusterIP":"10.96.0.10","ports":[{"port":81,"targetPort":""}]}}"#.utf8), origin: "apiserver")
        let fromAPI = ManifestDecoder.combine([json])
        #expect(fromAPI.objects.count == 1 && fromAPI.problems.map(\.reason) == [#""" is no port: taken as port 81, as Kubernetes defaults it"#])

        let clusterIPNodePort = Self.service(spec: "clusterIP: 10.96.0.10\nports: [{port: 80, nodePort: 30080}]")
        #expect(clusterIPNodePort.kept && clusterIPNodePort.warnings == [
            "spec.ports[0].nodePort: ignored: a ClusterIP Service has no node ports (Kubernetes refuses one)"])
        #expect(Self.service(spec: """
            type: NodePort
            ports: [{name: a, port: 80, nodePort: 30080}, {name: b, port: 81, nodePort: 30080}, {name: c, port: 81, protocol: UDP, nodePort: 30080}]
            """).errors == ["spec.ports[1].nodePort: duplicate node port 30080/TCP (also spec.ports[0])"])

        let mixed = Self.service(spec: """
            type: Balanced
            sessionAffinity: Sticky
            externalTrafficPolicy: Global
            internalTrafficPolicy: local
            ports: [{name: a, port: 0}, {name: a, port: 65536}, {name: b, port: 80}, {name: c, port: 80}, {name: D, port: 81}]
            """)
        #expect(mixed.errors == [
            "spec.type: \"Balanced\" is not ClusterIP, NodePort, LoadBalancer or ExternalName",
            "spec.ports[0].port: 0 is not a port number (1-65535)",
            "spec.ports[1].name: duplicate name \"a\" (also spec.ports[0])",
            "spec.ports[1].port: 65536 is not a port number (1-65535)",
            "spec.ports[3].port: duplicate port 80/TCP (also spec.ports[2])",
            "spec.ports[4].name: \"D\" is not a DNS label (lowercase letters, digits and '-')",
            "spec.sessionAffinity: \"Sticky\" is not None or ClientIP",
            "spec.externalTrafficPolicy: \"Global\" is not Cluster or Local",
            "spec.internalTrafficPolicy: \"local\" is not Cluster or Local",
        ])

        let affinity = Self.service(spec: "sessionAffinity: None\nsessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n" + Self.plainSpec)
        #expect(affinity.kept && affinity.warnings == ["spec.sessionAffinityConfig: ignored: sessionAffinity is None (Kubernetes refuses the config then)"])

        #expect(Self.service(spec: "clusterIP: 10.96.0.10\nexternalIPs: [127.0.0.1, 0.0.0.0, 169.254.169.254, 224.0.0.5]\nports: [{port: 80}]").errors == [
            "spec.externalIPs[0]: 127.0.0.1 may not be in the loopback range (127.0.0.0/8)",
            "spec.externalIPs[1]: 0.0.0.0 may not be unspecified (0.0.0.0)",
            "spec.externalIPs[2]: 169.254.169.254 may not be in the link-local range (169.254.0.0/16)",
            "spec.externalIPs[3]: 224.0.0.5 may not be in the link-local multicast range (224.0.0.0/24)",
        ])
        // What only NodePort/LoadBalancer Services use, and what keeld never serves: kept, said.
        let ignored = Self.service(spec: """
            clusterIP: 10.96.0.10
            externalTrafficPolicy: Local
            healthCheckNodePort: 31000
            loadBalancerSourceRanges: [10.0.0.0/8]
            ports: [{port: 80}]
            """, status: "loadBalancer: {ingress: [{ip: 192.0.2.10}]}")
        #expect(ignored.kept && ignored.warnings == [
            "spec.externalTrafficPolicy: Local: ignored for a ClusterIP Service without external IPs (Kubernetes refuses it there)",
            "spec.loadBalancerSourceRanges: ignored: only a LoadBalancer Service has them (Kubernetes refuses them on a ClusterIP Service)",
            "status.loadBalancer.ingress: ignored: a ClusterIP Service is not a LoadBalancer",
            "spec.healthCheckNodePort: 31000: ignored (keeld answers no load-balancer health checks)",
        ])
        // A ClusterIP Service with external IPs is externally accessible: its policy is used.
        let withExternalIPs = Self.service(spec: "clusterIP: 10.96.0.10\nexternalIPs: [192.0.2.10]\nexternalTrafficPolicy: Local\nports: [{port: 80}]")
        #expect(withExternalIPs.kept && withExternalIPs.warnings.isEmpty, "\(withExternalIPs.warnings)")
        let lb = Self.service(spec: "type: LoadBalancer\nclusterIP: 10.96.0.10\nexternalTrafficPolicy: Local\nloadBalancerSourceRanges: [10.0.0.0/8]\nports: [{port: 80}]",
                              status: "loadBalancer: {ingress: [{ip: 192.0.2.10}]}")
        #expect(lb.problems.isEmpty, "\(lb.problems)")
        // No cluster IP in a manifest: nothing to program (the API server would allocate one); headless is fine.
        #expect(Self.service(spec: "ports: [{port: 80}]").warnings == [
            "spec.clusterIP: missing: nothing is programmed for this Service until it has one (the API server allocates it; a manifest writes it)"])
        #expect(Self.service(spec: "clusterIP: None\nports: [{port: 80}]").problems.isEmpty)

        #expect(Self.service(spec: "type: ExternalName\nexternalName: Db_Host").errors
                    == ["spec.externalName: \"Db_Host\" is not a DNS-1123 subdomain (lowercase a-z, 0-9, '-' and '.', at most 253)"])
        #expect(Self.service(spec: "type: ExternalName\nexternalName: db.example.com.").problems.isEmpty)
    }

    // MARK: EndpointSlice, Pod, NetworkPolicy

    static func slice(labels: String = "{kubernetes.io/service-name: web}", _ rest: String) -> Outcome {
        decode("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1, namespace: default, labels: \(labels)}\n" + rest)
    }

    @Test func endpointSliceRules() {
        #expect(Self.slice("addressType: IPv4\nendpoints: [{addresses: [127.0.0.1]}, {addresses: [10.0.0.1], hostname: Web_1, nodeName: Node_1}]").errors == [
            "endpoints[0].addresses[0]: 127.0.0.1 may not be in the loopback range (127.0.0.0/8)",
            "endpoints[1].hostname: \"Web_1\" is not a DNS-1123 label (at most 63 of a-z, 0-9 and '-', starting and ending alphanumeric)",
            "endpoints[1].nodeName: \"Node_1\" is not a node name (a DNS-1123 subdomain)",
        ])
        // Port names are unique whatever the protocol (a Service's port names are).
        #expect(Self.slice("addressType: IPv4\nendpoints: []\nports: [{name: dns, protocol: UDP, port: 53}, {name: dns, protocol: TCP, port: 53}]").errors
                    == ["ports[1].name: duplicate port name \"dns\" (also ports[0])"])
        let orphan = Self.slice(labels: "{app: web}", "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}]")
        #expect(orphan.kept && orphan.warnings == ["metadata.labels: no kubernetes.io/service-name label: the slice belongs to no Service and is not used"])
        #expect(Self.slice("addressType: IPv4\nendpoints: [{addresses: [10.0.0.1, 10.0.0.2]}]").warnings
                    == ["endpoints[0].addresses[1]: ignored: only an endpoint's first address is used"])
        let many = (0..<101).map { "10.0.\($0 / 250).\($0 % 250 + 1)" }.joined(separator: ", ")
        #expect(Self.slice("addressType: IPv4\nendpoints: [{addresses: [\(many)]}]").errors == ["endpoints[0].addresses: 101 addresses (at most 100)"])
    }

    @Test func podRules() {
        let pod = Self.decode("""
            apiVersion: v1
            kind: Pod
            metadata: {name: p, namespace: default}
            spec: {nodeName: node1, containers: [{ports: [{containerPort: 80}]}, {name: Main}, {name: side}, {name: side}]}
            """)
        #expect(pod.kept)
        #expect(pod.warnings == ["spec.containers[0].name: missing (Kubernetes requires a container name)",
                                 "spec.containers[1].name: \"Main\" is not a DNS-1123 label (Kubernetes refuses it)",
                                 "spec.containers[3].name: duplicate name \"side\" (also spec.containers[2]; Kubernetes refuses it)"])
        #expect(Self.decode("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: \"node 1\"}").errors
                    == ["spec.nodeName: \"node 1\" is not a node name (a DNS-1123 subdomain)"])
    }

    @Test func selectorRules() {
        let policy = Self.decode("""
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: np, namespace: default}
            spec:
              podSelector: {matchLabels: {app: "web server"}}
              ingress: [{from: [{podSelector: {matchExpressions: [{key: "a b", operator: Exists}]}}]}]
            """)
        #expect(!policy.kept)
        #expect(policy.errors == [
            "spec.podSelector.matchLabels[app]: \"web server\" is not a label value (at most 63 of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending alphanumeric, or empty)",
            "spec.ingress[0].from[0].podSelector.matchExpressions[0].key: \"a b\": the name part must be at most 63 of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending alphanumeric",
        ])
        // A bad value inside matchExpressions can match no label: the policy is kept (dropping it would open its pods).
        let kept = Self.decode("""
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: np, namespace: default}
            spec:
              podSelector: {matchExpressions: [{key: tier, operator: In, values: [front, "back end"]}]}
            """)
        #expect(kept.kept && kept.warnings == [
            "spec.podSelector.matchExpressions[0].values[1]: \"back end\" is not a label value (at most 63 of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending alphanumeric, or empty): no label matches it"])
    }

    // MARK: keeld: the same problems, logged with object and field

    @Test func keeldLogsWarningsAndServesTheObject() throws {
        let dir = NSTemporaryDirectory() + "keel-validation-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: default}
            spec: {clusterIPs: [10.96.0.10, "fd00::10"], ports: [{port: 80}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: Bad, namespace: default}
            spec: {clusterIP: 10.96.0.11, ports: [{port: 80}]}
            """.write(toFile: dir + "/svc.yaml", atomically: true, encoding: .utf8)
        let (logger, record) = capturingLogger()
        let store = ClusterStore()
        let problems = ManifestDirectorySource(directory: dir, logger: logger).loadOnce(into: store)
        #expect(problems.map(\.severity) == [.warning, .error])
        #expect(store.snapshot().services.keys.map(\.name) == ["web"])
        let lines = record.all.filter { $0.level == .warning }
        #expect(lines.count == 2)
        let warning = try #require(lines.first { $0.metadata["problem.severity"] == "warning" })
        #expect(warning.message == "accepted with a warning: svc.yaml: Service \"web\": spec.clusterIPs[1]: fd00::10 is IPv6: ignored (keeld's data path is IPv4-only)")
        #expect(warning.metadata["object.name"] == "web" && warning.metadata["object.kind"] == "Service" && warning.metadata["field"] == "spec.clusterIPs[1]")
        let error = try #require(lines.first { $0.metadata["problem.severity"] == "error" })
        #expect(error.message.hasPrefix("skipped: svc.yaml: Service \"Bad\": metadata.name:"))
    }
}
