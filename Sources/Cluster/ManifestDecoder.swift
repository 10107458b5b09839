import Foundation
import Yams

/// Turns manifest text (multi-document YAML, or JSON) into validated ``ClusterObject``s and
/// ``ManifestProblem``s. Pure: no files, no logging.
///
/// - A document whose `apiVersion`/`kind` Keel does not read is ignored silently: a manifest folder
///   may hold Deployments, ConfigMaps or anything else.
/// - A `v1 List` (what `kubectl get -o yaml` writes) and typed lists such as `NodeList` (what the API
///   returns, items without `kind`) are unpacked.
/// - A document of a kind Keel reads but with a bad field becomes a ``ManifestProblem`` and is skipped;
///   the other documents of the same file are kept.
/// - Kinds read: v1 `Node`, v1 `Service`, discovery.k8s.io/v1 `EndpointSlice`, v1 `Pod` (with
///   `status.podIP(s)`, written after the CNI ADD in manifest mode), v1 `Namespace` and
///   networking.k8s.io/v1 `NetworkPolicy` and `ServiceCIDR` (``supportedKinds``).
///   Headless and `ExternalName` Services are valid; an EndpointSlice's zone `hints` are advisory and
///   never a problem.
/// - Two objects with the same kind, namespace and name: the first (in file-name, then document
///   order) is kept and the later one is a problem at `metadata.name`.
/// - A file larger than ``ManifestLimits/maxBytes``, or a document nested deeper than
///   ``ManifestLimits/maxDepth`` (or whose YAML aliases expand too far), is a problem naming the limit
///   and is skipped before the recursive parser sees it; the other documents of the file are kept.
///
/// ## Overlay documents
///
/// A file whose name ends in `.keel-overlay.yaml` (or `.keel-overlay.yml`, `.keel-overlay.json`) holds
/// *overlays*: metadata-only documents (`apiVersion`, `kind`, `metadata.name`, `metadata.namespace`,
/// `metadata.labels`, `metadata.annotations`) for objects defined in other files. keeld writes them in
/// manifest mode to publish data, as it would patch annotations through the API server.
///
/// ```yaml
/// # node1.keel-overlay.yaml
/// apiVersion: v1
/// kind: Node
/// metadata:
///   name: node1
///   annotations:
///     keel.dev/vtep-mac: "02:42:0a:00:00:01"
/// ```
///
/// Each overlay's labels and annotations are merged into the object with the same kind, namespace
/// and name; the overlay wins per key, and overlays are applied in file-name order, so a later file
/// wins over an earlier one. `spec` and `status` in an overlay are ignored. An overlay whose object
/// is not defined (or was skipped as malformed) is ignored and is not a problem: keeld may write it
/// before the object appears.
public enum ManifestDecoder {
    /// The kinds the decoder builds objects for. A source lists only these: claiming a complete list
    /// of a kind it cannot read would make a controller delete everything of that kind.
    public static let supportedKinds: Set<ObjectKind> = [.node, .service, .endpointSlice, .pod, .namespace, .networkPolicy,
                                                            .serviceCIDR]

    /// True for the names a manifest folder reads: `*.yaml`, `*.yml`, `*.json`.
    public static func isManifestFile(_ name: String) -> Bool {
        name.hasSuffix(".yaml") || name.hasSuffix(".yml") || name.hasSuffix(".json")
    }
    /// True for overlay files (see "Overlay documents" above).
    public static func isOverlayFile(_ name: String) -> Bool {
        [".keel-overlay.yaml", ".keel-overlay.yml", ".keel-overlay.json"].contains { name.hasSuffix($0) }
    }

    /// Decodes one file's text. Cross-object rules (``validateNodes(_:)``, one object per key) are
    /// applied within the file.
    public static func decode(_ text: String, file: String, limits: ManifestLimits = .default)
        -> (objects: [ClusterObject], problems: [ManifestProblem]) {
        decode(files: [(name: file, text: text)], limits: limits)
    }

    /// Decodes a whole set of files as one cluster: files in name order, documents in file order;
    /// cross-object rules keep the first object in that order; overlays are merged last.
    public static func decode(files: [(name: String, text: String)], kinds: Set<ObjectKind> = Set(ObjectKind.allCases),
                              limits: ManifestLimits = .default)
        -> (objects: [ClusterObject], problems: [ManifestProblem]) {
        combine(files.map { decodeFile($0.text, file: $0.name, limits: limits) }, kinds: kinds)
    }

