import NetAddress

/// The result of ADD: the internal model, which is the 1.1.0 shape.
///
/// Decoding accepts every supported wire version (1.1.0, 1.0.0, 0.4.0, 0.3.x, and the 0.2.0 `ip4`/`ip6`
/// shape for old `prevResult`s); `encoded(as:)` writes any of 1.1.0, 1.0.0, 0.4.0, 0.3.1, 0.3.0.
public struct CNIResult: Sendable, Codable, Equatable {
    public var cniVersion: String
    public var interfaces: [Interface]
    public var ips: [IPConfig]
    public var routes: [RouteConfig]
    public var dns: DNS

    public init(cniVersion: String = CNIVersion.current, interfaces: [Interface] = [], ips: [IPConfig] = [],
                routes: [RouteConfig] = [], dns: DNS = DNS()) {
        self.cniVersion = cniVersion
        self.interfaces = interfaces
        self.ips = ips
        self.routes = routes
        self.dns = dns
    }

    /// The result as `version` puts it on the wire, with `cniVersion` set to `version`.
    /// 1.1.0 and 1.0.0 are the model as it is; 0.4.0 and 0.3.x add `"version": "4"|"6"` to each IP and
    /// keep only `name`, `mac` and `sandbox` of each interface (the fields those versions define).
    /// Any other version throws `CNIError(.incompatibleCNIVersion)`.
    public func encoded(as version: String) throws -> [UInt8] {
        switch CNIVersion.resultShape(version) {
        case .v1?:
            var copy = self
            copy.cniVersion = version
            return try CNIJSON.encode(copy)
        case .v04?:
            return try CNIJSON.encode(LegacyResult(self, version: version))
        case nil:
            throw CNIError(.incompatibleCNIVersion, "cannot convert result to version \(version)",
                           details: "result versions supported: \(CNIVersion.all.joined(separator: ", "))")
        }
    }

    /// Decodes a result of any supported version from JSON bytes (a delegated plugin's stdout).
    public static func decode(_ bytes: [UInt8]) throws -> CNIResult { try CNIJSON.decode(CNIResult.self, from: bytes) }

    private enum CodingKeys: String, CodingKey { case cniVersion, interfaces, ips, routes, dns, ip4, ip6 }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cniVersion = try c.decodeIfPresent(String.self, forKey: .cniVersion) ?? ""
        interfaces = try c.decodeIfPresent([Interface].self, forKey: .interfaces) ?? []
        ips = try c.decodeIfPresent([IPConfig].self, forKey: .ips) ?? []
        routes = try c.decodeIfPresent([RouteConfig].self, forKey: .routes) ?? []
        dns = try c.decodeIfPresent(DNS.self, forKey: .dns) ?? DNS()
        // 0.1.0/0.2.0: one address per family with its routes inside.
        for key in [CodingKeys.ip4, .ip6] {
            guard let old = try c.decodeIfPresent(LegacyIP.self, forKey: key) else { continue }
            ips.append(IPConfig(address: old.ip, gateway: old.gateway))
            routes += old.routes ?? []
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(cniVersion, forKey: .cniVersion)
        if !interfaces.isEmpty { try c.encode(interfaces, forKey: .interfaces) }
        if !ips.isEmpty { try c.encode(ips, forKey: .ips) }
        if !routes.isEmpty { try c.encode(routes, forKey: .routes) }
        if !dns.isEmpty { try c.encode(dns, forKey: .dns) }
    }

    private struct LegacyIP: Decodable {
        var ip: CIDR, gateway: IPAddress?, routes: [RouteConfig]?
        enum CodingKeys: String, CodingKey { case ip, gateway, routes }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            ip = try c.decodeCIDR(.ip)
            gateway = try c.decodeAddressIfPresent(.gateway)
            routes = try c.decodeIfPresent([RouteConfig].self, forKey: .routes)
        }
    }
}

/// An interface a plugin created or knows of.
public struct Interface: Sendable, Codable, Equatable {
    public var name: String
    public var mac: MACAddress?
    public var mtu: Int?
    /// The netns path for an interface inside the container; nil for host-side interfaces.
    public var sandbox: String?
    public var socketPath: String?
    public var pciID: String?

