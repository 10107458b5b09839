import CNI
import NetAddress
import Testing

struct CNIEntryTests {
    // MARK: every command, happy path

    @Test(arguments: ["1.1.0", "1.0.0", "0.4.0", "0.3.1"])
    func addWritesResultInRequestVersion(_ version: String) throws {
        let plugin = FakePlugin()
        let run = invoke(plugin, env: env("ADD"), stdin: config(version))
        #expect(run.status == 0)
        #expect(run.stdout == text(try sampleResult.encoded(as: version)))
        #expect(plugin.calls == ["ADD"])
        let request = try #require(plugin.lastRequest)
        #expect(request.command == .add)
        #expect(request.containerID == "ctr-1")
        #expect(request.netns == "/proc/self/ns/net")
        #expect(request.ifName == "eth0")
        #expect(request.args.podName == "web-0" && request.args.ignoreUnknown)
        #expect(request.path == ["/opt/cni/bin", "/usr/libexec/cni"])
        #expect(request.config.name == "keelnet" && request.config.cniVersion == version)
        #expect(request.rawConfig == bytes(config(version)))
        #expect(request.environment["CNI_COMMAND"] == "ADD")
    }

    @Test(arguments: [("DEL", "1.1.0"), ("DEL", "0.3.1"), ("CHECK", "0.4.0"), ("CHECK", "1.1.0"), ("GC", "1.1.0"), ("STATUS", "1.1.0")])
    func otherCommandsPrintNothing(_ command: String, _ version: String) {
        let plugin = FakePlugin()
        let run = invoke(plugin, env: env(command), stdin: config(version))
        #expect(run.status == 0, "\(run.stdout)")
        #expect(run.stdout == "")
        #expect(plugin.calls == [command])
    }

    @Test func delToleratesMissingNetns() throws {
        for netns: String? in [nil, "", "/nonexistent/netns/gone"] {
            let plugin = FakePlugin()
            let run = invoke(plugin, env: env("DEL", ["CNI_NETNS": netns]), stdin: config())
            #expect(run.status == 0, "\(run.stdout)")
            #expect(plugin.lastRequest?.netns == (netns?.isEmpty == false ? netns : nil))
        }
    }

