import Cluster
import Foundation
import Yams

/// A kubeconfig file (`~/.kube/config`, `$KUBECONFIG`): clusters, users and contexts by name, and the
/// current context. Only what a client needs to reach the server is read.
///
/// Relative file paths (`certificate-authority`, `client-certificate`, `client-key`, `tokenFile`) are
/// relative to the kubeconfig's folder, as kubectl resolves them. `*-data` fields are base64 PEM and win
/// over the file fields, as in client-go.
public enum KubeconfigFile {
    /// Reads `path` and resolves `context` (the file's `current-context` when nil).
    public static func load(path: String, context: String? = nil) throws -> KubeAPIConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KubeAPIConfigError(source: "kubeconfig \(path)", field: "", reason: "cannot read: \(error.localizedDescription)")
        }
        return try parse(text, directory: (path as NSString).deletingLastPathComponent, context: context, source: "kubeconfig \(path)")
    }

    /// Parses kubeconfig text; files it names are read relative to `directory`.
    public static func parse(_ text: String, directory: String, context: String? = nil,
                             source: String = "kubeconfig") throws -> KubeAPIConfig {
        func fail(_ field: String, _ reason: String) -> KubeAPIConfigError {
            KubeAPIConfigError(source: source, field: field, reason: reason)
        }
        // Bounded before the recursive YAML decoder sees it, as manifests are: a deep file must not crash keeld.
        if let problem = ManifestLimits.default.yamlProblem(text) { throw fail("", "not a valid kubeconfig: \(problem)") }
        let file: Document
        do { file = try YAMLDecoder().decode(Document.self, from: text) } catch {
            throw fail("", "not a valid kubeconfig: \(error)")
        }
        guard let contextName = context ?? file.currentContext, !contextName.isEmpty else {
            throw fail("current-context", "not set and no context given")
        }
        guard let ctx = file.contexts?.first(where: { $0.name == contextName })?.context else {
            throw fail("contexts", "no context named \"\(contextName)\"")
        }
        guard let cluster = file.clusters?.first(where: { $0.name == ctx.cluster })?.cluster else {
            throw fail("contexts[\(contextName)].context.cluster", "no cluster named \"\(ctx.cluster)\"")
        }
        let user = ctx.user.flatMap { name in file.users?.first(where: { $0.name == name })?.user }
        if let name = ctx.user, !name.isEmpty, user == nil {
            throw fail("contexts[\(contextName)].context.user", "no user named \"\(name)\"")
        }
        guard let server = cluster.server, server.hasPrefix("https://") || server.hasPrefix("http://") else {
            throw fail("clusters[\(ctx.cluster)].cluster.server", "missing or not an http(s) URL")
        }

        func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : directory + "/" + path }
        func pem(data: String?, file: String?, field: String) throws -> [UInt8]? {
            if let data {
                guard let decoded = Data(base64Encoded: data, options: .ignoreUnknownCharacters) else {
                    throw fail(field + "-data", "not base64")
                }
                return [UInt8](decoded)
            }
            guard let file else { return nil }
            return try KubeAPIConfig.readFile(resolve(file), source: source, field: field)
        }
        let clusterField = "clusters[\(ctx.cluster)].cluster.certificate-authority"
        let userField = "users[\(ctx.user ?? "")].user."
        let certificate = try pem(data: user?.clientCertificateData, file: user?.clientCertificate, field: userField + "client-certificate")
        let key = try pem(data: user?.clientKeyData, file: user?.clientKey, field: userField + "client-key")
        if (certificate == nil) != (key == nil) {
            throw fail(userField + (certificate == nil ? "client-certificate" : "client-key"),
                       "missing (a client certificate needs its key and the key its certificate)")
        }
        return KubeAPIConfig(
            server: server,
            certificateAuthorityPEM: try pem(data: cluster.certificateAuthorityData, file: cluster.certificateAuthority, field: clusterField),
            clientCertificatePEM: certificate, clientKeyPEM: key,
            bearerToken: user?.token, tokenFile: user?.tokenFile.map(resolve),
            insecureSkipTLSVerify: cluster.insecureSkipTLSVerify ?? false,
            namespace: ctx.namespace)
    }

    struct Document: Decodable {
        var currentContext: String?
        var clusters: [Named<Cluster>]?
        var users: [Named<User>]?
        var contexts: [Named<Context>]?
        enum CodingKeys: String, CodingKey { case currentContext = "current-context", clusters, users, contexts }
    }
    struct Named<Value: Decodable>: Decodable {
        var name: String
        var value: Value?
        var cluster: Value? { value }
        var user: Value? { value }
        var context: Value? { value }
        private struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: Key.self)
            name = try c.decode(String.self, forKey: Key(stringValue: "name"))
            // The entry's body sits under `cluster`, `user` or `context`, whichever this list holds.
            value = try ["cluster", "user", "context"].lazy.map { Key(stringValue: $0) }.first(where: c.contains)
                .flatMap { try c.decodeIfPresent(Value.self, forKey: $0) }
        }
    }
    struct Cluster: Decodable {
        var server: String?
        var certificateAuthority: String?
        var certificateAuthorityData: String?
        var insecureSkipTLSVerify: Bool?
        enum CodingKeys: String, CodingKey {
            case server, certificateAuthority = "certificate-authority", certificateAuthorityData = "certificate-authority-data"
            case insecureSkipTLSVerify = "insecure-skip-tls-verify"
        }
    }
    struct User: Decodable, Equatable {
        var token: String?
        var tokenFile: String?
        var clientCertificate: String?
        var clientCertificateData: String?
        var clientKey: String?
        var clientKeyData: String?
        enum CodingKeys: String, CodingKey {
            case token, tokenFile, clientCertificate = "client-certificate", clientCertificateData = "client-certificate-data"
            case clientKey = "client-key", clientKeyData = "client-key-data"
        }
    }
    struct Context: Decodable {
        var cluster: String
        var user: String?
        var namespace: String?
    }
}
