import Foundation
import NetnsHarness
import Testing

/// keelctl as an operator runs it: the built binary over a manifest folder.
@Suite struct KeelctlTests {
    static let manifests = """
        apiVersion: v1
        kind: Node
        metadata: {name: node1}
        spec: {podCIDR: 10.244.1.0/24}
        status: {addresses: [{type: InternalIP, address: 192.168.50.11}]}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: web, namespace: shop, labels: {app: web}}
        spec: {nodeName: node1, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
        status: {podIP: 10.244.1.10}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: client, namespace: shop, labels: {app: client}}
        spec: {nodeName: node1, containers: [{name: c}]}
        status: {podIP: 10.244.1.11}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: other, namespace: shop, labels: {app: other}}
        spec: {nodeName: node1, containers: [{name: c}]}
        status: {podIP: 10.244.1.12}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: web-from-client, namespace: shop}
        spec:
          podSelector: {matchLabels: {app: web}}
          ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: http}]}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: shop}
        spec: {clusterIP: 10.96.0.80, ports: [{name: http, port: 80, targetPort: http}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: broken, namespace: shop}
        spec: {clusterIP: 10.96.0.999, ports: [{port: 80}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
        addressType: IPv4
        ports: [{name: http, port: 8080, protocol: TCP}]
        endpoints: [{addresses: [10.244.1.10], nodeName: node1}]

        """

    func keelctl(_ args: [String], manifests: String = Self.manifests) throws -> ProcessResult {
        let dir = NSTemporaryDirectory() + "keelctl-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try manifests.write(toFile: dir + "/all.yaml", atomically: true, encoding: .utf8)
        return try NamespaceProcess.run([CNIRunner.keelPluginDirectory + "/keelctl"] + args.map { $0 == "DIR" ? dir : $0 })
    }

    @Test func explainNamesTheDecidingRule() throws {
        let allowed = try keelctl(["policy", "explain", "--manifests", "DIR", "--from", "shop/client", "--to", "shop/web", "--port", "8080/TCP"])
        #expect(allowed.succeeded)
        #expect(allowed.stdout.contains("ALLOWED") && allowed.stdout.contains("shop/web-from-client: ingress[0]"))
        let denied = try keelctl(["policy", "explain", "--manifests", "DIR", "--from", "shop/other", "--to", "shop/web", "--port", "8080",
                                  "--output", "json"])
        #expect(denied.stdout.contains("\"allowed\":false"))
    }

    @Test func matrixMatchesThePolicy() throws {
        let r = try keelctl(["policy", "matrix", "--manifests", "DIR", "--port", "8080/TCP", "--output", "json"])
        // Pods sorted: client, other, web. Only client -> web and web -> web (itself) reach web.
        #expect(r.stdout.contains("\"pods\":[\"shop/client\",\"shop/other\",\"shop/web\"]"), "\(r)")
        #expect(r.stdout.contains("\"allowed\":[[true,true,true],[true,true,false],[true,true,true]]"), "\(r)")
    }

    @Test func renderShowsBothTablesAndValidateReportsTheBrokenObject() throws {
        let r = try keelctl(["render", "--manifests", "DIR", "--node", "node1"])
        #expect(r.succeeded)
        #expect(r.stdout.contains("add table ip keel-proxy") && r.stdout.contains("add table ip keel-policy"))
        #expect(r.stdout.contains("10.96.0.80 . tcp . 80") && r.stdout.contains("10.244.1.10 . 8080"))
        #expect(r.stdout.contains("10.244.1.11 . tcp . 8080"), "the named port resolved for the web pod")
        #expect(r.stdout.contains("add set ip keel-proxy service-cidrs { type ipv4_addr; flags interval; }\n"), "no range given, none set")
        let ranged = try keelctl(["render", "--manifests", "DIR", "--node", "node1", "--service-cidr", "10.96.0.0/16"])
        #expect(ranged.stdout.contains("add element ip keel-proxy service-cidrs { 10.96.0.0-10.96.255.255 }"), "\(ranged)")
        #expect(ranged.stdout.contains("add element ip keel-proxy cluster-ips { 10.96.0.80"), "\(ranged)")
        let v = try keelctl(["validate", "--manifests", "DIR"])
        #expect(v.exitStatus == 1)
        #expect(v.stdout.contains("Service \"broken\": spec.clusterIP"))
    }