    public init(name: String, mac: MACAddress? = nil, mtu: Int? = nil, sandbox: String? = nil,
                socketPath: String? = nil, pciID: String? = nil) {
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.sandbox = sandbox
        self.socketPath = socketPath
        self.pciID = pciID
    }

    enum CodingKeys: String, CodingKey { case name, mac, mtu, sandbox, socketPath, pciID }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        mac = try c.decodeMACIfPresent(.mac)
        mtu = try c.decodeIfPresent(Int.self, forKey: .mtu)
        sandbox = try c.decodeNonEmpty(.sandbox)
        socketPath = try c.decodeNonEmpty(.socketPath)
        pciID = try c.decodeNonEmpty(.pciID)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encodeIfPresent(mac?.description, forKey: .mac)
        if let mtu, mtu != 0 { try c.encode(mtu, forKey: .mtu) }
        try c.encodeIfPresent(sandbox, forKey: .sandbox)
        try c.encodeIfPresent(socketPath, forKey: .socketPath)
        try c.encodeIfPresent(pciID, forKey: .pciID)
    }
}

/// An address a plugin assigned.
public struct IPConfig: Sendable, Codable, Equatable {
    /// The address with its prefix length and host bits: `10.244.1.5/24`.
    public var address: CIDR
    public var gateway: IPAddress?
    /// Index into the result's `interfaces`.
    public var interface: Int?

    public init(address: CIDR, gateway: IPAddress? = nil, interface: Int? = nil) {
        self.address = address
        self.gateway = gateway
        self.interface = interface
    }

    enum CodingKeys: String, CodingKey { case address, gateway, interface, version }

    // `version` (0.3.x/0.4.0) is implied by the address and not kept.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        address = try c.decodeCIDR(.address)
        gateway = try c.decodeAddressIfPresent(.gateway)
        interface = try c.decodeIfPresent(Int.self, forKey: .interface)
    }

    public func encode(to encoder: any Encoder) throws { try encode(to: encoder, withVersion: false) }

    func encode(to encoder: any Encoder, withVersion: Bool) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if withVersion { try c.encode(address.family == .ipv4 ? "4" : "6", forKey: .version) }
        try c.encode(address.description, forKey: .address)
        try c.encodeIfPresent(gateway?.description, forKey: .gateway)
        try c.encodeIfPresent(interface, forKey: .interface)
    }
}

/// A route a plugin installed (or asks the runtime to know of).
public struct RouteConfig: Sendable, Codable, Equatable {
    public var dst: CIDR
    public var gw: IPAddress?
    public var mtu: Int?
    public var advmss: Int?
    public var priority: Int?
    public var table: Int?
    public var scope: Int?

    public init(dst: CIDR, gw: IPAddress? = nil, mtu: Int? = nil, advmss: Int? = nil, priority: Int? = nil,
                table: Int? = nil, scope: Int? = nil) {
        self.dst = dst
        self.gw = gw
        self.mtu = mtu
        self.advmss = advmss
        self.priority = priority
        self.table = table
        self.scope = scope
    }

    enum CodingKeys: String, CodingKey { case dst, gw, mtu, advmss = "advmss", priority, table, scope }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        dst = try c.decodeCIDR(.dst)
        gw = try c.decodeAddressIfPresent(.gw)
        mtu = try c.decodeIfPresent(Int.self, forKey: .mtu)
        advmss = try c.decodeIfPresent(Int.self, forKey: .advmss)
        priority = try c.decodeIfPresent(Int.self, forKey: .priority)
        table = try c.decodeIfPresent(Int.self, forKey: .table)
        scope = try c.decodeIfPresent(Int.self, forKey: .scope)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(dst.description, forKey: .dst)
        try c.encodeIfPresent(gw?.description, forKey: .gw)
        for (key, value) in [(CodingKeys.mtu, mtu), (.advmss, advmss), (.priority, priority)] {
            if let value, value != 0 { try c.encode(value, forKey: key) }
        }
        // table 0 and scope 0 (RT_SCOPE_UNIVERSE) are meaningful values, so only nil is left out.
        try c.encodeIfPresent(table, forKey: .table)
        try c.encodeIfPresent(scope, forKey: .scope)
    }
}

