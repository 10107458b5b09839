import Foundation
import NIOSSL

/// Where the API server is and how to authenticate to it: from the pod's service account
/// (``inCluster(environment:serviceAccountDirectory:)``) or from a kubeconfig (``KubeconfigFile``).
///
/// Certificates and keys are held as PEM bytes; ``tlsConfiguration()`` turns them into NIOSSL objects,
/// so that parsing stays testable without a TLS stack.
public struct KubeAPIConfig: Sendable, Hashable {
    /// `https://10.96.0.1:443`. `http://` is accepted for `kubectl proxy` and tests.
    public var server: String
    public var certificateAuthorityPEM: [UInt8]?
    public var clientCertificatePEM: [UInt8]?
    public var clientKeyPEM: [UInt8]?
    /// A fixed bearer token (kubeconfig `token`).
    public var bearerToken: String?
    /// A file holding the bearer token, re-read whenever it changes: the kubelet rotates the projected
    /// service-account token (about every hour) and the old one expires.
    public var tokenFile: String?
    public var insecureSkipTLSVerify: Bool
    /// The default namespace of the context or service account (informational: Keel lists all namespaces).
    public var namespace: String?

    public init(server: String, certificateAuthorityPEM: [UInt8]? = nil, clientCertificatePEM: [UInt8]? = nil,
                clientKeyPEM: [UInt8]? = nil, bearerToken: String? = nil, tokenFile: String? = nil,
                insecureSkipTLSVerify: Bool = false, namespace: String? = nil) {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKeyPEM = clientKeyPEM
        self.bearerToken = bearerToken
        self.tokenFile = tokenFile
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.namespace = namespace
    }

    /// The default service-account mount of a pod.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The configuration of a pod: `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` name the
    /// server; `token` (re-read when it changes), `ca.crt` and `namespace` come from the service-account
    /// folder. Same as client-go's `rest.InClusterConfig()`.
    public static func inCluster(environment: [String: String] = ProcessInfo.processInfo.environment,
                                 serviceAccountDirectory: String = serviceAccountDirectory) throws -> KubeAPIConfig {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
              let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty else {
            throw KubeAPIConfigError(source: "environment", field: "KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT",
                                     reason: "not set: not running in a pod")
        }
        let tokenPath = serviceAccountDirectory + "/token"
        // Read once now so that a missing mount fails at start, not at the first request.
        _ = try readFile(tokenPath, source: "service account", field: "token")
        let ca = try readFile(serviceAccountDirectory + "/ca.crt", source: "service account", field: "ca.crt")
        let namespace = (try? String(contentsOfFile: serviceAccountDirectory + "/namespace", encoding: .utf8))   // optional, as in client-go
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        let hostPart = host.contains(":") ? "[\(host)]" : host   // IPv6 service IP
        return KubeAPIConfig(server: "https://\(hostPart):\(port)", certificateAuthorityPEM: ca,
                             tokenFile: tokenPath, namespace: namespace)
    }

    /// The NIOSSL client configuration: the CA as the only trust root (the system roots when there
    /// is none), the client certificate and key when given.
    public func tlsConfiguration() throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = certificateAuthorityPEM {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
        }
        if let cert = clientCertificatePEM, let key = clientKeyPEM {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(cert).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
        }
        if insecureSkipTLSVerify { tls.certificateVerification = .none }
        return tls
    }

    static func readFile(_ path: String, source: String, field: String) throws -> [UInt8] {
        do {
            return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw KubeAPIConfigError(source: source, field: field, reason: "cannot read \(path): \(error.localizedDescription)")
        }
    }
}

/// A configuration that cannot be used, naming where it came from and the field.
public struct KubeAPIConfigError: Error, Hashable, CustomStringConvertible {
    /// `kubeconfig /root/.kube/config`, `service account`, `environment`.
    public var source: String
    /// `users[admin].user.client-key`, `current-context`.
    public var field: String
    public var reason: String
    public init(source: String, field: String, reason: String) {
        self.source = source
        self.field = field
        self.reason = reason
    }
    public var description: String { "\(source): \(field): \(reason)" }
}
