import Foundation
import Testing
@testable import KubeAPI

@Suite struct KubeconfigTests {
    static let base64CA = Data("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n".utf8).base64EncodedString()

    static let twoContexts = """
    apiVersion: v1
    kind: Config
    current-context: prod
    clusters:
    - name: prod-cluster
      cluster:
        server: https://10.0.0.1:6443
        certificate-authority-data: \(base64CA)
    - name: lab-cluster
      cluster:
        server: https://lab.example:443/
        insecure-skip-tls-verify: true
    users:
    - name: admin
      user:
        token: abc.def
    - name: node
      user:
        client-certificate: certs/node.crt
        client-key: /abs/node.key
    contexts:
    - name: prod
      context:
        cluster: prod-cluster
        user: admin
        namespace: kube-system
    - name: lab
      context:
        cluster: lab-cluster
        user: node
    """

    @Test func currentContextWithDataAndToken() throws {
        let config = try KubeconfigFile.parse(Self.twoContexts, directory: "/nowhere")
        #expect(config.server == "https://10.0.0.1:6443")
        #expect(config.certificateAuthorityPEM.map { String(decoding: $0, as: UTF8.self) }?.hasPrefix("-----BEGIN CERTIFICATE-----") == true)
        #expect(config.bearerToken == "abc.def")
        #expect(config.clientCertificatePEM == nil && config.clientKeyPEM == nil)
        #expect(config.namespace == "kube-system")
        #expect(!config.insecureSkipTLSVerify)
    }

    @Test func namedContextReadsRelativeFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kubeconfig-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir + "/certs", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "CERT".write(toFile: dir + "/certs/node.crt", atomically: true, encoding: .utf8)
        try "KEY".write(toFile: dir + "/node.key", atomically: true, encoding: .utf8)
        let text = Self.twoContexts.replacingOccurrences(of: "/abs/node.key", with: dir + "/node.key")
        try text.write(toFile: dir + "/config", atomically: true, encoding: .utf8)

        let config = try KubeconfigFile.load(path: dir + "/config", context: "lab")
        #expect(config.server == "https://lab.example:443")   // trailing slash dropped
        #expect(config.clientCertificatePEM == Array("CERT".utf8))
        #expect(config.clientKeyPEM == Array("KEY".utf8))
        #expect(config.insecureSkipTLSVerify)
        #expect(config.bearerToken == nil && config.certificateAuthorityPEM == nil)
    }

    @Test(arguments: [
        ("no current context", "clusters: []\n", nil, "current-context"),
        ("unknown context", twoContexts, "staging", "contexts"),
        ("missing key file", twoContexts, "lab", "users[node].user.client-certificate"),
        ("certificate without key", twoContexts.replacingOccurrences(of: "    client-key: /abs/node.key\n", with: "")
            .replacingOccurrences(of: "client-certificate: certs/node.crt", with: "client-certificate-data: \(base64CA)"),
         "lab", "users[node].user.client-key"),
        ("bad base64", twoContexts.replacingOccurrences(of: base64CA, with: "abc"), nil,
         "clusters[prod-cluster].cluster.certificate-authority-data"),
        ("server not a URL", twoContexts.replacingOccurrences(of: "https://10.0.0.1:6443", with: "10.0.0.1"), nil,
         "clusters[prod-cluster].cluster.server"),
    ] as [(String, String, String?, String)])
    func invalidConfigNamesTheField(name: String, text: String, context: String?, field: String) {
        #expect(throws: KubeAPIConfigError.self, "\(name)") {
            do { _ = try KubeconfigFile.parse(text, directory: "/nowhere", context: context) } catch let e as KubeAPIConfigError {
                #expect(e.field == field, "\(name): \(e)")
                throw e
            }
        }
    }

    @Test func deeplyNestedKubeconfigIsRefusedNamingTheLimit() {
        let text = "apiVersion: v1\nclusters: " + String(repeating: "[", count: 5_000) + "\n"
        #expect { try KubeconfigFile.parse(text, directory: "/nowhere") } throws: { error in
            "\(error)".contains("nested more than 100 levels deep (limit 100)")
        }
    }

    @Test func inClusterFromEnvironmentAndServiceAccount() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sa-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "first-token\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        try "CA".write(toFile: dir + "/ca.crt", atomically: true, encoding: .utf8)
        try "keel-system".write(toFile: dir + "/namespace", atomically: true, encoding: .utf8)

        let env = ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"]
        let config = try KubeAPIConfig.inCluster(environment: env, serviceAccountDirectory: dir)
        #expect(config.server == "https://[fd00::1]:443")
        #expect(config.certificateAuthorityPEM == Array("CA".utf8))
        #expect(config.namespace == "keel-system")
        #expect(config.tokenFile == dir + "/token")

        // The kubelet rotates the token: the next request carries the new one.
        let token = BearerToken(fixed: nil, path: dir + "/token")
        #expect(token.current() == "first-token")
        try "second-token-longer".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        #expect(token.current() == "second-token-longer")

        #expect(throws: KubeAPIConfigError.self) { try KubeAPIConfig.inCluster(environment: [:], serviceAccountDirectory: dir) }
        #expect(throws: KubeAPIConfigError.self) {
            try KubeAPIConfig.inCluster(environment: env, serviceAccountDirectory: dir + "/missing")
        }
    }
}
