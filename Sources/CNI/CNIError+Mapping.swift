// The one place where errors become CNI codes (STYLE.md section 3). Modules above CNI (PodNetwork,
// IPAM) throw their own typed errors; CNI cannot import them, so each such error type states its code
// by conforming to `CNIErrorConvertible` in a file of its own module, and this switch consults it.

/// An error of a module built on CNI that knows which CNI code it stands for.
public protocol CNIErrorConvertible: Error {
    var cniError: CNIError { get }
}

extension CNIError {
    /// Classifies `error`: a `CNIError` is kept as it is; a `DecodingError` becomes 6 (the bytes are
    /// not JSON) or 7 (JSON, but a field is missing or has the wrong type), naming the field path;
    /// anything else becomes 999 with the error's description as `msg`.
    public init(mapping error: any Error) {
        switch error {
        case let e as CNIError:
            self = e
        case let e as any CNIErrorConvertible:
            self = e.cniError
        case let e as JSONSyntaxError:
            self.init(.decodingFailure, "error decoding network config: \(e)")
        case let e as DecodingError:
            self = CNIError(decoding: e)
        default:
            self.init(.internalError, String(describing: error))
        }
    }

    private init(decoding error: DecodingError) {
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            // Nothing decoded yet: the input is not JSON at all.
            self.init(.decodingFailure, "error decoding network config: \(context.debugDescription)",
                      details: Self.underlying(context))
        case .dataCorrupted(let context):
            self.init(.invalidNetworkConfig, "invalid value for \(Self.path(context.codingPath))",
                      details: context.debugDescription)
        case .keyNotFound(let key, let context):
            self.init(.invalidNetworkConfig, "missing field \(Self.path(context.codingPath + [key]))",
                      details: context.debugDescription)
        case .typeMismatch(_, let context) where context.codingPath.isEmpty,
             .valueNotFound(_, let context) where context.codingPath.isEmpty:
            // `[]`, `"x"` or `null` where a config object belongs: not a network config at all.
            self.init(.decodingFailure, "error decoding network config: not a JSON object",
                      details: context.debugDescription)
        case .typeMismatch(let type, let context):
            self.init(.invalidNetworkConfig, "wrong type for \(Self.path(context.codingPath)): expected \(type)",
                      details: context.debugDescription)
        case .valueNotFound(let type, let context):
            self.init(.invalidNetworkConfig, "null for \(Self.path(context.codingPath)): expected \(type)",
                      details: context.debugDescription)
        @unknown default:
            self.init(.decodingFailure, "error decoding network config", details: String(describing: error))
        }
    }

    /// `ipam.ranges[0][1].subnet`
    static func path(_ keys: [any CodingKey]) -> String {
        var out = ""
        for key in keys {
            if let i = key.intValue { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + CNIError.quoting(key.stringValue) }
        }
        return out.isEmpty ? "<top level>" : out
    }

    private static func underlying(_ context: DecodingError.Context) -> String {
        context.underlyingError.map { String(describing: $0) } ?? ""
    }
}