/// DNS settings: in a network config (what the runtime should apply) and in a result.
public struct DNS: Sendable, Codable, Equatable {
    public var nameservers: [String]
    public var domain: String?
    public var search: [String]
    public var options: [String]

    public init(nameservers: [String] = [], domain: String? = nil, search: [String] = [], options: [String] = []) {
        self.nameservers = nameservers
        self.domain = domain
        self.search = search
        self.options = options
    }

    public var isEmpty: Bool { nameservers.isEmpty && (domain ?? "").isEmpty && search.isEmpty && options.isEmpty }

    enum CodingKeys: String, CodingKey { case nameservers, domain, search, options }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        nameservers = try c.decodeIfPresent([String].self, forKey: .nameservers) ?? []
        domain = try c.decodeNonEmpty(.domain)
        search = try c.decodeIfPresent([String].self, forKey: .search) ?? []
        options = try c.decodeIfPresent([String].self, forKey: .options) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if !nameservers.isEmpty { try c.encode(nameservers, forKey: .nameservers) }
        try c.encodeIfPresent(domain, forKey: .domain)
        if !search.isEmpty { try c.encode(search, forKey: .search) }
        if !options.isEmpty { try c.encode(options, forKey: .options) }
    }
}

/// The 0.3.x/0.4.0 wire shape.
private struct LegacyResult: Encodable {
    var result: CNIResult
    init(_ result: CNIResult, version: String) {
        self.result = result
        self.result.cniVersion = version
    }
    struct LegacyInterface: Encodable {
        var interface: Interface
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Interface.CodingKeys.self)
            try c.encode(interface.name, forKey: .name)
            try c.encodeIfPresent(interface.mac?.description, forKey: .mac)
            try c.encodeIfPresent(interface.sandbox, forKey: .sandbox)
        }
    }
    struct LegacyIPConfig: Encodable {
        var ip: IPConfig
        func encode(to encoder: any Encoder) throws { try ip.encode(to: encoder, withVersion: true) }
    }
    enum CodingKeys: String, CodingKey { case cniVersion, interfaces, ips, routes, dns }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(result.cniVersion, forKey: .cniVersion)
        if !result.interfaces.isEmpty { try c.encode(result.interfaces.map(LegacyInterface.init), forKey: .interfaces) }
        if !result.ips.isEmpty { try c.encode(result.ips.map(LegacyIPConfig.init), forKey: .ips) }
        if !result.routes.isEmpty { try c.encode(result.routes, forKey: .routes) }
        if !result.dns.isEmpty { try c.encode(result.dns, forKey: .dns) }
    }
}

extension KeyedDecodingContainer {
    /// A CIDR with an explicit prefix: `10.0.0.5/24`. A bare address is rejected, as Go's ParseCIDR does.
    func decodeCIDR(_ key: Key) throws -> CIDR {
        let text = try decode(String.self, forKey: key)
        guard text.contains("/"), let cidr = CIDR(text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "invalid CIDR \"\(quoted: text)\"")
        }
        return cidr
    }
    func decodeAddressIfPresent(_ key: Key) throws -> IPAddress? {
        guard let text = try decodeNonEmpty(key) else { return nil }
        guard let address = IPAddress(text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "invalid IP address \"\(quoted: text)\"")
        }
        return address
    }
    func decodeMACIfPresent(_ key: Key) throws -> MACAddress? {
        guard let text = try decodeNonEmpty(key) else { return nil }
        guard let mac = MACAddress(text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "invalid MAC address \"\(quoted: text)\"")
        }
        return mac
    }
    /// Go writes empty strings with `omitempty` but other producers write `""`: both mean absent.
    func decodeNonEmpty(_ key: Key) throws -> String? {
        guard let s = try decodeIfPresent(String.self, forKey: key), !s.isEmpty else { return nil }
        return s
    }
}
