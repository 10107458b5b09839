import Glibc

/// The plugin entry point: environment + stdin in, result or error JSON on stdout, an exit status out.
/// The yardstick is the reference's `skel` dispatcher; differences are noted where they are made.
public enum CNIEntry {
    /// Runs one CNI invocation with every input and output injected (tests call this directly).
    /// Returns 0 on success and 1 after writing the error JSON to `stdout`, as the spec asks.
    public static func run(_ plugin: some CNIPlugin, environment: [String: String], stdin: [UInt8],
                           stdout: (([UInt8]) -> Void), stderr: (([UInt8]) -> Void), about: String) -> Int32 {
        // An error reply speaks the config's version whenever the config names one the kit can write,
        // even when the failure (a missing variable) comes before the config is decoded.
        var replyVersion = CNIVersion.current
        if environment["CNI_COMMAND"] != CNICommand.version.rawValue,
           let sniffed = (try? JSONValue(parsing: stdin))?["cniVersion"]?.stringValue, CNIVersion.all.contains(sniffed) {
            replyVersion = sniffed
        }
        do {
            let commandName = environment["CNI_COMMAND"] ?? ""
            if commandName.isEmpty, !about.isEmpty {
                // A human ran the binary: say what it is, as skel does.
                stderr(Array("\(about)\nCNI protocol versions supported: \(plugin.supportedVersions.joined(separator: ", "))\n".utf8))
                return 0
            }
            guard !commandName.isEmpty else {
                throw CNIError(.invalidEnvironment, "required env variables [CNI_COMMAND] missing", details: "CNI_COMMAND")
            }
            guard let command = CNICommand(rawValue: commandName) else {
                throw CNIError(.invalidEnvironment, "unknown CNI_COMMAND: \(quoted: commandName)")
            }
            let missing = command.requiredEnvironment.filter { (environment[$0] ?? "").isEmpty }
            guard missing.isEmpty else {
                throw CNIError(.invalidEnvironment, "required env variables [\(missing.joined(separator: ","))] missing",
                               details: missing.joined(separator: ","))
            }
            if command == .version {
                // VERSION ignores stdin: the runtime may send `{"cniVersion": ...}` or nothing.
                stdout(versionReply(plugin))
                return 0
            }

            let config = try NetworkConfig.decode(stdin)
            try checkVersion(config.cniVersion, command: command, plugin: plugin)
            let path = (environment["CNI_PATH"] ?? "").split(separator: ":").map(String.init)

            switch command {
            case .add, .del, .check:
                let request = try request(command, environment: environment, config: config, stdin: stdin, path: path)
                switch command {
                case .add:
                    let result = try plugin.add(request)
                    stdout(try result.encoded(as: config.cniVersion))
                case .del: try plugin.del(request)
                default: try plugin.check(request)
                }
            case .gc:
                try plugin.gc(CNIGCRequest(config: config, rawConfig: stdin,
                                           validAttachments: try CNIGCRequest.validAttachments(in: stdin),
                                           path: path, environment: environment))
            case .status:
                try plugin.status(CNIStatusRequest(config: config, rawConfig: stdin, path: path, environment: environment))
            case .version:
                break
            }
            return 0
        } catch {
            let cniError = CNIError(mapping: error)
            stdout(cniError.json(cniVersion: replyVersion))
            stderr(Array("\(about.isEmpty ? "CNI plugin" : about): \(environment["CNI_COMMAND"] ?? "?") failed: \(cniError)\n".utf8))
            return 1
        }
    }

    /// The plugin main: `run` with the process's own environment, stdin, stdout and stderr, then exit
    /// with its status.
    public static func exit(running plugin: some CNIPlugin, about: String) -> Never {
        let status = run(plugin, environment: ProcessIO.environment(), stdin: ProcessIO.readAll(STDIN_FILENO),
                         stdout: { ProcessIO.writeAll(STDOUT_FILENO, $0) }, stderr: { ProcessIO.writeAll(STDERR_FILENO, $0) },
                         about: about)
        Glibc.exit(status)
    }

    /// `{"cniVersion": "1.1.0", "supportedVersions": [...]}`
    static func versionReply(_ plugin: some CNIPlugin) -> [UInt8] {
        JSONValue.object([
            "cniVersion": .string(CNIVersion.current),
            "supportedVersions": .array(plugin.supportedVersions.map { .string($0) }),
        ]).jsonBytes
    }

    /// Code 1 unless the plugin supports the config's version and the command exists in it.
    static func checkVersion(_ version: String, command: CNICommand, plugin: some CNIPlugin) throws {
        if let minimum = command.minimumVersion {
            guard let v = CNIVersion(version) else {
                throw CNIError(.decodingFailure, "invalid cniVersion \"\(quoted: version)\"")
            }
            guard v >= minimum else {
                throw CNIError(.incompatibleCNIVersion, "config version does not allow \(command.rawValue)",
                               details: "config is \(quoted: version), \(command.rawValue) needs \(minimum) or later")
            }
        }
        guard plugin.supportedVersions.contains(version) else {
            throw CNIError(.incompatibleCNIVersion, "incompatible CNI versions",
                           details: "config is \"\(quoted: version)\", plugin supports [\(plugin.supportedVersions.joined(separator: " "))]")
        }
    }

    static func request(_ command: CNICommand, environment: [String: String], config: NetworkConfig,
                        stdin: [UInt8], path: [String]) throws -> CNIRequest {
        let containerID = environment["CNI_CONTAINERID"] ?? ""
        try CNIValidation.validateContainerID(containerID)
        let ifName = environment["CNI_IFNAME"] ?? ""
        try CNIValidation.validateInterfaceName(ifName)
        let netns = environment["CNI_NETNS"].flatMap { $0.isEmpty ? nil : $0 }
        if let netns { try CNIValidation.validateNetnsPath(netns, mustExist: command != .del) }
        let args = try CNIArgs(parsing: environment["CNI_ARGS"] ?? "")
        return CNIRequest(command: command, containerID: containerID, netns: netns, ifName: ifName, args: args,
                          path: path, config: config, rawConfig: stdin, environment: environment)
    }
}