    /// Decodes JSON bytes — one object, or a list such as an API server's LIST page — with
    /// Foundation's JSON decoder: the API's wire form never goes through the YAML parser, and no text
    /// copy is made. The checks are those of ``decode(_:file:)``; cross-object rules are applied
    /// by ``combine(_:kinds:)``, over every part of one listing. An item without `kind` and
    /// `apiVersion` (a watch event's object may omit them) is read as `impliedKind`.
    ///
    /// Text nested deeper than `limits` allow never reaches the JSON decoder: a list's items are
    /// then taken one by one (found by a flat scan), so only the items too deep are skipped, each a
    /// problem with its kind and name; anything else too deep is one skipped object.
    public static func decodeJSON(_ json: Data, origin: String, impliedKind: ObjectKind? = nil,
                                  limits: ManifestLimits = .default) -> DecodedFile {
        var result = DecodedFile(file: origin)
        if let problem = limits.jsonProblem(json) {
            return decodeOversized(json, problem: problem, origin: origin, impliedKind: impliedKind, limits: limits)
        }
        let decoder = JSONDecoder()
        decoder.userInfo = [.keelOverlayMode: false, .keelImpliedKind: impliedKind as Any]
        let entries: [DocumentEntry]
        do {
            entries = try decoder.decode(ManifestDocument.self, from: json).entries
        } catch {
            let cause = (error as? DecodingError).flatMap(underlyingError) ?? error
            result.unreadable = "not valid JSON: \(cause)"
            result.problems.append(ManifestProblem(file: origin, objectName: nil, kind: nil, field: "",
                                                   reason: "not valid JSON: \(cause)", document: 1))
            return result
        }
        result.add(entries, document: nil)
        return result
    }

    /// ``decodeJSON(_:origin:impliedKind:limits:)`` for text over the limits: a list's items one by
    /// one, or one problem naming the object (read from its `metadata`, if that is within the limits).
    private static func decodeOversized(_ json: Data, problem: String, origin: String, impliedKind: ObjectKind?,
                                        limits: ManifestLimits) -> DecodedFile {
        var result = DecodedFile(file: origin)
        let bytes = [UInt8](json)
        func string(_ key: String, in span: ArraySlice<UInt8>) -> String? {
            JSONSpan.topLevelValue(key, in: span).flatMap { s in
                limits.jsonProblem(s) == nil ? try? JSONDecoder().decode(String.self, from: Data(s)) : nil
            }
        }
        let kindText = string("kind", in: bytes[...]), apiVersion = string("apiVersion", in: bytes[...])
        if let kindText, kindText.hasSuffix("List"),
           let items = JSONSpan.topLevelValue("items", in: bytes[...]).flatMap(JSONSpan.arrayElements) {
            let itemKind = ObjectKind(apiVersion: apiVersion, kind: String(kindText.dropLast(4))) ?? impliedKind
            for item in items {
                let part = decodeJSON(Data(item), origin: origin, impliedKind: itemKind, limits: limits)
                result.objects += part.objects
                result.overlays += part.overlays
                result.problems += part.problems
            }
            return result
        }
        let kind = ObjectKind(apiVersion: apiVersion, kind: kindText) ?? (kindText == nil ? impliedKind : nil)
        let name = JSONSpan.topLevelValue("metadata", in: bytes[...]).flatMap { string("name", in: $0) }
        result.problems.append(ManifestProblem(file: origin, objectName: name, kind: kind?.rawValue, field: "",
                                               reason: problem, document: name == nil ? 1 : nil))
        if kind == nil, name == nil { result.unreadable = problem }
        return result
    }

    /// The objects and problems of decoded parts taken as one cluster: parts in file-name order
    /// (the order given for equal names), objects of `kinds` only, one object per key (the first),
    /// nodes checked against each other, overlays merged last.
    public static func combine(_ parts: [DecodedFile], kinds: Set<ObjectKind> = Set(ObjectKind.allCases))
        -> (objects: [ClusterObject], problems: [ManifestProblem]) {
        var candidates: [(object: ClusterObject, file: String)] = []
        var overlays: [MetadataOverlay] = []
        var problems: [ManifestProblem] = []
        for part in parts.enumerated().sorted(by: { ($0.element.file, $0.offset) < ($1.element.file, $1.offset) }).map(\.element) {
            candidates += part.objects.filter { kinds.contains($0.kind) }.map { ($0, part.file) }
            overlays += part.overlays.filter { kinds.contains($0.key.kind) }
            problems += part.problems.filter { p in p.kind.flatMap(ObjectKind.init(rawValue:)).map(kinds.contains) ?? true }
        }

        let nodes = validateNodes(candidates.compactMap { c in
            if case .node(let n) = c.object { (node: n, origin: c.file) } else { nil }
        })
        problems += nodes.problems
        var objects = nodes.valid.map(ClusterObject.node)
        objects.reserveCapacity(candidates.count)
        var firstFile: [ObjectKey: String] = [:]
        firstFile.reserveCapacity(candidates.count)
        for (object, file) in candidates where object.kind != .node {
            let key = object.key
            if let first = firstFile[key] {
                problems.append(duplicateProblem(object, file: file, firstFile: first))
                continue
            }
            firstFile[key] = file
            objects.append(object)
        }

        guard !overlays.isEmpty else { return (objects, problems) }
        var index: [ObjectKey: Int] = [:]
        for (i, o) in objects.enumerated() { index[o.key] = i }
        for overlay in overlays {
            guard let i = index[overlay.key] else { continue }
            merge(overlay, into: &objects[i])
        }
        return (objects, problems)
    }

