import Foundation
import NetAddress

/// A certificate authority made for one test run with the `openssl` CLI, and server certificates it
/// signs: what a cluster's CA and the API server's serving certificate are, without touching any
/// trust store. The keys live in a temp folder removed with the value.
public final class TestCertificateAuthority: @unchecked Sendable {
    /// The CA certificate (PEM): what a kubeconfig's `certificate-authority-data` carries.
    public let certificatePEM: String
    /// Where the CA certificate is, for a kubeconfig's `certificate-authority`.
    public var certificatePath: String { "\(directory)/ca.crt" }
    let directory: String

    /// A serving certificate and its key (PEM).
    public struct ServerIdentity: Sendable {
        public var certificatePEM: String
        public var privateKeyPEM: String
    }

    /// Makes a new CA (P-256 key, valid one day) named `commonName`.
    public init(commonName: String = "keel-test-ca") throws {
        directory = "/tmp/keel-test-ca-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        guard mkdir(directory, 0o700) == 0 else {
            throw ProcessError(command: ["mkdir", directory], reason: String(cString: strerror(errno)))
        }
        try Self.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                          "-keyout", "\(directory)/ca.key", "-out", "\(directory)/ca.crt", "-days", "1",
                          "-subj", "/CN=\(commonName)",
                          "-addext", "basicConstraints=critical,CA:TRUE",
                          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        certificatePEM = try String(contentsOfFile: "\(directory)/ca.crt", encoding: .utf8)
    }

    deinit { _ = try? NamespaceProcess.run(["rm", "-rf", directory]) }   // best effort: a temp folder

    /// A serving certificate for `addresses` and `dnsNames` (subjectAltName: clients check the address
    /// they dialled against it), signed by this CA.
    public func issueServerCertificate(for addresses: [IPAddress], dnsNames: [String] = ["localhost"],
                                       commonName: String = "kube-apiserver") throws -> ServerIdentity {
        let base = "\(directory)/server-\(UUID().uuidString)"   // tests issue from one CA in parallel
        let names = addresses.map { "IP:\($0)" } + dnsNames.map { "DNS:\($0)" }
        try Data("""
            subjectAltName=\(names.joined(separator: ","))
            basicConstraints=critical,CA:FALSE
            keyUsage=critical,digitalSignature
            extendedKeyUsage=serverAuth

            """.utf8).write(to: URL(fileURLWithPath: "\(base).ext"))
        try Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                          "-keyout", "\(base).key", "-out", "\(base).csr", "-subj", "/CN=\(commonName)"])
        try Self.openssl(["x509", "-req", "-in", "\(base).csr", "-CA", "\(directory)/ca.crt", "-CAkey", "\(directory)/ca.key",
                          "-set_serial", "\(UInt64.random(in: 1 ... UInt64(Int64.max)))", "-days", "1", "-out", "\(base).crt", "-extfile", "\(base).ext"])
        return ServerIdentity(certificatePEM: try String(contentsOfFile: "\(base).crt", encoding: .utf8),
                              privateKeyPEM: try String(contentsOfFile: "\(base).key", encoding: .utf8))
    }

    private static func openssl(_ arguments: [String]) throws {
        let result = try NamespaceProcess.run(["openssl"] + arguments)
        guard result.succeeded else { throw ProcessError(command: ["openssl"] + arguments, reason: result.description) }
    }
}
