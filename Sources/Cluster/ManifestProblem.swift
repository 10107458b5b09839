import Logging

/// A problem with one object or document: logged, the object skipped, everything else kept.
///
/// Its description reads like `nodes.yaml: Node "node2": spec.podCIDR: "10.244.300.0/24" is not a CIDR`.
public struct ManifestProblem: Sendable, Hashable, CustomStringConvertible {
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

    public init(file: String, objectName: String?, kind: String?, field: String, reason: String, document: Int? = nil) {
        self.file = file
        self.objectName = objectName
        self.kind = kind
        self.field = field
        self.reason = reason
        self.document = document
    }

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
        var m: Logger.Metadata = ["manifest.file": "\(file)", "field": "\(field)"]
        if let kind { m["object.kind"] = "\(kind)" }
        if let objectName { m["object.name"] = "\(objectName)" }
        if let document { m["manifest.document"] = "\(document)" }
        return m
    }
}

extension Logger {
    /// Logs `problem` at `.warning`: the object it names was skipped.
    public func log(_ problem: ManifestProblem) {
        warning("skipped: \(problem)", metadata: problem.logMetadata)
    }
}
