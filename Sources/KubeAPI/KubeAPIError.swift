/// A failed LIST or WATCH, naming the request. ``isExpired`` is the one the reflector treats specially:
/// the resourceVersion or continue token is too old, so it lists again instead of backing off.
public struct KubeAPIError: Error, Hashable, CustomStringConvertible {
    /// `GET /api/v1/nodes?limit=500`.
    public var request: String
    /// The HTTP status or the `code` of a watch ERROR event; nil for a transport or decoding failure.
    public var code: Int?
    /// The Status `reason` (`Expired`, `Gone`) or a description of the failure.
    public var reason: String
    public var message: String

    public init(request: String, code: Int?, reason: String, message: String = "") {
        self.request = request
        self.code = code
        self.reason = reason
        self.message = message
    }

    /// 410 Gone, or a Status with reason `Expired`/`Gone`: relist.
    public var isExpired: Bool { code == 410 || reason == "Expired" || reason == "Gone" }

    public var description: String {
        [request, code.map { "\($0)" }, reason, message.isEmpty ? nil : message].compactMap { $0 }.joined(separator: ": ")
    }
}
