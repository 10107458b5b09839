/// Runs the IPAM plugin a config names (`ipam.type`), found in CNI_PATH, as libcni's `invoke` does:
/// same environment with CNI_COMMAND set, the caller's config bytes on stdin, result or error on stdout.
public enum IPAMDelegate {
    /// ADD: the IPAM plugin's result in the internal model, whatever version it wrote.
    /// Its error (a CNI error JSON on stdout with a non-zero exit) is rethrown unchanged.
    public static func add(type: String, request: CNIRequest) throws -> CNIResult {
        let output = try invoke(type, command: .add, path: request.path, rawConfig: request.rawConfig,
                                environment: request.delegateEnvironment(command: .add))
        do {
            return try CNIResult.decode(output.stdout)
        } catch {
            throw CNIError(.decodingFailure, "IPAM plugin \(type) returned an unreadable result",
                           details: "\(CNIError(mapping: error).msg): \(String(decoding: output.stdout.prefix(512), as: UTF8.self))")
        }
    }

    public static func del(type: String, request: CNIRequest) throws {
        _ = try invoke(type, command: .del, path: request.path, rawConfig: request.rawConfig,
                       environment: request.delegateEnvironment(command: .del))
    }

    public static func check(type: String, request: CNIRequest) throws {
        _ = try invoke(type, command: .check, path: request.path, rawConfig: request.rawConfig,
                       environment: request.delegateEnvironment(command: .check))
    }

    public static func gc(type: String, request: CNIGCRequest) throws {
        var env = request.environment
        env["CNI_COMMAND"] = CNICommand.gc.rawValue
        env["CNI_PATH"] = request.path.joined(separator: ":")
        _ = try invoke(type, command: .gc, path: request.path, rawConfig: request.rawConfig, environment: env)
    }

    public static func status(type: String, request: CNIStatusRequest) throws {
        var env = request.environment
        env["CNI_COMMAND"] = CNICommand.status.rawValue
        env["CNI_PATH"] = request.path.joined(separator: ":")
        _ = try invoke(type, command: .status, path: request.path, rawConfig: request.rawConfig, environment: env)
    }

    static func invoke(_ type: String, command: CNICommand, path: [String], rawConfig: [UInt8],
                       environment: [String: String]) throws -> PluginExec.Output {
        guard !type.isEmpty, !type.contains("/"), type != ".", type != ".." else {
            throw CNIError(.invalidNetworkConfig, "invalid IPAM plugin type \"\(quoted: type)\"", details: "ipam.type must be a plain executable name")
        }
        guard let executable = PluginExec.find(type, in: path) else {
            throw CNIError(.invalidNetworkConfig, "IPAM plugin \"\(quoted: type)\" not found in CNI_PATH",
                           details: "searched: \(path.isEmpty ? "<empty CNI_PATH>" : CNIError.quoting(path.joined(separator: ":")))")
        }
        let output = try PluginExec.run(executable, environment: environment, stdin: rawConfig)
        guard output.status == 0 else {
            // The delegate's own error passes through as it is, so the runtime sees its code.
            if let error = try? CNIJSON.decode(CNIError.self, from: output.stdout) { throw error }
            throw CNIError(.internalError, "IPAM plugin \(type) \(command.rawValue) failed with exit status \(output.status)",
                           details: String(decoding: (output.stderr.isEmpty ? output.stdout : output.stderr).suffix(1024), as: UTF8.self))
        }
        return output
    }
}