    /// The problem of an object whose key an earlier object (in `firstFile`) already has.
    static func duplicateProblem(_ object: ClusterObject, file: String, firstFile: String) -> ManifestProblem {
        ManifestProblem(file: file, objectName: object.metadata.name, kind: object.kind.rawValue, field: "metadata.name",
                        reason: "duplicate \(object.kind) in namespace \"\(object.key.namespace ?? "")\", first defined in \(firstFile)")
    }

    /// Merges an overlay's labels and annotations into `object`; the overlay wins per key.
    static func merge(_ overlay: MetadataOverlay, into object: inout ClusterObject) {
        object.metadata.labels.merge(overlay.labels) { _, new in new }
        object.metadata.annotations.merge(overlay.annotations) { _, new in new }
    }

    /// What one file (or one JSON text) holds, before cross-object rules and overlays.
    public struct DecodedFile: Sendable {
        /// The file name (or origin) its objects and problems are reported under.
        public var file: String
        var objects: [ClusterObject] = []
        var overlays: [MetadataOverlay] = []
        var problems: [ManifestProblem] = []

        init(file: String) { self.file = file }

        /// Why nothing at all could be read (the text is not JSON), or nil: a caller that expected
        /// a complete list must not take it for one.
        public internal(set) var unreadable: String?

        /// Why a document of the file could not be parsed at all (a YAML syntax error, or over the
        /// limits), or nil: the file may be half written, so the manifest folder keeps its last good read.
        public internal(set) var parseFailure: String?

        /// The objects decoded (before cross-object rules).
        var objectCount: Int { objects.count }

        mutating func add(_ entries: [DocumentEntry], document number: Int?) {
            for entry in entries {
                switch entry {
                case .object(let o): objects.append(o)
                case .overlay(let o): overlays.append(o)
                case .problem(let kind, let name, let issue):
                    problems.append(ManifestProblem(file: file, objectName: name, kind: kind?.rawValue,
                                                    field: issue.field, reason: issue.reason,
                                                    document: name == nil ? (number ?? 1) : number))
                case .warning(let kind, let name, let issue):
                    problems.append(ManifestProblem(file: file, objectName: name, kind: kind.rawValue,
                                                    field: issue.field, reason: issue.reason,
                                                    document: name == nil ? (number ?? 1) : number, severity: .warning))
                }
            }
        }
    }

    /// Decodes one file's text (an overlay file if its name says so), within `limits`.
    public static func decodeFile(_ text: String, file: String, limits: ManifestLimits = .default) -> DecodedFile {
        var result = DecodedFile(file: file)
        if let problem = limits.sizeProblem(text.utf8.count) {
            result.problems.append(ManifestProblem(file: file, objectName: nil, kind: nil, field: "", reason: "file is \(problem)"))
            result.parseFailure = problem
            return result
        }
        // JSON has no document separator; a line starting with `---` cannot occur in it.
        let documents = file.hasSuffix(".json") ? [text] : splitDocuments(text)
        let info: [CodingUserInfoKey: Any] = [.keelOverlayMode: isOverlayFile(file)]
        for (i, document) in documents.enumerated() {
            let number = documents.count > 1 ? i + 1 : nil
            if let problem = limits.yamlProblem(document) {
                result.problems.append(ManifestProblem(file: file, objectName: nil, kind: nil, field: "",
                                                       reason: problem, document: number ?? 1))
                result.parseFailure = result.parseFailure ?? problem
                continue
            }
            let entries: [DocumentEntry]
            do {
                entries = try YAMLDecoder().decode(ManifestDocument.self, from: document, userInfo: info).entries
            } catch {
                let cause = (error as? DecodingError).flatMap(underlyingError) ?? error
                result.problems.append(ManifestProblem(file: file, objectName: nil, kind: nil, field: "",
                                                       reason: "not valid YAML: \(cause)", document: number ?? 1))
                result.parseFailure = result.parseFailure ?? "not valid YAML: \(cause)"
                continue
            }
            result.add(entries, document: number)
        }
        return result
    }

