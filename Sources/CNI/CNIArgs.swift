/// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`, e.g. what kubelet's runtime passes:
/// `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=…`.
public struct CNIArgs: Sendable, Equatable {
    /// The pairs as given, `IgnoreUnknown` included. A repeated key keeps its last value.
    public var pairs: [String: String]
    /// `IgnoreUnknown` set to a true value: keys a plugin does not know are then not an error.
    public var ignoreUnknown: Bool
    /// The variable as it was set, for passing on to a delegated plugin.
    public var raw: String

    public init(pairs: [String: String] = [:], ignoreUnknown: Bool = false) {
        self.pairs = pairs
        self.ignoreUnknown = ignoreUnknown
        self.raw = pairs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";")
    }

    /// Parses `CNI_ARGS`. A segment without `=` or with an empty key is a code 4 error naming the
    /// segment; empty segments (a trailing `;`) are skipped.
    public init(parsing raw: String) throws {
        self.raw = raw
        pairs = [:]
        for segment in raw.split(separator: ";", omittingEmptySubsequences: true) {
            guard let eq = segment.firstIndex(of: "="), eq != segment.startIndex else {
                throw CNIError(.invalidEnvironment, "CNI_ARGS: invalid pair \"\(quoted: segment)\"", details: "expected KEY=VALUE pairs separated by ;")
            }
            pairs[String(segment[..<eq])] = String(segment[segment.index(after: eq)...])
        }
        switch pairs["IgnoreUnknown"]?.lowercased() {
        case nil, "0", "f", "false": ignoreUnknown = false
        case "1", "t", "true": ignoreUnknown = true
        case let other?:
            throw CNIError(.invalidEnvironment, "CNI_ARGS: IgnoreUnknown is not a boolean", details: CNIError.quoting(other))
        }
    }

    public subscript(key: String) -> String? { pairs[key] }

    public var podName: String? { pairs["K8S_POD_NAME"] }
    public var podNamespace: String? { pairs["K8S_POD_NAMESPACE"] }
    public var podUID: String? { pairs["K8S_POD_UID"] }
    public var podInfraContainerID: String? { pairs["K8S_POD_INFRA_CONTAINER_ID"] }

    /// The keys the pod-identifying runtimes send, which plugins accept without using.
    public static let kubernetesKeys: Set<String> = ["K8S_POD_NAME", "K8S_POD_NAMESPACE", "K8S_POD_UID",
                                                    "K8S_POD_INFRA_CONTAINER_ID", "IgnoreUnknown"]

    /// Throws code 2 (unsupported field) for a key outside `known` (and the Kubernetes keys), unless
    /// `IgnoreUnknown` is set. Plugins that read CNI_ARGS call this with the keys they understand.
    public func checkKnown(_ known: Set<String>) throws {
        guard !ignoreUnknown else { return }
        let unknown = pairs.keys.filter { !known.contains($0) && !Self.kubernetesKeys.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw CNIError(.unsupportedField, "CNI_ARGS: unknown args \(quoted: "\(unknown)")", details: "set IgnoreUnknown=1 to ignore them")
        }
    }
}
