/// A CNI error result: what a plugin prints on stdout (with exit status 1) when a command fails.
///
/// Codes 1–99 are the spec's; plugins use 100 and above for their own. `msg` is a short
/// message, `details` the longer context (a field path, a variable name, a peer's output).
public struct CNIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The spec's well-known codes (SPEC.md, "Error"), plus 999 for an error the plugin did not classify.
    public enum Code: Int, Sendable, CaseIterable {
        case incompatibleCNIVersion = 1
        case unsupportedField = 2
        case unknownContainer = 3
        case invalidEnvironment = 4
        case ioFailure = 5
        case decodingFailure = 6
        case invalidNetworkConfig = 7
        /// Not in the spec's table, but the reference's code for a CNI_NETNS that cannot be used.
        case invalidNetNS = 8
        case tryAgainLater = 11
        case pluginNotAvailable = 50
        case pluginNotAvailableLimited = 51
        case internalError = 999
    }

    public var code: Int
    public var msg: String
    public var details: String

    public init(_ code: Code, _ msg: String, details: String = "") {
        self.code = code.rawValue
        self.msg = msg
        self.details = details
    }

    /// A plugin-specific error. Codes below 100 are reserved by the spec; a smaller `pluginCode`
    /// is a programming error and is clamped to 100 so the reply never claims a spec meaning.
    public init(pluginCode: Int, _ msg: String, details: String = "") {
        assert(pluginCode >= 100, "CNI plugin error codes start at 100")
        self.code = max(pluginCode, 100)
        self.msg = msg
        self.details = details
    }

    /// The well-known code, or nil for a plugin-specific one.
    public var knownCode: Code? { Code(rawValue: code) }

    public var description: String {
        details.isEmpty ? "CNI error \(code): \(msg)" : "CNI error \(code): \(msg) (\(details))"
    }

    /// The error document for stdout: `{"cniVersion", "code", "msg", "details"}`; `details` is left
    /// out when empty, as the reference implementation does.
    public func json(cniVersion: String) -> [UInt8] {
        var object: [String: JSONValue] = [
            "cniVersion": .string(cniVersion), "code": .number(Double(code)), "msg": .string(msg),
        ]
        if !details.isEmpty { object["details"] = .string(details) }
        return JSONValue.object(object).jsonBytes
    }
}

extension CNIError: Codable {
    private enum CodingKeys: String, CodingKey { case code, msg, details }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        code = try c.decode(Int.self, forKey: .code)
        msg = try c.decodeIfPresent(String.self, forKey: .msg) ?? ""
        details = try c.decodeIfPresent(String.self, forKey: .details) ?? ""
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(code, forKey: .code)
        try c.encode(msg, forKey: .msg)
        if !details.isEmpty { try c.encode(details, forKey: .details) }
    }
}

extension CNIError {
    /// At most this many characters of an input (a field's value, a variable) are repeated in an
    /// error message, so that a megabyte of garbage in a field does not come back in the reply.
    public static let quotedInputLimit = 200

    /// `text` as an error message may repeat it: cut after `quotedInputLimit` characters, saying how
    /// much was left out.
    public static func quoting(_ text: some StringProtocol) -> String {
        let count = text.count
        guard count > quotedInputLimit else { return String(text) }
        return text.prefix(quotedInputLimit) + "… (\(count - quotedInputLimit) more characters)"
    }
}

extension DefaultStringInterpolation {
    /// `"\(quoted: value)"`: an input in an error message, clipped by `CNIError.quoting(_:)`.
    public mutating func appendInterpolation(quoted text: some StringProtocol) {
        appendLiteral(CNIError.quoting(text))
    }
}