    private static func underlyingError(_ e: DecodingError) -> (any Error)? {
        if case .dataCorrupted(let context) = e { return context.underlyingError }
        return nil
    }

    /// Splits multi-document YAML at `---` lines, as kubectl does, so that a syntax error in one
    /// document does not hide the documents after it (a single libyaml parse stops at the first error).
    static func splitDocuments(_ text: String) -> [String] {
        var documents: [String] = []
        var current: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let l = line.hasSuffix("\r") ? line.dropLast() : line
            if l.hasPrefix("---"), l.count == 3 || l.dropFirst(3).first?.isWhitespace == true {
                documents.append(current.joined(separator: "\n"))
                // `--- {a: 1}` puts content on the separator line itself.
                current = [l.dropFirst(3)]
            } else {
                current.append(line)
            }
        }
        documents.append(current.joined(separator: "\n"))
        // Empty documents (before a leading `---`, or a trailing one) are not documents.
        return documents.filter { doc in
            doc.split(separator: "\n").contains { line in
                let t = line.drop { $0 == " " || $0 == "\t" }
                return !t.isEmpty && !t.hasPrefix("#") && t != "\r"
            }
        }
    }
}

/// The labels and annotations of an overlay document (see ``ManifestDecoder``).
public struct MetadataOverlay: Hashable, Sendable {
    public var key: ObjectKey
    public var labels: [String: String]
    public var annotations: [String: String]

    public init(key: ObjectKey, labels: [String: String] = [:], annotations: [String: String] = [:]) {
        self.key = key
        self.labels = labels
        self.annotations = annotations
    }
}

extension CodingUserInfoKey {
    static let keelOverlayMode = CodingUserInfoKey(rawValue: "keel.overlayMode")!
    /// The kind of a top-level object without `kind` and `apiVersion` (a watch event's object).
    static let keelImpliedKind = CodingUserInfoKey(rawValue: "keel.impliedKind")!
}

enum DocumentEntry {
    case object(ClusterObject)
    case overlay(MetadataOverlay)
    case problem(ObjectKind?, name: String?, FieldIssue)
    /// The object (an entry of its own) is kept.
    case warning(ObjectKind, name: String?, FieldIssue)
}

/// One YAML/JSON document, decoded without ever throwing: what it holds becomes entries.
struct ManifestDocument: Decodable {
    var entries: [DocumentEntry]

    private enum EnvelopeKeys: String, CodingKey { case apiVersion, kind, metadata, items }
    private enum NameKeys: String, CodingKey { case name }

    init(from decoder: any Decoder) throws {
        entries = Self.entries(decoder, impliedKind: decoder.userInfo[.keelImpliedKind] as? ObjectKind)
    }

