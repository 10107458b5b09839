import CNI
import Cluster
import Foundation
import KubeAPI
import Testing
import Yams

/// deploy/keel.yaml against the code it runs: a flag, a port, an RBAC rule or the conflist that
/// disagrees with keeld or the CNI kit fails here rather than on a node.
///
/// keeld's flags come from the built keeld's own `--help`, not from reading Keeld.swift as text:
/// ArgumentParser derives the names (`clusterCIDR` → `--cluster-cidr`, `customLong`, `--no-…`
/// inversions) and prints the defaults, so asking the binary is asking the thing the DaemonSet runs.
/// `swift build --build-tests` builds keeld next to the test bundle; KEEL_PLUGIN_DIR overrides.
@Suite struct DeployManifestsTests {
    // MARK: what the code says

    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }   // Tests/DeployTests/<file>
        return url.path
    }()

    static func text(_ relative: String) throws -> String {
        try String(contentsOfFile: root + "/" + relative, encoding: .utf8)
    }

    /// The directory holding the keeld this test bundle was built with.
    static func buildDirectory() -> String? {
        if let dir = ProcessInfo.processInfo.environment["KEEL_PLUGIN_DIR"] { return dir }
        var dir = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        while !dir.isEmpty {
            if FileManager.default.isExecutableFile(atPath: dir + "/keeld") { return dir }
            guard let slash = dir.lastIndex(of: "/") else { break }
            dir = String(dir[..<slash])
        }
        return nil
    }

    struct KeeldOption: Equatable {
        var takesValue: Bool
        var defaultValue: String?
    }

    /// keeld's options as its `--help` prints them: long name → takes a value?, default.
    static func keeldOptions() throws -> [String: KeeldOption] {
        let dir = try #require(buildDirectory(), "keeld not found next to the test bundle: build with --build-tests")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: dir + "/keeld")
        process.arguments = ["--help"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return parseHelp(String(decoding: data, as: UTF8.self))
    }

    /// ArgumentParser's help: an entry starts with a line whose first non-blank is `-`; its name part
    /// ends at the first run of two blanks; wrapped help lines follow, `(default: …)` last.
    static func parseHelp(_ help: String) -> [String: KeeldOption] {
        var entries: [(names: [String], takesValue: Bool, text: String)] = []
        for line in help.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.drop { $0 == " " }
            if trimmed.hasPrefix("-") {
                let namePart = trimmed.range(of: "  ").map { String(trimmed[..<$0.lowerBound]) } ?? String(trimmed)
                let names = namePart.split(whereSeparator: { " ,/".contains($0) })
                    .map(String.init).filter { $0.hasPrefix("--") }
                entries.append((names, namePart.contains("<"), String(trimmed.dropFirst(namePart.count))))
            } else if !entries.isEmpty, !trimmed.isEmpty, line.first == " " {
                entries[entries.count - 1].text += " " + trimmed
            }
        }
        var options: [String: KeeldOption] = [:]
        for entry in entries {
            var defaultValue: String?
            if let r = entry.text.range(of: "(default: ") , let end = entry.text[r.upperBound...].firstIndex(of: ")") {
                defaultValue = String(entry.text[r.upperBound..<end])
            }
            for name in entry.names { options[name] = KeeldOption(takesValue: entry.takesValue, defaultValue: defaultValue) }
        }
        return options
    }

    // MARK: what the manifest says (only the fields checked)

    struct Document: Decodable { var kind: String?; var apiVersion: String? }
    struct Meta: Decodable { var name: String; var namespace: String? }
    struct ConfigMap: Decodable { var metadata: Meta; var data: [String: String] }
    struct ClusterRole: Decodable {
        struct Rule: Decodable {
            var apiGroups: [String]?
            var resources: [String]?
            var verbs: [String]
            var resourceNames: [String]?
            var nonResourceURLs: [String]?
        }
        var metadata: Meta
        var rules: [Rule]
    }
    struct ClusterRoleBinding: Decodable {
        struct Ref: Decodable { var apiGroup: String; var kind: String; var name: String }
        struct Subject: Decodable { var kind: String; var name: String; var namespace: String? }
        var roleRef: Ref
        var subjects: [Subject]
    }
    struct DaemonSet: Decodable {
        struct Spec: Decodable { var template: Template }
        struct Template: Decodable { var spec: PodSpec }
        struct PodSpec: Decodable {
            var serviceAccountName: String?
            var hostNetwork: Bool?
            var priorityClassName: String?
            var terminationGracePeriodSeconds: Int?
            var tolerations: [Toleration]?
            var initContainers: [Container]?
            var containers: [Container]
            var volumes: [Volume]
        }
        struct Toleration: Decodable { var key: String?; var `operator`: String?; var effect: String? }
        struct Container: Decodable {
            var name: String
            var image: String
            var command: [String]?
            var args: [String]?
            var env: [Env]?
            var ports: [Port]?
            var readinessProbe: Probe?
            var livenessProbe: Probe?
            var securityContext: SecurityContext?
            var volumeMounts: [Mount]?
        }
        struct Env: Decodable {
            struct Source: Decodable { struct Field: Decodable { var fieldPath: String }; var fieldRef: Field? }
            var name: String
            var valueFrom: Source?
        }
        struct Port: Decodable { var name: String?; var containerPort: Int }
        struct Probe: Decodable { struct HTTPGet: Decodable { var path: String; var port: Int }; var httpGet: HTTPGet? }
        struct SecurityContext: Decodable {
            struct Capabilities: Decodable { var add: [String]? }
            var privileged: Bool?
            var capabilities: Capabilities?
        }
        struct Mount: Decodable { var name: String; var mountPath: String; var readOnly: Bool? }
        struct Volume: Decodable {
            struct HostPath: Decodable { var path: String }
            struct ConfigMapRef: Decodable { var name: String }
            var name: String
            var hostPath: HostPath?
            var configMap: ConfigMapRef?
        }
        var metadata: Meta
        var spec: Spec
    }

    /// The documents of deploy/keel.yaml, each as YAML text (Yams decodes from text, not from a Node).
    struct Manifests {
        var documents: [String]
        func all<T: Decodable>(_ kind: String, as: T.Type) throws -> [T] {
            try documents.filter { try YAMLDecoder().decode(Document.self, from: $0).kind == kind }
                .map { try YAMLDecoder().decode(T.self, from: $0) }
        }
        func one<T: Decodable>(_ kind: String, as type: T.Type) throws -> T {
            let found = try all(kind, as: type)
            #expect(found.count == 1, "deploy/keel.yaml: expected one \(kind), found \(found.count)")
            return try #require(found.first)
        }
    }

    static func manifests() throws -> Manifests {
        Manifests(documents: try Yams.compose_all(yaml: text("deploy/keel.yaml")).compactMap { $0 }.map { try Yams.serialize(node: $0) })
    }

    static func keeld(_ m: Manifests) throws -> DaemonSet.Container {
        let ds = try m.one("DaemonSet", as: DaemonSet.self)
        return try #require(ds.spec.template.spec.containers.first { $0.name == "keeld" })
    }

    // MARK: the checks

    @Test func everyKeeldFlagInTheDaemonSetExists() throws {
        let options = try Self.keeldOptions()
        #expect(options["--routes"] != nil && options["--healthz-port"] != nil, "could not read keeld --help: \(options.keys.sorted())")
        let container = try Self.keeld(try Self.manifests())
        #expect(container.command?.last?.hasSuffix("/keeld") == true)
        let args = container.args ?? []
        var i = 0
        while i < args.count {
            let arg = args[i]
            i += 1
            guard arg.hasPrefix("--") else {
                Issue.record("keeld argument \(arg) is not a --flag (and follows no option that takes it)")
                continue
            }
            let name = arg.split(separator: "=", maxSplits: 1).first.map(String.init) ?? arg
            guard let option = options[name] else {
                Issue.record("deploy/keel.yaml passes \(name) to keeld, which has no such flag; keeld has \(options.keys.sorted())")
                continue
            }
            if option.takesValue, !arg.contains("=") {
                #expect(i < args.count && !args[i].hasPrefix("--"), "\(name) takes a value and none follows")
                i += 1
            } else if !option.takesValue {
                #expect(!arg.contains("="), "\(name) is a flag: it takes no value")
            }
        }
        for required in ["--in-cluster", "--routes", "--proxy", "--policy"] {
            #expect(args.contains(required), "the DaemonSet must run keeld with \(required)")
        }
        #expect(args.contains("--node-name=$(NODE_NAME)"))
        let nodeName = container.env?.first { $0.name == "NODE_NAME" }
        #expect(nodeName?.valueFrom?.fieldRef?.fieldPath == "spec.nodeName", "NODE_NAME must come from the downward API")
    }

    /// The probes and ports use keeld's defaults (or what the args set): a changed default fails here.
    @Test func probeAndMetricsPortsAreKeeldDefaults() throws {
        let options = try Self.keeldOptions()
        let args = try Self.keeld(try Self.manifests()).args ?? []
        func port(_ flag: String) -> Int? {
            if let a = args.first(where: { $0.hasPrefix(flag + "=") }) { return Int(a.dropFirst(flag.count + 1)) }
            if let i = args.firstIndex(of: flag), i + 1 < args.count { return Int(args[i + 1]) }
            return options[flag]?.defaultValue.flatMap { Int($0) }
        }
        let healthz = try #require(port("--healthz-port"), "keeld --help shows no default for --healthz-port")
        let metrics = try #require(port("--metrics-port"), "keeld --help shows no default for --metrics-port")
        #expect(healthz == 10256 && metrics == 10249, "keeld's ports are \(healthz)/\(metrics); the README and kube-proxy use 10256/10249")

        let container = try Self.keeld(try Self.manifests())
        for (what, probe) in [("readiness", container.readinessProbe), ("liveness", container.livenessProbe)] {
            let get = try #require(probe?.httpGet, "keeld has no \(what) HTTP probe")
            #expect(get.path == "/healthz")
            #expect(get.port == healthz, "\(what) probe on \(get.port), keeld serves /healthz on \(healthz)")
        }
        let ports = Dictionary((container.ports ?? []).map { ($0.name ?? "", $0.containerPort) }, uniquingKeysWith: { a, _ in a })
        #expect(ports["healthz"] == healthz)
        #expect(ports["metrics"] == metrics)
    }

    /// Exactly get/list/watch on every kind keeld reads (from the paths its API source lists and
    /// watches) and patch on nodes and nodes/status.
    @Test func clusterRoleIsExactlyWhatKeeldNeeds() throws {
        let m = try Self.manifests()
        let role = try m.one("ClusterRole", as: ClusterRole.self)
        struct Grant: Hashable, CustomStringConvertible {
            var group: String, resource: String, verb: String
            var description: String { "\(group.isEmpty ? "core" : group)/\(resource):\(verb)" }
        }
        var granted: Set<Grant> = []
        for rule in role.rules {
            #expect(rule.resourceNames == nil && rule.nonResourceURLs == nil)
            for group in rule.apiGroups ?? [] {
                for resource in rule.resources ?? [] {
                    for verb in rule.verbs { granted.insert(Grant(group: group, resource: resource, verb: verb)) }
                }
            }
        }
        var expected: Set<Grant> = []
        // `/api/v1/<resource>` is the core group, `/apis/<group>/<version>/<resource>` any other.
        for kind in ObjectKind.allCases where ManifestDecoder.supportedKinds.contains(kind) {
            let parts = kind.apiPath.split(separator: "/").map(String.init)
            let (group, resource) = parts.first == "api" ? ("", parts[2]) : (parts[1], parts[3])
            for verb in ["get", "list", "watch"] { expected.insert(Grant(group: group, resource: resource, verb: verb)) }
        }
        #expect(expected.contains(Grant(group: "networking.k8s.io", resource: "servicecidrs", verb: "watch")))
        expected.insert(Grant(group: "", resource: "nodes", verb: "patch"))
        expected.insert(Grant(group: "", resource: "nodes/status", verb: "patch"))
        #expect(granted.subtracting(expected).isEmpty, "more than keeld needs: \(granted.subtracting(expected).sorted { "\($0)" < "\($1)" })")
        #expect(expected.subtracting(granted).isEmpty, "missing: \(expected.subtracting(granted).sorted { "\($0)" < "\($1)" })")

        let binding = try m.one("ClusterRoleBinding", as: ClusterRoleBinding.self)
        #expect(binding.roleRef.kind == "ClusterRole" && binding.roleRef.name == role.metadata.name)
        let ds = try m.one("DaemonSet", as: DaemonSet.self)
        let account = try #require(ds.spec.template.spec.serviceAccountName)
        #expect(binding.subjects.contains { $0.kind == "ServiceAccount" && $0.name == account && $0.namespace == ds.metadata.namespace })
        let accounts = try m.all("ServiceAccount", as: AccountDoc.self)
        #expect(accounts.contains { $0.metadata.name == account && $0.metadata.namespace == "keel-system" })
        #expect(ds.metadata.namespace == "keel-system")
    }
    struct AccountDoc: Decodable { var metadata: Meta }

    /// The ConfigMap's conflist decodes with the CNI kit, is cni-conf/10-keel-vxlan.conflist, and its
    /// node file is keeld's --node-file default inside the /run/keel hostPath keeld mounts.
    @Test func configMapConflistDecodesAndMatchesTheNodeFile() throws {
        let m = try Self.manifests()
        let cm = try m.one("ConfigMap", as: ConfigMap.self)
        let text = try #require(cm.data["10-keel-vxlan.conflist"])
        let list = try NetworkConfigList.decode(Array(text.utf8))
        #expect(list == (try NetworkConfigList.decode(Array(try Self.text("cni-conf/10-keel-vxlan.conflist").utf8))))
        #expect(list.plugins.first?["type"] == .string("vxlan"))
        let config = try list.networkConfig(at: 0)
        #expect(config.type == "vxlan")

        let nodeFile = try #require(try Self.keeldOptions()["--node-file"]?.defaultValue)
        #expect(list.plugins.first?["nodeFile"] == .string(nodeFile), "the plugin reads the node file keeld writes (\(nodeFile))")
        let ds = try m.one("DaemonSet", as: DaemonSet.self)
        let pod = ds.spec.template.spec
        let volumes = Dictionary(pod.volumes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let directory = String(nodeFile[..<(nodeFile.lastIndex(of: "/") ?? nodeFile.endIndex)])
        let mount = try Self.keeld(m).volumeMounts?.first { $0.mountPath == directory }
        #expect(mount.flatMap { volumes[$0.name]?.hostPath?.path } == directory, "keeld must write \(nodeFile) into the host's \(directory)")
        // The installer copies this ConfigMap and the plugins onto the host.
        let installer = try #require(pod.initContainers?.first)
        let cmVolume = try #require(installer.volumeMounts?.compactMap { volumes[$0.name] }.first { $0.configMap != nil })
        #expect(cmVolume.configMap?.name == cm.metadata.name)
        let hostPaths = Set(installer.volumeMounts?.compactMap { volumes[$0.name]?.hostPath?.path } ?? [])
        #expect(hostPaths == ["/opt/cni/bin", "/etc/cni/net.d"])
        let script = installer.command?.joined(separator: " ") ?? ""
        for plugin in ["bridge", "host-gw", "vxlan", "host-local", "loopback"] {
            #expect(script.contains(plugin), "the installer does not copy \(plugin)")
        }
    }

    /// The pod settings the README documents: node network, no privileged mode, every taint tolerated.
    @Test func daemonSetRunsOnEveryNodeWithCapabilitiesNotPrivileged() throws {
        let ds = try Self.manifests().one("DaemonSet", as: DaemonSet.self)
        let pod = ds.spec.template.spec
        #expect(pod.hostNetwork == true)
        #expect(pod.priorityClassName == "system-node-critical")
        #expect(pod.tolerations?.contains { $0.operator == "Exists" && $0.key == nil && $0.effect == nil } == true)
        #expect(pod.terminationGracePeriodSeconds != nil)
        for container in pod.containers + (pod.initContainers ?? []) {
            #expect(container.securityContext?.privileged != true, "\(container.name) must not be privileged")
            #expect(container.image == "ghcr.io/keel/keel:latest")
        }
        let caps = Set(try Self.keeld(try Self.manifests()).securityContext?.capabilities?.add ?? [])
        #expect(caps == ["NET_ADMIN", "NET_RAW", "SYS_ADMIN"])
    }
}