    @Test func gcGetsValidAttachments() throws {
        let plugin = FakePlugin()
        let run = invoke(plugin, env: ["CNI_COMMAND": "GC", "CNI_PATH": "/opt/cni/bin"],
                         stdin: config(extra: #""cni.dev/valid-attachments":[{"containerID":"a1","ifname":"eth0"},{"containerID":"b2","ifname":"net1"}]"#))
        #expect(run.status == 0, "\(run.stdout)")
        #expect(plugin.lastGC?.validAttachments == [Attachment(containerID: "a1", ifname: "eth0"), Attachment(containerID: "b2", ifname: "net1")])
        #expect(plugin.lastGC?.path == ["/opt/cni/bin"])
    }

    @Test func statusUnavailablePassesThrough() {
        let plugin = FakePlugin()
        plugin.failure = CNIError(.pluginNotAvailable, "bridge cni0 missing")
        let run = invoke(plugin, env: ["CNI_COMMAND": "STATUS", "CNI_PATH": "/opt/cni/bin"], stdin: config())
        #expect(run.status == 1)
        #expect(run.stdout == #"{"cniVersion":"1.1.0","code":50,"msg":"bridge cni0 missing"}"#)
    }

    @Test(arguments: [nil, "", #"{"cniVersion":"1.0.0"}"#, "garbage"])
    func versionNeedsNoConfig(_ stdin: String?) {
        let plugin = FakePlugin()
        plugin.supportedVersions = ["0.4.0", "1.0.0", "1.1.0"]
        let run = invoke(plugin, env: ["CNI_COMMAND": "VERSION"], stdin: stdin ?? "")
        #expect(run.status == 0)
        #expect(run.stdout == #"{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}"#)
        #expect(plugin.calls.isEmpty)
    }

    @Test func noCommandPrintsAbout() {
        let run = invoke(FakePlugin(), env: [:], stdin: "", about: "Keel fake v1")
        #expect(run.status == 0 && run.stdout == "")
        #expect(run.stderr == "Keel fake v1\nCNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n")
        let silent = invoke(FakePlugin(), env: [:], stdin: "", about: "")
        #expect(silent.status == 1 && silent.error?.knownCode == .invalidEnvironment)
    }

    // MARK: environment

    @Test(arguments: [
        ("ADD", "CNI_CONTAINERID"), ("ADD", "CNI_NETNS"), ("ADD", "CNI_IFNAME"), ("ADD", "CNI_PATH"),
        ("CHECK", "CNI_CONTAINERID"), ("CHECK", "CNI_NETNS"), ("CHECK", "CNI_IFNAME"), ("CHECK", "CNI_PATH"),
        ("DEL", "CNI_CONTAINERID"), ("DEL", "CNI_IFNAME"), ("DEL", "CNI_PATH"),
        ("GC", "CNI_PATH"), ("STATUS", "CNI_PATH"),
    ])
    func missingVariableIsCode4(_ command: String, _ variable: String) {
        for value: String? in [nil, ""] {
            let plugin = FakePlugin()
            let run = invoke(plugin, env: env(command, [variable: value]), stdin: config())
            #expect(run.status == 1)
            #expect(run.error == CNIError(.invalidEnvironment, "required env variables [\(variable)] missing", details: variable))
            #expect(plugin.calls.isEmpty)
        }
    }

    @Test func allMissingVariablesAreNamed() {
        let run = invoke(FakePlugin(), env: ["CNI_COMMAND": "ADD"], stdin: config("0.4.0"))
        #expect(run.error?.msg == "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing")
        #expect(run.stdout.hasPrefix(#"{"cniVersion":"0.4.0","code":4,"#))   // the reply speaks the config's version
    }

    @Test func optionalVariablesPerCommand() {
        // DEL without netns, GC/STATUS without container, netns and ifname: all fine.
        #expect(invoke(FakePlugin(), env: env("DEL", ["CNI_NETNS": nil, "CNI_ARGS": nil]), stdin: config()).status == 0)
        #expect(invoke(FakePlugin(), env: ["CNI_COMMAND": "GC", "CNI_PATH": "/x"], stdin: config()).status == 0)
        #expect(invoke(FakePlugin(), env: ["CNI_COMMAND": "STATUS", "CNI_PATH": "/x"], stdin: config()).status == 0)
    }

    @Test(arguments: [
        (["CNI_COMMAND": "BOGUS"], CNIError.Code.invalidEnvironment, "unknown CNI_COMMAND: BOGUS"),
        (["CNI_COMMAND": "add"], .invalidEnvironment, "unknown CNI_COMMAND: add"),
        (["CNI_IFNAME": "this-is-too-long0"], .invalidEnvironment, "interface name is too long"),
        (["CNI_IFNAME": ".."], .invalidEnvironment, "interface name is . or .."),
        (["CNI_IFNAME": "a/b"], .invalidEnvironment, "interface name contains / or : or whitespace"),
        (["CNI_CONTAINERID": "bad id"], .invalidEnvironment, "invalid characters in containerID"),
        (["CNI_NETNS": "/nonexistent/netns/x"], .invalidNetNS, "failed to open netns \"/nonexistent/netns/x\""),
        (["CNI_NETNS": "netns/x"], .invalidEnvironment, "CNI_NETNS must be an absolute path"),
        (["CNI_ARGS": "K8S_POD_NAME"], .invalidEnvironment, "CNI_ARGS: invalid pair \"K8S_POD_NAME\""),
    ] as [([String: String?], CNIError.Code, String)])
    func invalidEnvironment(_ changes: [String: String?], _ code: CNIError.Code, _ msg: String) {
        let plugin = FakePlugin()
        let run = invoke(plugin, env: env("ADD", changes), stdin: config())
        #expect(run.status == 1)
        #expect(run.error?.knownCode == code)
        #expect(run.error?.msg == msg)
        #expect(plugin.calls.isEmpty)
    }

    // MARK: config and version

    @Test(arguments: [
        ("", CNIError.Code.decodingFailure), ("{", .decodingFailure), ("[]", .decodingFailure), ("null", .decodingFailure),
        (#"{"cniVersion":"1.1.0","type":"fake"}"#, .invalidNetworkConfig),
        (#"{"cniVersion":"1.1.0","name":"keelnet"}"#, .invalidNetworkConfig),
        (#"{"cniVersion":"1.1.0","name":"keel net","type":"fake"}"#, .invalidNetworkConfig),
    ])
    func badConfig(_ stdin: String, _ code: CNIError.Code) {
        for command in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
            let plugin = FakePlugin()
            let run = invoke(plugin, env: env(command), stdin: stdin)
            #expect(run.status == 1)
            #expect(run.error?.knownCode == code, "\(command): \(run.stdout)")
            #expect(plugin.calls.isEmpty)
        }
    }

    @Test(arguments: ["0.2.0", "0.1.0", "2.0.0", "1.2.0", "x"])
    func unsupportedVersionIsCode1(_ version: String) {
        let plugin = FakePlugin()
        let run = invoke(plugin, env: env("ADD"), stdin: config(version))
        #expect(run.status == 1)
        #expect(run.error?.knownCode == .incompatibleCNIVersion)
        #expect(run.error?.details == "config is \"\(version)\", plugin supports [0.3.0 0.3.1 0.4.0 1.0.0 1.1.0]")
        #expect(plugin.calls.isEmpty)
    }

    @Test func missingVersionMeans010() {
        let run = invoke(FakePlugin(), env: env("ADD"), stdin: #"{"name":"n","type":"t"}"#)
        #expect(run.error?.knownCode == .incompatibleCNIVersion)
    }

    @Test func versionOutsidePluginsListIsCode1() {
        let plugin = FakePlugin()
        plugin.supportedVersions = ["1.0.0"]
        let run = invoke(plugin, env: env("DEL"), stdin: config("0.4.0"))
        #expect(run.status == 1 && run.error?.knownCode == .incompatibleCNIVersion)
        #expect(run.stdout.hasPrefix(#"{"cniVersion":"0.4.0""#))
    }

    @Test(arguments: [("CHECK", "0.3.1"), ("CHECK", "0.3.0"), ("GC", "1.0.0"), ("GC", "0.4.0"), ("STATUS", "1.0.0")])
    func commandTooNewForConfig(_ command: String, _ version: String) {
        let plugin = FakePlugin()
        let run = invoke(plugin, env: env(command), stdin: config(version))
        #expect(run.status == 1)
        #expect(run.error == CNIError(.incompatibleCNIVersion, "config version does not allow \(command)",
                                      details: "config is \(version), \(command) needs \(command == "CHECK" ? "0.4.0" : "1.1.0") or later"))
        #expect(plugin.calls.isEmpty)
    }

    // MARK: plugin errors

    @Test(arguments: [
        CNIError(.tryAgainLater, "ipam store locked", details: "/run/keel/ipam/lock"),
        CNIError(pluginCode: 104, "no free address in 10.244.1.0/24"),
        CNIError(.invalidNetworkConfig, "bridge: mtu must be positive"),
    ])
    func pluginCNIErrorPassesThrough(_ error: CNIError) {
        for command in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
            let plugin = FakePlugin()
            plugin.failure = error
            let run = invoke(plugin, env: env(command), stdin: config("1.1.0"))
            #expect(run.status == 1)
            #expect(run.stdout == text(error.json(cniVersion: "1.1.0")))
            #expect(run.stderr.contains(error.msg))
        }
    }

    struct VethExists: Error, CustomStringConvertible { var description: String { "RTM_NEWLINK veth kp1a2b: File exists" } }

    @Test func otherErrorsBecome999WithDescription() {
        let plugin = FakePlugin()
        plugin.failure = VethExists()
        let run = invoke(plugin, env: env("ADD"), stdin: config("0.4.0"))
        #expect(run.status == 1)
        #expect(run.stdout == #"{"cniVersion":"0.4.0","code":999,"msg":"RTM_NEWLINK veth kp1a2b: File exists"}"#)
    }

    struct Strict: Decodable { var bridge: String; var mtu: Int? }

    @Test func pluginConfigDecodingNamesTheField() throws {
        let request = try #require({ () -> CNIRequest? in
            let plugin = FakePlugin()
            _ = invoke(plugin, env: env("ADD"), stdin: config(extra: #""mtu":"1500""#))
            return plugin.lastRequest
        }())
        do {
            _ = try request.decodeConfig(Strict.self)
            Issue.record("decoded")
        } catch {
            #expect((error as? CNIError)?.knownCode == .invalidNetworkConfig)
            #expect((error as? CNIError)?.msg == "missing field bridge")
        }
    }
}