    /// Only warnings: the objects are served (exit 0) unless --strict; errors and warnings apart, in text and JSON.
    @Test func validateSeparatesErrorsFromWarnings() throws {
        let warnOnly = """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop}
            spec: {clusterIPs: [10.96.0.80, "fd00::80"], ports: [{name: http, port: 80, targetPort: 0}]}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: web-v6, namespace: shop, labels: {kubernetes.io/service-name: web}}
            addressType: IPv6
            endpoints: [{addresses: ["fd00::10"]}]

            """
        let v = try keelctl(["validate", "--manifests", "DIR"], manifests: warnOnly)
        #expect(v.exitStatus == 0, "\(v)")
        #expect(v.stdout.contains("warning: all.yaml: Service \"web\": spec.clusterIPs[1]: fd00::80 is IPv6: ignored (keeld's data path is IPv4-only)"), "\(v)")
        #expect(v.stdout.contains("warning: all.yaml: Service \"web\": spec.ports[0].targetPort: 0 is no port: taken as port 80"), "\(v)")
        #expect(v.stdout.contains("warning: all.yaml: EndpointSlice \"web-v6\": addressType: IPv6: ignored"), "\(v)")
        #expect(v.stdout.contains("services: 1, endpoint slices: 1") && v.stdout.contains("0 error(s) (objects skipped), 3 warning(s) (objects kept)"), "\(v)")
        let strict = try keelctl(["validate", "--manifests", "DIR", "--strict"], manifests: warnOnly)
        #expect(strict.exitStatus == 1, "\(strict)")

        let both = try keelctl(["validate", "--manifests", "DIR", "--output", "json"],
                               manifests: warnOnly + "---\napiVersion: v1\nkind: Service\nmetadata: {name: Web2, namespace: shop}\nspec: {ports: [{port: 80}]}\n")
        #expect(both.exitStatus == 1, "\(both)")
        #expect(both.stdout.contains(#"{"severity":"error","file":"all.yaml","kind":"Service","object":"Web2","field":"metadata.name","reason":"\"Web2\" is not a DNS-1035 label"#), "\(both)")
        #expect(both.stdout.contains(#"{"severity":"warning","file":"all.yaml","kind":"EndpointSlice","object":"web-v6","field":"addressType""#), "\(both)")
    }

    /// Two running pods of node1 report one address (an address reused before the old pod's
    /// object went), and different policies isolate them: keeld programs the address to allow
    /// nothing on the side where their rules differ, and validate and render say so, naming the pods.
    @Test func podsSharingAnAddressAreReported() throws {
        let manifests = """
            apiVersion: v1
            kind: Node
            metadata: {name: node1}
            spec: {podCIDR: 10.244.1.0/24}
            status: {addresses: [{type: InternalIP, address: 192.168.50.11}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: old, namespace: shop, labels: {app: web}}
            spec: {nodeName: node1, containers: [{name: c}]}
            status: {podIP: 10.244.1.10, phase: Running}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: new, namespace: shop, labels: {app: db}}
            spec: {nodeName: node1, containers: [{name: c}]}
            status: {podIP: 10.244.1.10, phase: Running}
            ---
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: web-open, namespace: shop}
            spec:
              podSelector: {matchLabels: {app: web}}
              ingress: [{}]
            ---
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: db-closed, namespace: shop}
            spec:
              podSelector: {matchLabels: {app: db}}
              policyTypes: [Ingress]

            """
        let validate = try keelctl(["validate", "--manifests", "DIR"], manifests: manifests)
        #expect(validate.stdout.contains("warning: node node1: pods shop/new, shop/old share address 10.244.1.10 with different ingress rules"),
                "\(validate.stdout)")
        let render = try keelctl(["render", "--manifests", "DIR", "--node", "node1"], manifests: manifests)
        #expect(render.succeeded)
        #expect(render.stderr.contains("share address 10.244.1.10"), "\(render.stderr)")
        #expect(!render.stdout.contains("10.244.1.10 . ") , "no allow element for the shared address")
    }
}
