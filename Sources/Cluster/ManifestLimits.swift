import CYaml

/// How large and how deeply nested a manifest, an API page or a watch event may be.
///
/// The decoders behind ``ManifestDecoder`` recurse once per nesting level (Yams composes and decodes
/// nodes recursively, and so does Foundation's JSON decoder), so a 10 KB file of 5,000 nested `[`
/// would overflow the stack and kill keeld, again at every restart. Both limits are checked first,
/// by scans that keep no call stack: the YAML text goes through libyaml's event parser (the same
/// lexer Yams uses, so the depth counted is the depth Yams would build), JSON bytes through a byte scan.
/// Kubernetes objects nest about 15 levels; kubectl and the API server refuse far less than a
/// stack's worth too (Go's decoders stop at 10,000 levels, on a stack that grows).
public struct ManifestLimits: Sendable, Hashable {
    /// The deepest nesting of sequences and mappings (arrays and objects) in one document.
    public var maxDepth: Int
    /// The largest file (or JSON text) decoded, in bytes.
    public var maxBytes: Int
    /// The most nodes that YAML aliases (`*name`) may add by repeating their anchor: bounds the
    /// "billion laughs" blow-up of a small file into a huge tree.
    public var maxAliasedNodes: Int

    public init(maxDepth: Int = 100, maxBytes: Int = 32 << 20, maxAliasedNodes: Int = 100_000) {
        self.maxDepth = maxDepth
        self.maxBytes = maxBytes
        self.maxAliasedNodes = maxAliasedNodes
    }

    public static let `default` = ManifestLimits()

    /// Why `byteCount` bytes are too many, or nil.
    public func sizeProblem(_ byteCount: Int) -> String? {
        byteCount > maxBytes ? "\(byteCount) bytes, larger than the limit of \(maxBytes) bytes" : nil
    }

    public var depthProblem: String { "nested more than \(maxDepth) levels deep (limit \(maxDepth))" }

    /// Why one YAML document exceeds the limits, or nil. Walks libyaml's events without building
    /// anything; a syntax error ends the walk with nil, since the composer stops at the same place
    /// and reports it.
    public func yamlProblem(_ text: String) -> String? {
        if let size = sizeProblem(text.utf8.count) { return size }
        guard !text.isEmpty else { return nil }   // libyaml wants a non-null input pointer
        var text = text
        return text.withUTF8 { bytes in
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else { return "cannot start the YAML parser (out of memory)" }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            yaml_parser_set_input_string(&parser, bytes.baseAddress, bytes.count)

            var depth = 0
            var nodes = 0           // nodes seen, with what aliases repeat counted in
            var aliased = 0         // nodes added by aliases
            var anchorSize: [String: Int] = [:]
            var open: [(anchor: String?, firstNode: Int)] = []   // enclosing collections
            func anchorName(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
                p.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            }
            var event = yaml_event_t()
            while yaml_parser_parse(&parser, &event) == 1 {
                defer { yaml_event_delete(&event) }
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return nil
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    depth += 1
                    if depth > maxDepth { return depthProblem }
                    let anchor = event.type == YAML_SEQUENCE_START_EVENT
                        ? event.data.sequence_start.anchor : event.data.mapping_start.anchor
                    open.append((anchorName(anchor), nodes))
                    nodes += 1
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    depth -= 1
                    if let closed = open.popLast(), let anchor = closed.anchor { anchorSize[anchor] = nodes - closed.firstNode }
                case YAML_SCALAR_EVENT:
                    if let anchor = anchorName(event.data.scalar.anchor) { anchorSize[anchor] = 1 }
                    nodes += 1
                case YAML_ALIAS_EVENT:
                    // An alias repeats its anchor's whole tree (an undefined one is the composer's error).
                    let size = anchorName(event.data.alias.anchor).flatMap { anchorSize[$0] } ?? 1
                    nodes += size
                    aliased += size
                    if aliased > maxAliasedNodes {
                        return "aliases expand to more than \(maxAliasedNodes) nodes (limit \(maxAliasedNodes))"
                    }
                default:
                    break
                }
            }
            return nil
        }
    }

    /// Why JSON bytes exceed the limits, or nil. Counts `[`/`{` outside strings; invalid JSON is
    /// left to the decoder to report.
    public func jsonProblem<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String? {
        if let size = sizeProblem(bytes.count) { return size }
        return JSONSpan.depth(of: bytes, exceeds: maxDepth) ? depthProblem : nil
    }
}
