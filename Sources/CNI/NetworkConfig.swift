import NetAddress

/// The fields every plugin's network config shares (SPEC.md, "Network configuration" and the
/// plugin-configuration objects the runtime derives from a conflist). Plugin-specific keys are not
/// modelled here: decode them from `CNIRequest.rawConfig` with `CNIRequest.decodeConfig(_:)`.
///
/// Decoding throws `CNIError(.invalidNetworkConfig)` for a missing or invalid `name` and a missing `type`,
/// and a `DecodingError` naming the field for anything else malformed (`prevResult.ips[0].address`).
public struct NetworkConfig: Sendable, Codable, Equatable {
    /// As written; a config without one is `0.1.0`, which is what the reference assumes.
    public var cniVersion: String
    public var name: String
    public var type: String
    public var ipam: IPAMConfig?
    public var dns: DNS?
    /// The previous plugin's result in a chain, read from any supported version.
    public var prevResult: CNIResult?
    public var runtimeConfig: RuntimeConfig?
    public var capabilities: [String: Bool]?

    public init(cniVersion: String = CNIVersion.current, name: String, type: String, ipam: IPAMConfig? = nil,
                dns: DNS? = nil, prevResult: CNIResult? = nil, runtimeConfig: RuntimeConfig? = nil,
                capabilities: [String: Bool]? = nil) {
        self.cniVersion = cniVersion
        self.name = name
        self.type = type
        self.ipam = ipam
        self.dns = dns
        self.prevResult = prevResult
        self.runtimeConfig = runtimeConfig
        self.capabilities = capabilities
    }

    /// Decodes and validates a config from stdin bytes. Every failure is a `CNIError` (6 for bytes that
    /// are not a JSON object, 7 for a missing/invalid field), ready for the error reply.
    public static func decode(_ bytes: [UInt8]) throws -> NetworkConfig {
        do { return try CNIJSON.decode(NetworkConfig.self, from: bytes) } catch { throw CNIError(mapping: error) }
    }

    enum CodingKeys: String, CodingKey { case cniVersion, name, type, ipam, dns, prevResult, runtimeConfig, capabilities }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cniVersion = try c.decodeNonEmpty(.cniVersion) ?? "0.1.0"
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        try CNIValidation.validateNetworkName(name)
        type = try c.decodeIfPresent(String.self, forKey: .type) ?? ""
        guard !type.isEmpty else { throw CNIError(.invalidNetworkConfig, "missing plugin type", details: "network \(quoted: name)") }
        ipam = try c.decodeIfPresent(IPAMConfig.self, forKey: .ipam)
        dns = try c.decodeIfPresent(DNS.self, forKey: .dns)
        prevResult = try c.decodeIfPresent(CNIResult.self, forKey: .prevResult)
        runtimeConfig = try c.decodeIfPresent(RuntimeConfig.self, forKey: .runtimeConfig)
        capabilities = try c.decodeIfPresent([String: Bool].self, forKey: .capabilities)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(cniVersion, forKey: .cniVersion)
        try c.encode(name, forKey: .name)
        try c.encode(type, forKey: .type)
        try c.encodeIfPresent(ipam, forKey: .ipam)
        try c.encodeIfPresent(dns, forKey: .dns)
        try c.encodeIfPresent(prevResult, forKey: .prevResult)
        try c.encodeIfPresent(runtimeConfig, forKey: .runtimeConfig)
        try c.encodeIfPresent(capabilities, forKey: .capabilities)
    }
}

/// The `ipam` section: its `type` (the IPAM plugin to delegate to) and the whole object as JSON,
/// which belongs to that plugin.
public struct IPAMConfig: Sendable, Codable, Equatable {
    public var type: String
    /// The whole `ipam` object as written, `type` included.
    public var raw: JSONValue

    public init(type: String, raw: JSONValue? = nil) {
        self.type = type
        var object = raw?.objectValue ?? [:]
        object["type"] = .string(type)
        self.raw = .object(object)
    }

