import Foundation
import NetnsHarness
import Testing

/// keelctl warns about what keeld's policy enforcer could not program as asked.
@Suite struct KeelctlPolicyWarningTests {
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
        let dir = NSTemporaryDirectory() + "keelctl-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try manifests.write(toFile: dir + "/all.yaml", atomically: true, encoding: .utf8)
        let keelctl = CNIRunner.keelPluginDirectory + "/keelctl"

        let validate = try NamespaceProcess.run([keelctl, "validate", "--manifests", dir])
        #expect(validate.stdout.contains("warning: node node1: pods shop/new, shop/old share address 10.244.1.10 with different ingress rules"),
                "\(validate.stdout)")
        let render = try NamespaceProcess.run([keelctl, "render", "--manifests", dir, "--node", "node1"])
        #expect(render.succeeded)
        #expect(render.stderr.contains("share address 10.244.1.10"), "\(render.stderr)")
        #expect(!render.stdout.contains("10.244.1.10 . ") , "no allow element for the shared address")
    }
}
