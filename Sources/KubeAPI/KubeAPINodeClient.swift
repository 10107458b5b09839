import AsyncHTTPClient
import Cluster
import Foundation
import NIOCore

/// What a node agent writes about its own Node: PATCH requests on `nodes/<name>` (metadata, merge
/// patch) and `nodes/<name>/status` (conditions, strategic merge patch, as the kubelet and flannel
/// send them). Same server, TLS and bearer token (re-read when it changes) as ``KubeAPISource``.
///
/// Each call opens and shuts down its own HTTP client: a node agent patches its Node a few times in
/// its life, so nothing is kept open between patches.
public struct KubeAPINodeClient: Sendable {
    /// How the body of a PATCH is to be read (its `Content-Type`).
    public enum PatchType: String, Sendable {
        /// RFC 7386: maps merge, lists are replaced. `application/merge-patch+json`.
        case merge = "application/merge-patch+json"
        /// Kubernetes' strategic merge: lists with a merge key (conditions by `type`) merge item by item.
        case strategicMerge = "application/strategic-merge-patch+json"
    }

    public let config: KubeAPIConfig
    public var timeout: Duration
    private let token: BearerToken

    public init(config: KubeAPIConfig, timeout: Duration = .seconds(10)) {
        self.config = config
        self.timeout = timeout
        token = BearerToken(fixed: config.bearerToken, path: config.tokenFile)
    }

    /// PATCH `/api/v1/nodes/<name>` (or `…/status` when `status`) with `body` (JSON). Throws
    /// ``KubeAPIError`` for a status other than 200, naming the request and the server's Status reason.
    /// Same as `kubectl patch node <name> [--subresource status] --type merge|strategic -p <body>`.
    public func patchNode(_ name: String, status: Bool = false, type: PatchType, body: String) async throws {
        var http = HTTPClient.Configuration()
        if config.server.hasPrefix("https://") { http.tlsConfiguration = try config.tlsConfiguration() }
        http.timeout = .init(connect: .init(timeout), read: .init(timeout))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
        let target = "/api/v1/nodes/\(KubeAPISource.percentEncoded(name))" + (status ? "/status" : "")
        let requestName = "PATCH \(target)"
        do {
            var request = HTTPClientRequest(url: config.server + target)
            request.method = .PATCH
            request.headers.add(name: "Content-Type", value: type.rawValue)
            request.headers.add(name: "Accept", value: "application/json")
            request.headers.add(name: "User-Agent", value: "keeld")
            if let token = token.current(), !token.isEmpty {
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
            }
            request.body = .bytes(ByteBuffer(string: body))
            let response = try await client.execute(request, timeout: .init(timeout), logger: nil)
            let answer = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok else {
                let head = WatchEvent.ObjectHead(json: Array(buffer: answer))
                throw KubeAPIError(request: requestName, code: Int(response.status.code),
                                   reason: head?.reason ?? "HTTP \(response.status.code)",
                                   message: head?.message ?? String(decoding: Array(buffer: answer).prefix(200), as: UTF8.self))
            }
        } catch {
            try? await client.shutdown()
            if let e = error as? KubeAPIError { throw e }
            throw KubeAPIError(request: requestName, code: nil, reason: "\(error)")
        }
        try await client.shutdown()
    }

    /// Merge patch of the Node's annotations: `{"metadata":{"annotations":{k: v}}}` (a nil value removes
    /// the key). Only the keys given change.
    public func annotateNode(_ name: String, _ annotations: [String: String?]) async throws {
        let pairs = annotations.sorted { $0.key < $1.key }.map { k, v in "\(jsonString(k)):\(v.map(jsonString) ?? "null")" }
        try await patchNode(name, type: .merge, body: "{\"metadata\":{\"annotations\":{\(pairs.joined(separator: ","))}}}")
    }

    /// Sets one condition in the Node's status (strategic merge: the other conditions stay), with
    /// `lastHeartbeatTime` and `lastTransitionTime` now. What flannel and Calico send for
    /// `NetworkUnavailable` once their routes are in place.
    public func setNodeCondition(_ name: String, type: String, status: String, reason: String, message: String,
                                 now: Date = Date()) async throws {
        let time = jsonString(Self.timestamp(now))
        let condition = "{\"type\":\(jsonString(type)),\"status\":\(jsonString(status)),\"reason\":\(jsonString(reason)),"
            + "\"message\":\(jsonString(message)),\"lastHeartbeatTime\":\(time),\"lastTransitionTime\":\(time)}"
        try await patchNode(name, status: true, type: .strategicMerge, body: "{\"status\":{\"conditions\":[\(condition)]}}")
    }

    /// RFC 3339 in UTC with seconds, as Kubernetes writes `metav1.Time`.
    static func timestamp(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: date)
    }
}

private func jsonString(_ s: String) -> String {
    let data = (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8)
    return String(decoding: data, as: UTF8.self)
}
