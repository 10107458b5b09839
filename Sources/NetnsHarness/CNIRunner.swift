import Glibc
import Netlink

/// Runs CNI plugin executables the way a container runtime does: environment variables plus the
/// network config on stdin, inside the node's namespace; result or error JSON on stdout.
public struct CNIRunner: Sendable {
    /// Directories searched for plugins (CNI_PATH), first match wins.
    public var path: [String]
    /// The namespace the plugins run in (the node).
    public let node: LabNamespace

    public init(node: LabNamespace, path: [String]) {
        self.node = node
        self.path = path
    }

    /// Where `swift build` put Keel's plugins (debug unless KEEL_PLUGIN_DIR says otherwise).
    public static var keelPluginDirectory: String {
        if let dir = getenv("KEEL_PLUGIN_DIR") { return String(cString: dir) }
        // The test and lab executables live next to the plugins they were built with.
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        var dir = exe
        while !dir.isEmpty, !fileExists(dir + "/bridge") || !fileExists(dir + "/host-local") {
            guard let slash = dir.lastIndex(of: "/") else { break }
            dir = String(dir[..<slash])
        }
        return dir
    }

    /// Debian's containernetworking-plugins.
    public static let referencePluginDirectory = "/usr/lib/cni"

    /// One plugin invocation.
    public func run(_ plugin: String, _ command: String, containerID: String = "", netns: String? = nil, ifName: String = "eth0",
                    args: String? = nil, config: String, extraEnvironment: [String: String] = [:]) throws -> CNIInvocationResult {
        // Only what a runtime passes: the CNI variables and a PATH (plugins exec helpers such as iptables).
        var env = ["CNI_COMMAND": command, "CNI_PATH": path.joined(separator: ":"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        if !containerID.isEmpty { env["CNI_CONTAINERID"] = containerID }
        if let netns { env["CNI_NETNS"] = netns }
        if !ifName.isEmpty { env["CNI_IFNAME"] = ifName }
        if let args { env["CNI_ARGS"] = args }
        for (k, v) in extraEnvironment { env[k] = v }
        guard let binary = path.map({ "\($0)/\(plugin)" }).first(where: fileExists) else {
            throw ProcessError(command: [plugin], reason: "not found in \(path.joined(separator: ":"))")
        }
        let r = try NamespaceProcess.run([binary], in: node.namespace, environment: env, replaceEnvironment: true, stdin: Array(config.utf8))
        return CNIInvocationResult(process: r)
    }

    public func add(_ plugin: String, pod: LabNamespace, containerID: String, ifName: String = "eth0", config: String, args: String? = nil) throws -> CNIInvocationResult {
        try run(plugin, "ADD", containerID: containerID, netns: pod.path, ifName: ifName, args: args, config: config)
    }
    public func del(_ plugin: String, pod: LabNamespace?, containerID: String, ifName: String = "eth0", config: String) throws -> CNIInvocationResult {
        try run(plugin, "DEL", containerID: containerID, netns: pod?.path, ifName: ifName, config: config)
    }
    public func check(_ plugin: String, pod: LabNamespace, containerID: String, ifName: String = "eth0", config: String) throws -> CNIInvocationResult {
        try run(plugin, "CHECK", containerID: containerID, netns: pod.path, ifName: ifName, config: config)
    }
}

/// What a plugin run returned: exit status, stdout (result or error JSON) and stderr.
public struct CNIInvocationResult: Sendable, CustomStringConvertible {
    public var process: ProcessResult
    public var succeeded: Bool { process.exitStatus == 0 }
    public var stdout: String { process.stdout }
    /// The error code when the plugin failed with CNI error JSON.
    public var errorCode: Int? {
        guard !succeeded, let range = stdout.firstRange(of: "\"code\":") else { return nil }
        return Int(stdout[range.upperBound...].prefix { $0.isNumber || $0 == " " }.trimmingCharacters(in: " "))
    }
    public var description: String { process.description }
}

extension LabNamespace {
    /// The bind-mount path a runtime passes as CNI_NETNS.
    public var path: String { "\(NetworkNamespace.namedDirectory)/\(name)" }
}

func fileExists(_ path: String) -> Bool { access(path, X_OK) == 0 }

extension Substring {
    func trimmingCharacters(in set: String) -> String { String(filter { !set.contains($0) }) }
}
