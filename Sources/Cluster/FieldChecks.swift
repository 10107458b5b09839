import NetAddress

/// The field checks that every kind's validation shares. Each appends a ``FieldIssue`` naming `field`
/// when the value is bad, and returns the typed value or nil.
///
/// Two severities, as ``ManifestProblem/Severity`` reports them: an error (`fail`) makes keeld skip the
/// object, a warning (`warn`) keeps it while saying what keeld ignores or what Kubernetes would refuse.
/// keeld and `keelctl validate` both get them from here: one set of rules.
struct FieldChecks {
    var issues: [FieldIssue] = []
    var warnings: [FieldIssue] = []

    /// The address family keeld's data paths program: the proxy's and the policy enforcer's nftables
    /// tables are of family `ip`. Addresses of the other family are accepted, and ignored with a warning.
    static let programmedFamily = AddressFamily.ipv4

    mutating func fail(_ field: String, _ reason: String) {
        issues.append(FieldIssue(field: field, reason: reason))
    }

    mutating func warn(_ field: String, _ reason: String) {
        warnings.append(FieldIssue(field: field, reason: reason))
    }

    /// The outcome: `model` unless an error was reported, with every warning either way.
    func validation<Model>(_ model: Model?) -> Validation<Model> {
        guard issues.isEmpty, let model else {
            return Validation(result: .failure(FieldIssues(issues: issues)), warnings: warnings)
        }
        return Validation(result: .success(model), warnings: warnings)
    }

    /// Warns when `address` is of a family the data path does not program; `what` says what is lost.
    mutating func programmedFamily(_ address: IPAddress, _ field: String, _ what: String = "ignored") {
        guard address.family != Self.programmedFamily else { return }
        warn(field, "\(address) is \(address.family.kubernetesName): \(what) (keeld's data path is \(Self.programmedFamily.kubernetesName)-only)")
    }

    /// Kubernetes' `ValidateNonSpecialIP` (endpoints, external IPs): no unspecified, loopback or
    /// link-local address, which would point the data path at the node itself or its metadata service.
    mutating func nonSpecialIP(_ address: IPAddress, _ field: String) {
        let reason: String? = switch address {
        case .v4(let a):
            a.value == 0 ? "may not be unspecified (0.0.0.0)"
                : a.value >> 24 == 127 ? "may not be in the loopback range (127.0.0.0/8)"
                : a.value >> 16 == 0xA9FE ? "may not be in the link-local range (169.254.0.0/16)"
                : a.value >> 8 == 0xE00000 ? "may not be in the link-local multicast range (224.0.0.0/24)" : nil
        case .v6:
            address.description == "::" ? "may not be unspecified (::)"
                : address.description == "::1" ? "may not be the loopback address (::1)"
                : CIDR("fe80::/10")!.contains(address) ? "may not be in the link-local range (fe80::/10)"
                : CIDR("ff02::/16")!.contains(address) ? "may not be in the link-local multicast range (ff02::/16)" : nil
        }
        if let reason { fail(field, "\(address) \(reason)") }
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

    /// apimachinery's `IsDNS1123Subdomain` (most object names, node names): at most 253 characters,
    /// RFC 1123 labels joined by dots.
    static func isDNSSubdomain(_ s: String) -> Bool {
        s.utf8.count <= 253 && !s.isEmpty && s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNSLabel(String($0)) }
    }

    /// apimachinery's `IsDNS1035Label` (Service names): an RFC 1123 label that starts with a letter.
    static func isDNS1035Label(_ s: String) -> Bool {
        isDNSLabel(s) && s.utf8.first.map { $0 >= 0x61 && $0 <= 0x7a } == true
    }

    /// The name part of a qualified name or a label value: at most 63 of `A-Z a-z 0-9 - _ .`, starting
    /// and ending alphanumeric (apimachinery's `qualifiedNameFmt`).
    private static func isQualifiedNamePart(_ s: Substring) -> Bool {
        let bytes = Array(s.utf8)
        func alnum(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) }
        guard !bytes.isEmpty, bytes.count <= 63, alnum(bytes.first!), alnum(bytes.last!) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == 0x2d || $0 == 0x5f || $0 == 0x2e }
    }

    /// Why `key` is not a qualified name (apimachinery's `IsQualifiedName`: label and annotation keys,
    /// `[prefix/]name`, the prefix a DNS-1123 subdomain), or nil when it is one.
    static func qualifiedNameProblem(_ key: String) -> String? {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        let name: Substring
        switch parts.count {
        case 1: name = parts[0]
        case 2:
            guard isDNSSubdomain(String(parts[0])) else {
                return "\"\(key)\": the prefix before '/' must be a DNS-1123 subdomain (lowercase a-z, 0-9, '-' and '.', at most 253)"
            }
            name = parts[1]
        default: return "\"\(key)\": at most one '/' (an optional DNS subdomain prefix, then a name)"
        }
        guard isQualifiedNamePart(name) else {
            return "\"\(key)\": the name part must be at most 63 of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending alphanumeric"
        }
        return nil
    }

    /// apimachinery's `IsValidLabelValue`: empty, or a qualified name's name part.
    static func isLabelValue(_ s: String) -> Bool { s.isEmpty || isQualifiedNamePart(s[...]) }

    static let labelValueRule = "at most 63 of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending alphanumeric, or empty"

    /// A label map (`metadata.labels`, a Service's `spec.selector`): keys qualified names, values label values.
    mutating func labels(_ labels: [String: String]?, _ field: String) {
        for (key, value) in (labels ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let problem = Self.qualifiedNameProblem(key) {
                fail(field, "key \(problem)")
            } else if !Self.isLabelValue(value) {
                fail("\(field)[\(key)]", "\"\(value)\" is not a label value (\(Self.labelValueRule))")
            }
        }
    }

    /// An IANA service name (container port names, so named `targetPort`s): at most 15 of
    /// `a-z 0-9 -`, at least one letter, no hyphen at either end or next to another.
    static func isIANAServiceName(_ s: String) -> Bool {
        guard s.utf8.count <= 15, isDNSLabel(s), !s.contains("--") else { return false }
        return s.utf8.contains { $0 >= 0x61 && $0 <= 0x7a }
    }
}

/// What validating one manifest gives: the object, or the errors that make keeld skip it; and the
/// warnings, which never cost the object.
struct Validation<Model> {
    var result: Result<Model, FieldIssues>
    var warnings: [FieldIssue]

    /// The object, for the validating `init(from:)`s; throws the first error.
    func get(_ decoder: any Decoder) throws -> Model {
        switch result {
        case .success(let model): return model
        case .failure(let failure): throw failure.decodingError(decoder)
        }
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
