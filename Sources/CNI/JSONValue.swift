import FoundationEssentials

/// Any JSON value, kept as parsed so that parts of a config the kit does not model (the `ipam` object,
/// `runtimeConfig` entries, plugin-specific keys) survive a decode and re-encode unchanged.
public enum JSONValue: Sendable, Hashable, Codable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n):
            // Integers stay integers on the way out: "mtu": 1450, not 1450.0.
            if n.rounded() == n, abs(n) < 9.0e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// Parses JSON bytes; failure is a `CNIError` (code 6).
    public init(parsing bytes: [UInt8]) throws {
        do { self = try CNIJSON.decode(JSONValue.self, from: bytes) } catch { throw CNIError(mapping: error) }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }

    /// Compact JSON with sorted keys.
    public var jsonBytes: [UInt8] { (try? CNIJSON.encode(self)) ?? Array("null".utf8) }
    public var description: String { String(decoding: jsonBytes, as: UTF8.self) }

    /// Decodes this value as `T` (for example a plugin's own `ipam` section).
    public func decode<T: Decodable>(_ type: T.Type) throws -> T { try CNIJSON.decode(type, from: jsonBytes) }
}

/// The one encoder/decoder setup of the kit: sorted keys and unescaped `/` so output is stable and
/// netns paths stay readable.
enum CNIJSON {
    static func encode(_ value: some Encodable) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try e.encode(value))
    }
    /// Checks syntax and bounds first (`JSONSyntax`): JSONDecoder recurses once per nesting level
    /// and reports a syntax error without saying where.
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONSyntax.check(bytes)
        return try JSONDecoder().decode(type, from: Data(bytes))
    }
}
