import Glibc
import NetAddress
import NetnsHarness
import Testing

// The built keeld with a manifest nested 5,000 levels deep in its folder (issue 13, item 8): before,
// it died of a stack overflow before logging anything, at every restart. Now the file is a logged,
// skipped problem naming it and the limit, and keeld serves the rest of the folder.
@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct KeeldManifestBoundsTests {
    @Test func deeplyNestedManifestsAreSkippedWhileKeeldKeepsServing() throws {
        try NetnsLab.with(prefix: "keel-dec") { lab in
            let cluster = try TestCluster(lab: lab, nodeCount: 2)
            let overlay = try OverlayLab(cluster: cluster, backend: "host-gw")
            let node1 = cluster.nodes[0]
            // In the folder before keeld starts: the first read must survive it (5,000 nested mappings,
            // 20 KB: the keeld before the bounds died of SIGSEGV on it, at every start).
            try overlay.writeManifest("bomb.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: bomb, namespace: default}\nspec: "
                                      + String(repeating: "{a: ", count: 5_000) + String(repeating: "}", count: 5_000) + "\n")
            try overlay.startAgents(extra: ["--proxy", "--cluster-cidr", "10.244.0.0/16"])
            try overlay.waitForPeers()   // the Nodes of the folder are served

            // While it runs: a deep JSON file, and a Service that must still reach the proxy.
            try overlay.writeManifest("bomb2.json", #"{"apiVersion":"v1","kind":"Node","metadata":"# + String(repeating: "{\"a\":", count: 5_000))
            try overlay.writeManifest("web.yaml", """
                apiVersion: v1
                kind: Service
                metadata: {name: web, namespace: default}
                spec:
                  clusterIP: 10.96.77.10
                  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]
                ---
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
                addressType: IPv4
                endpoints: [{addresses: ["10.244.2.99"], conditions: {ready: true}, nodeName: \(cluster.nodes[1].name)}]
                ports: [{name: http, protocol: TCP, port: 8080}]

                """)
            try waitFor("the Service in node1's proxy table", timeout: 15) {
                try node1.namespace.exec(["nft", "list", "table", "ip", "keel-proxy"]).stdout.contains("10.96.77.10")
            }
            try waitFor("both deep files logged", timeout: 10) {
                let log = overlay.agentLog(node1.name)
                return log.contains("bomb.yaml") && log.contains("bomb2.json")
            }
            let log = overlay.agentLog(node1.name).split(separator: "\n")
            #expect(log.contains { $0.contains("bomb.yaml: document 1: nested more than 100 levels deep (limit 100)") }, "\(log)")
            #expect(log.contains { $0.contains("bomb2.json: document 1: nested more than 100 levels deep (limit 100)") }, "\(log)")
            for node in cluster.nodes {
                #expect(overlay.agents[node.name]?.isRunning == true, "keeld on \(node.name) is still running")
            }
            let health = try TrafficProbe.httpGet(from: node1.namespace, to: IPAddress("127.0.0.1")!, port: 10256, path: "/healthz")
            #expect(health.reply?.hasPrefix("HTTP/1.") == true && health.reply?.contains(" 200 ") == true, "\(health)")
        }
    }
}
