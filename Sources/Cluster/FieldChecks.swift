import NetAddress

/// The field checks that Service and EndpointSlice validation share. Each appends a ``FieldIssue``
/// naming `field` when the value is bad, and returns the typed value or nil.
struct FieldChecks {
    var issues: [FieldIssue] = []

    mutating func fail(_ field: String, _ reason: String) {
        issues.append(FieldIssue(field: field, reason: reason))
    }

    /// An IP address of either family (or of `family`, when given).
    mutating func ip(_ text: String, _ field: String, family: AddressFamily? = nil) -> IPAddress? {
        guard let address = IPAddress(text) else {
            fail(field, "\"\(text)\" is not an IP address")
            return nil
        }
        if let family, address.family != family {
            fail(field, "\"\(text)\" is not an \(family == .ipv4 ? "IPv4" : "IPv6") address")
            return nil
        }
        return address
    }

    /// A prefix written with a `/`; host bits are cleared, as kube-proxy does for source ranges.
    mutating func cidr(_ text: String, _ field: String) -> CIDR? {
        let trimmed = text.trimmingWhitespace
        guard trimmed.contains("/"), let cidr = CIDR(trimmed) else {
            fail(field, "\"\(text)\" is not a CIDR")
            return nil
        }
        return cidr.masked
    }

    /// A port number 1–65535. `zeroMeansUnset` for fields where Kubernetes writes 0 for "none" (`nodePort`).
    mutating func port(_ value: Int?, _ field: String, required: Bool, zeroMeansUnset: Bool = false) -> UInt16? {
        guard let value, !(zeroMeansUnset && value == 0) else {
            if required { fail(field, "missing") }
            return nil
        }
        guard (1...65535).contains(value) else {
            fail(field, "\(value) is not a port number (1-65535)")
            return nil
        }
        return UInt16(value)
    }

    /// `TCP`, `UDP` or `SCTP`; TCP when absent.
    mutating func portProtocol(_ text: String?, _ field: String) -> PortProtocol? {
        guard let text else { return .tcp }
        guard let p = PortProtocol(rawValue: text) else {
            fail(field, "\"\(text)\" is not TCP, UDP or SCTP")
            return nil
        }
        return p
    }

    /// One of an enum's raw values, or `defaultValue` when absent.
    mutating func oneOf<E: RawRepresentable & CaseIterable>(_ text: String?, _ field: String, default defaultValue: E) -> E?
        where E.RawValue == String {
        guard let text else { return defaultValue }
        guard let value = E(rawValue: text) else {
            let names = E.allCases.map(\.rawValue)
            fail(field, "\"\(text)\" is not \(names.dropLast().joined(separator: ", ")) or \(names.last!)")
            return nil
        }
        return value
    }

    /// An RFC 1123 label (port names): at most 63 of `a-z 0-9 -`, starting and ending alphanumeric.
    static func isDNSLabel(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        func alnum(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) }
        guard !bytes.isEmpty, bytes.count <= 63, alnum(bytes.first!), alnum(bytes.last!) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == 0x2d }
    }

    /// An IANA service name (container port names, so named `targetPort`s): at most 15 of
    /// `a-z 0-9 -`, at least one letter, no hyphen at either end or next to another.
    static func isIANAServiceName(_ s: String) -> Bool {
        guard s.utf8.count <= 15, isDNSLabel(s), !s.contains("--") else { return false }
        return s.utf8.contains { $0 >= 0x61 && $0 <= 0x7a }
    }
}

extension String {
    var trimmingWhitespace: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

/// A Kubernetes `IntOrString` (`targetPort`): YAML writes `8080` or `http`.
enum IntOrString: Codable, Hashable {
    case int(Int)
    case string(String)

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int.self) {
            self = .int(i)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else {
            throw DecodingError.typeMismatch(IntOrString.self, .init(codingPath: decoder.codingPath,
                                                                     debugDescription: "expected a number or a name"))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let i): try c.encode(i)
        case .string(let s): try c.encode(s)
        }
    }
}

extension AddressFamily {
    /// The spelling of `ipFamilies` and EndpointSlice `addressType`.
    var kubernetesName: String { self == .ipv4 ? "IPv4" : "IPv6" }
}

extension ObjectMeta {
    /// The metadata of a decoded manifest; `namespace` is kept as written (nil when absent).
    init(_ m: NodeManifest.Metadata?, name: String) {
        self.init(name: name, namespace: m?.namespace, uid: m?.uid, resourceVersion: m?.resourceVersion,
                  labels: m?.labels ?? [:], annotations: m?.annotations ?? [:])
    }

    var manifest: NodeManifest.Metadata {
        .init(name: name, namespace: namespace, uid: uid, resourceVersion: resourceVersion,
              labels: labels.isEmpty ? nil : labels, annotations: annotations.isEmpty ? nil : annotations)
    }
}

extension FieldIssues {
    /// The error a validating `init(from:)` throws: the first issue, as Node does.
    func decodingError(_ decoder: any Decoder) -> DecodingError {
        DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                          debugDescription: "\(issues[0].field): \(issues[0].reason)"))
    }
}
