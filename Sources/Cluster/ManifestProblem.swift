import Logging

/// A problem with one object or document: logged; an error skips the object, a warning keeps it;
/// everything else is kept either way.
///
/// Its description reads like `nodes.yaml: Node "node2": spec.podCIDR: "10.244.300.0/24" is not a CIDR`.
public struct ManifestProblem: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable {
        /// keeld skips the object (and `keelctl validate` exits 1).
        case error
        /// keeld serves the object but ignores a part of it (an IPv6 address while the data path is
        /// IPv4-only), or Kubernetes would refuse what keeld can still serve.
        case warning
    }

    /// The file, relative to the manifest folder (or the name a caller gave to ``ManifestDecoder/decode(_:file:)``).
    public var file: String
    /// `metadata.name`, when the document has one.
    public var objectName: String?
    /// The manifest's `kind`, when the document names a kind Keel reads.
    public var kind: String?
    /// The field path, like `spec.podCIDRs[1]`; empty for a problem with the whole document (bad YAML).
    public var field: String
    public var reason: String
    /// The 1-based document number in a multi-document file, for problems that have no object name.
    public var document: Int?
    public var severity: Severity

    public init(file: String, objectName: String?, kind: String?, field: String, reason: String, document: Int? = nil,
                severity: Severity = .error) {
        self.file = file
        self.objectName = objectName
        self.kind = kind
        self.field = field
        self.reason = reason
        self.document = document
        self.severity = severity
    }

    /// The object was skipped.
    public var isError: Bool { severity == .error }

    public var description: String {
        var parts = [file]
        switch (kind, objectName) {
        case let (kind?, name?): parts.append("\(kind) \"\(name)\"")
        case let (nil, name?): parts.append("\"\(name)\"")
        case let (kind?, nil): parts.append(document.map { "\(kind) (document \($0))" } ?? kind)
        case (nil, nil): if let document { parts.append("document \(document)") }
        }
        if !field.isEmpty { parts.append(field) }
        parts.append(reason)
        return parts.joined(separator: ": ")
    }

    /// Structured metadata for a log line: `manifest.file`, `object.kind`, `object.name`, `field`.
    public var logMetadata: Logger.Metadata {
        var m: Logger.Metadata = ["manifest.file": "\(file)", "field": "\(field)", "problem.severity": "\(severity.rawValue)"]
        if let kind { m["object.kind"] = "\(kind)" }
        if let objectName { m["object.name"] = "\(objectName)" }
        if let document { m["manifest.document"] = "\(document)" }
        return m
    }
}

extension Logger {
    /// Logs `problem` at `.warning`: "skipped" when the object it names was skipped (an error),
    /// "accepted with a warning" when it is served all the same.
    public func log(_ problem: ManifestProblem) {
        warning("\(problem.isError ? "skipped" : "accepted with a warning"): \(problem)", metadata: problem.logMetadata)
    }
}