    private static func entries(_ decoder: any Decoder, impliedKind: ObjectKind?) -> [DocumentEntry] {
        // A scalar or sequence document is not a Kubernetes object: ignored, like an unknown kind.
        guard let c = try? decoder.container(keyedBy: EnvelopeKeys.self) else { return [] }
        let kindText = (try? c.decodeIfPresent(String.self, forKey: .kind)) ?? nil
        let apiVersion = (try? c.decodeIfPresent(String.self, forKey: .apiVersion)) ?? nil
        let name = (try? c.nestedContainer(keyedBy: NameKeys.self, forKey: .metadata))
            .flatMap { (try? $0.decodeIfPresent(String.self, forKey: .name)) ?? nil }

        if let kindText, kindText.hasSuffix("List"), c.contains(.items) {
            let itemKind = ObjectKind(apiVersion: apiVersion, kind: String(kindText.dropLast(4)))
            guard kindText == "List" || itemKind != nil,
                  let items = try? c.superDecoder(forKey: .items), var list = try? items.unkeyedContainer()
            else { return [] }
            var result: [DocumentEntry] = []
            while !list.isAtEnd, let item = try? list.superDecoder() {
                result += entries(item, impliedKind: itemKind)
            }
            return result
        }

        let kind: ObjectKind
        if let k = ObjectKind(apiVersion: apiVersion, kind: kindText) {
            kind = k
        } else if kindText == nil, apiVersion == nil, let impliedKind {
            kind = impliedKind
        } else {
            if apiVersion == nil, let k = kindText.flatMap(ObjectKind.init(rawValue:)), ManifestDecoder.supportedKinds.contains(k) {
                return [.problem(k, name: name, FieldIssue(field: "apiVersion", reason: "missing (\(k) is \(k.apiVersion))"))]
            }
            return []
        }
        guard ManifestDecoder.supportedKinds.contains(kind) else { return [] }

        let base = decoder.codingPath.count
        func problem(_ error: any Error) -> DocumentEntry {
            .problem(kind, name: name, (error as? DecodingError).map { issue($0, droppingPrefix: base) }
                ?? FieldIssue(field: "", reason: "\(error)"))
        }

        if decoder.userInfo[.keelOverlayMode] as? Bool == true {
            do {
                let meta = try OverlayManifest(from: decoder).metadata
                guard let name = meta?.name, !name.isEmpty else {
                    return [.problem(kind, name: nil, FieldIssue(field: "metadata.name", reason: "missing"))]
                }
                return [.overlay(MetadataOverlay(key: ObjectKey(kind: kind, namespace: meta?.namespace, name: name),
                                                 labels: meta?.labels ?? [:], annotations: meta?.annotations ?? [:]))]
            } catch {
                return [problem(error)]
            }
        }

        /// An object with its warnings (kept) or its errors (skipped).
        func validated<Model>(_ build: () throws -> Validation<Model>, _ wrap: (Model) -> ClusterObject) -> [DocumentEntry] {
            do {
                let validation = try build()
                let warnings = validation.warnings.map { DocumentEntry.warning(kind, name: name, $0) }
                switch validation.result {
                case .success(let model): return [.object(wrap(model))] + warnings
                case .failure(let failure): return failure.issues.map { DocumentEntry.problem(kind, name: name, $0) } + warnings
                }
            } catch {
                return [problem(error)]
            }
        }
        /// A validation that has errors only.
        func validated<Model>(_ build: () throws -> Result<Model, FieldIssues>, _ wrap: (Model) -> ClusterObject) -> [DocumentEntry] {
            validated({ Validation(result: try build(), warnings: []) }, wrap)
        }
        switch kind {
        case .node: return validated({ Node.validated(try NodeManifest(from: decoder)) }, ClusterObject.node)
        case .service: return validated({ Service.validated(try ServiceManifest(from: decoder)) }, ClusterObject.service)
        case .endpointSlice:
            return validated({ EndpointSlice.validated(try EndpointSliceManifest(from: decoder)) }, ClusterObject.endpointSlice)
        case .pod: return validated({ Pod.validated(try PodManifest(from: decoder)) }, ClusterObject.pod)
        case .namespace: return validated({ Namespace.validated(try NamespaceManifest(from: decoder)) }, ClusterObject.namespace)
        case .networkPolicy:
            return validated({ NetworkPolicy.validated(try NetworkPolicyManifest(from: decoder)) }, ClusterObject.networkPolicy)
        case .serviceCIDR: return validated({ ServiceCIDR.validated(try ServiceCIDRManifest(from: decoder)) }, ClusterObject.serviceCIDR)
        }
    }

    /// The field a decoding error points at, relative to the object (`spec.podCIDRs[1]`), and why.
    private static func issue(_ error: DecodingError, droppingPrefix base: Int) -> FieldIssue {
        func path(_ keys: [any CodingKey]) -> String {
            keys.dropFirst(base).reduce(into: "") { text, key in
                if let i = key.intValue { text += "[\(i)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
            }
        }
        switch error {
        case .typeMismatch(let type, let c):
            return FieldIssue(field: path(c.codingPath), reason: "expected \(typeName(type))")
        case .valueNotFound(let type, let c):
            return FieldIssue(field: path(c.codingPath), reason: "expected \(typeName(type)), found null")
        case .keyNotFound(let key, let c):
            return FieldIssue(field: path(c.codingPath + [key]), reason: "missing")
        case .dataCorrupted(let c):
            return FieldIssue(field: path(c.codingPath), reason: c.debugDescription)
        @unknown default:
            return FieldIssue(field: "", reason: "\(error)")
        }
    }

    /// What was expected, in manifest words. Yams names its node types (`Node.Sequence`) rather than
    /// the Swift type when the YAML shape is wrong, so both spellings are mapped.
    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        case is Int.Type: return "an integer"
        case is IntOrString.Type: return "a port number or name"
        case is [String].Type, is [NodeAddress].Type, is Yams.Node.Sequence.Type: return "a list"
        case is [String: String].Type, is Yams.Node.Mapping.Type: return "a map"
        case is Yams.Node.Scalar.Type: return "a single value"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array<") { return "a list" }
            if name.hasPrefix("Dictionary<") { return "a map" }
            return name
        }
    }
}

/// An overlay document: only its metadata is read.
struct OverlayManifest: Decodable {
    var metadata: NodeManifest.Metadata?
}
