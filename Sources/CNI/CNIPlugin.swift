/// A CNI plugin: what a plugin executable implements and hands to `CNIEntry.exit(running:about:)`.
///
/// The entry point has already validated the environment, the common config fields and the
/// `cniVersion` when a method is called. Throw a `CNIError` to choose the code; any other error is
/// mapped by `CNIError(mapping:)` (999 with its description unless it is a decoding error).
public protocol CNIPlugin {
    /// Versions this plugin speaks; VERSION answers with them and a config outside them gets code 1.
    var supportedVersions: [String] { get }
    /// Creates the attachment and returns what was made; the entry writes it in the config's version.
    func add(_ request: CNIRequest) throws -> CNIResult
    /// Removes the attachment. Something already gone is success.
    func del(_ request: CNIRequest) throws
    /// Verifies the attachment against `request.config.prevResult` (cniVersion >= 0.4.0 only).
    func check(_ request: CNIRequest) throws
    /// Removes resources of attachments not in `request.validAttachments` (cniVersion >= 1.1.0 only).
    func gc(_ request: CNIGCRequest) throws
    /// Throws `CNIError(.pluginNotAvailable)` (50) or `.pluginNotAvailableLimited` (51) when the plugin
    /// cannot serve ADDs now (cniVersion >= 1.1.0 only).
    func status(_ request: CNIStatusRequest) throws
}

extension CNIPlugin {
    public var supportedVersions: [String] { CNIVersion.all }
    public func gc(_ request: CNIGCRequest) throws {}
    public func status(_ request: CNIStatusRequest) throws {}
}

/// ADD, DEL or CHECK: the environment and the config, parsed and validated.
public struct CNIRequest: Sendable {
    public var command: CNICommand
    public var containerID: String
    /// The netns path; nil only for a DEL without CNI_NETNS.
    public var netns: String?
    public var ifName: String
    public var args: CNIArgs
    /// CNI_PATH, split at `:`.
    public var path: [String]
    public var config: NetworkConfig
    /// The stdin bytes, for plugin-specific decoding and for passing on to a delegated plugin.
    public var rawConfig: [UInt8]
    /// The whole environment the plugin was started with; a delegated plugin inherits it.
    public var environment: [String: String]

    public init(command: CNICommand, containerID: String, netns: String?, ifName: String, args: CNIArgs = CNIArgs(),
                path: [String], config: NetworkConfig, rawConfig: [UInt8], environment: [String: String] = [:]) {
        self.command = command
        self.containerID = containerID
        self.netns = netns
        self.ifName = ifName
        self.args = args
        self.path = path
        self.config = config
        self.rawConfig = rawConfig
        self.environment = environment
    }

    /// The config as a plugin-specific type. Any failure is a `CNIError`: 6 when the bytes are not JSON,
    /// 7 with the field path (`ipam.ranges[0][0].subnet`) when a field is missing or malformed.
    public func decodeConfig<T: Decodable>(_ type: T.Type) throws -> T {
        do { return try CNIJSON.decode(type, from: rawConfig) } catch { throw CNIError(mapping: error) }
    }

    /// The environment to start a delegated plugin with: the caller's, with the CNI_* variables
    /// rebuilt from this request and CNI_COMMAND set to `command`.
    public func delegateEnvironment(command: CNICommand) -> [String: String] {
        var env = environment
        env["CNI_COMMAND"] = command.rawValue
        env["CNI_CONTAINERID"] = containerID
        env["CNI_NETNS"] = netns
        env["CNI_IFNAME"] = ifName
        env["CNI_ARGS"] = args.raw.isEmpty ? nil : args.raw
        env["CNI_PATH"] = path.joined(separator: ":")
        return env
    }
}

/// GC (spec 1.1.0): the config with the attachments the runtime still knows.
public struct CNIGCRequest: Sendable {
    public var config: NetworkConfig
    public var rawConfig: [UInt8]
    /// `cni.dev/valid-attachments`: every attachment not listed here may be cleaned up.
    public var validAttachments: [Attachment]
    public var path: [String]
    public var environment: [String: String]

    public init(config: NetworkConfig, rawConfig: [UInt8], validAttachments: [Attachment], path: [String],
                environment: [String: String] = [:]) {
        self.config = config
        self.rawConfig = rawConfig
        self.validAttachments = validAttachments
        self.path = path
        self.environment = environment
    }

    public func decodeConfig<T: Decodable>(_ type: T.Type) throws -> T {
        do { return try CNIJSON.decode(type, from: rawConfig) } catch { throw CNIError(mapping: error) }
    }

    /// Reads `cni.dev/valid-attachments` from `rawConfig`; absent means none.
    static func validAttachments(in rawConfig: [UInt8]) throws -> [Attachment] {
        struct Wrapper: Decodable {
            var attachments: [Attachment]?
            enum CodingKeys: String, CodingKey { case attachments = "cni.dev/valid-attachments" }
        }
        do { return try CNIJSON.decode(Wrapper.self, from: rawConfig).attachments ?? [] } catch { throw CNIError(mapping: error) }
    }
}

/// STATUS (spec 1.1.0): is the plugin ready for ADDs?
public struct CNIStatusRequest: Sendable {
    public var config: NetworkConfig
    public var rawConfig: [UInt8]
    public var path: [String]
    public var environment: [String: String]

    public init(config: NetworkConfig, rawConfig: [UInt8], path: [String], environment: [String: String] = [:]) {
        self.config = config
        self.rawConfig = rawConfig
        self.path = path
        self.environment = environment
    }

    public func decodeConfig<T: Decodable>(_ type: T.Type) throws -> T {
        do { return try CNIJSON.decode(type, from: rawConfig) } catch { throw CNIError(mapping: error) }
    }
}
