/// A network configuration list (`.conflist`): a named chain of plugin objects that share one
/// `cniVersion`. The runtime turns each element into a plugin's stdin with `pluginConfig(at:...)`,
/// which is also how tests build the config a plugin sees in a chain.
public struct NetworkConfigList: Sendable, Decodable, Equatable {
    public var cniVersion: String
    /// 1.1.0: the versions this list may be run as; the runtime picks the highest it supports.
    public var cniVersions: [String]?
    public var name: String
    public var disableCheck: Bool
    public var disableGC: Bool
    /// Each plugin object as written.
    public var plugins: [[String: JSONValue]]

    public static func decode(_ bytes: [UInt8]) throws -> NetworkConfigList {
        do { return try CNIJSON.decode(NetworkConfigList.self, from: bytes) } catch { throw CNIError(mapping: error) }
    }

    enum CodingKeys: String, CodingKey { case cniVersion, cniVersions, name, disableCheck, disableGC, plugins }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cniVersion = try c.decodeNonEmpty(.cniVersion) ?? "0.1.0"
        cniVersions = try c.decodeIfPresent([String].self, forKey: .cniVersions)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        try CNIValidation.validateNetworkName(name)
        disableCheck = try c.decodeLenientBool(.disableCheck)
        disableGC = try c.decodeLenientBool(.disableGC)
        plugins = try c.decodeIfPresent([[String: JSONValue]].self, forKey: .plugins) ?? []
        guard !plugins.isEmpty else { throw CNIError(.invalidNetworkConfig, "no plugins in network config list", details: CNIError.quoting(name)) }
    }

    /// The stdin for plugin `index`: its object with the list's `name` and `cniVersion`, the previous
    /// result (written in the list's version) and those `runtimeConfig` entries whose capability the
    /// plugin declared true, as libcni builds it.
    public func pluginConfig(at index: Int, prevResult: CNIResult? = nil,
                             runtimeConfig: [String: JSONValue] = [:]) throws -> [UInt8] {
        guard plugins.indices.contains(index) else {
            throw CNIError(.invalidNetworkConfig, "no plugin at index \(index)", details: CNIError.quoting(name))
        }
        var object = plugins[index]
        object["name"] = .string(name)
        object["cniVersion"] = .string(cniVersion)
        if let prevResult {
            object["prevResult"] = try CNIJSON.decode(JSONValue.self, from: try prevResult.encoded(as: cniVersion))
        }
        if case .object(let caps)? = object["capabilities"] {
            let granted = runtimeConfig.filter { caps[$0.key] == .bool(true) }
            if !granted.isEmpty { object["runtimeConfig"] = .object(granted) }
        }
        return JSONValue.object(object).jsonBytes
    }

    /// Plugin `index` decoded as the plugin itself would see it.
    public func networkConfig(at index: Int, prevResult: CNIResult? = nil,
                              runtimeConfig: [String: JSONValue] = [:]) throws -> NetworkConfig {
        try NetworkConfig.decode(try pluginConfig(at: index, prevResult: prevResult, runtimeConfig: runtimeConfig))
    }
}

extension KeyedDecodingContainer {
    /// libcni reads `disableCheck` as a bool or the strings "true"/"false".
    func decodeLenientBool(_ key: Key) throws -> Bool {
        if let b = try? decodeIfPresent(Bool.self, forKey: key) { return b }
        guard let s = try decodeIfPresent(String.self, forKey: key) else { return false }
        switch s.lowercased() {
        case "true", "1": return true
        case "false", "0", "": return false
        default: throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "not a boolean: \"\(quoted: s)\"")
        }
    }
}