    public init(from decoder: any Decoder) throws {
        raw = try JSONValue(from: decoder)
        guard case .object(let object) = raw else {
            throw DecodingError.typeMismatch([String: JSONValue].self, .init(codingPath: decoder.codingPath,
                                             debugDescription: "ipam must be an object"))
        }
        guard let t = object["type"] else { type = ""; return }
        guard let s = t.stringValue else {
            throw DecodingError.typeMismatch(String.self, .init(codingPath: decoder.codingPath + [CNIRawKey("type")],
                                             debugDescription: "ipam.type must be a string"))
        }
        type = s
    }

    public func encode(to encoder: any Encoder) throws { try raw.encode(to: encoder) }

    /// The IPAM section as a plugin-specific type (a DecodingError is mapped by `CNIError(mapping:)`).
    public func decode<T: Decodable>(_ type: T.Type) throws -> T { try raw.decode(type) }
}

/// `runtimeConfig`: what the runtime fills in for the capabilities a plugin declared. The conventional
/// keys are typed; every other key is kept in `other`.
public struct RuntimeConfig: Sendable, Codable, Equatable {
    /// `ips` capability: requested addresses, as the runtime wrote them (with or without a prefix).
    public var ips: [String]?
    public var portMappings: [PortMapping]?
    public var mac: MACAddress?
    /// `bandwidth` capability, passed through as written (ingressRate, ingressBurst, egressRate, egressBurst).
    public var bandwidth: JSONValue?
    /// Any other key (`aliases`, `cgroupPath`, `deviceID`, `io.kubernetes.cri.pod-annotations`, ...).
    public var other: [String: JSONValue]

    public init(ips: [String]? = nil, portMappings: [PortMapping]? = nil, mac: MACAddress? = nil,
                bandwidth: JSONValue? = nil, other: [String: JSONValue] = [:]) {
        self.ips = ips
        self.portMappings = portMappings
        self.mac = mac
        self.bandwidth = bandwidth
        self.other = other
    }

    private static let typedKeys: Set<String> = ["ips", "portMappings", "mac", "bandwidth"]

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CNIRawKey.self)
        ips = try c.decodeIfPresent([String].self, forKey: CNIRawKey("ips"))
        portMappings = try c.decodeIfPresent([PortMapping].self, forKey: CNIRawKey("portMappings"))
        mac = try c.decodeMACIfPresent(CNIRawKey("mac"))
        bandwidth = try c.decodeIfPresent(JSONValue.self, forKey: CNIRawKey("bandwidth"))
        other = [:]
        for key in c.allKeys where !Self.typedKeys.contains(key.stringValue) {
            other[key.stringValue] = try c.decode(JSONValue.self, forKey: key)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CNIRawKey.self)
        for (key, value) in other { try c.encode(value, forKey: CNIRawKey(key)) }
        try c.encodeIfPresent(ips, forKey: CNIRawKey("ips"))
        try c.encodeIfPresent(portMappings, forKey: CNIRawKey("portMappings"))
        try c.encodeIfPresent(mac?.description, forKey: CNIRawKey("mac"))
        try c.encodeIfPresent(bandwidth, forKey: CNIRawKey("bandwidth"))
    }
}

/// One entry of the `portMappings` capability.
public struct PortMapping: Sendable, Codable, Equatable {
    public var hostPort: Int
    public var containerPort: Int
    public var `protocol`: String
    public var hostIP: String?

    public init(hostPort: Int, containerPort: Int, protocol: String = "tcp", hostIP: String? = nil) {
        self.hostPort = hostPort
        self.containerPort = containerPort
        self.protocol = `protocol`
        self.hostIP = hostIP
    }

    enum CodingKeys: String, CodingKey { case hostPort, containerPort, `protocol`, hostIP }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hostPort = try c.decode(Int.self, forKey: .hostPort)
        containerPort = try c.decode(Int.self, forKey: .containerPort)
        `protocol` = try c.decodeNonEmpty(.protocol) ?? "tcp"
        hostIP = try c.decodeNonEmpty(.hostIP)
    }
}

/// A container attachment: what GC's `cni.dev/valid-attachments` lists.
public struct Attachment: Sendable, Codable, Hashable {
    public var containerID: String
    public var ifname: String
    public init(containerID: String, ifname: String) {
        self.containerID = containerID
        self.ifname = ifname
    }
}

/// A coding key for objects whose keys are data (runtimeConfig, conflist plugin objects).
struct CNIRawKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
