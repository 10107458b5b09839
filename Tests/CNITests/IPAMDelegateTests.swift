import CNI
import Foundation
import Testing

/// Delegation runs real executables: small shell scripts written into a temporary CNI_PATH.
@Suite(.serialized)
final class IPAMDelegateTests {
    let dir: String
    let binDir: String

    init() throws {
        dir = NSTemporaryDirectory() + "keel-cni-test-\(UUID().uuidString)"
        binDir = dir + "/bin"
        try FileManager.default.createDirectory(atPath: binDir, withIntermediateDirectories: true)
        // Records its stdin and environment next to itself, answers ADD with a 0.4.0 result.
        try script("fake-ipam", #"""
        #!/bin/sh
        cat > "$(dirname "$0")/../stdin.$CNI_COMMAND"
        env > "$(dirname "$0")/../env.$CNI_COMMAND"
        echo "fake-ipam $CNI_COMMAND" >&2
        case "$CNI_COMMAND" in
        ADD) printf '%s' '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.244.1.7/24","gateway":"10.244.1.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}' ;;
        esac
        exit 0
        """#)
        try script("busy-ipam", #"""
        #!/bin/sh
        cat > /dev/null
        printf '%s' '{"cniVersion":"1.1.0","code":11,"msg":"ipam store locked","details":"/run/keel/ipam/keelnet/lock"}'
        exit 1
        """#)
        try script("crash-ipam", """
        #!/bin/sh
        echo "panic: range exhausted" >&2
        exit 3
        """)
        // 1 MiB on stderr before the result: a reader that waits for stdout first would deadlock here.
        try script("chatty-ipam", #"""
        #!/bin/sh
        head -c 1048576 /dev/zero | tr '\0' 'x' >&2
        printf '%s' '{"cniVersion":"1.0.0","ips":[{"address":"fd00::7/64"}]}'
        """#)
        try script("garbage-ipam", """
        #!/bin/sh
        echo 'this is not json'
        """)
        // Records what its stdin is: the file behind descriptor 0.
        try script("fd0-ipam", #"""
        #!/bin/sh
        readlink /proc/self/fd/0 > "$(dirname "$0")/../stdin-file"
        printf '%s' '{"cniVersion":"1.1.0"}'
        """#)
        // Exits without reading stdin: the parent must not die of SIGPIPE.
        try script("deaf-ipam", #"""
        #!/bin/sh
        printf '%s' '{"cniVersion":"1.1.0"}'
        """#)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }   // a leftover temp dir is harmless

    private func script(_ name: String, _ body: String) throws {
        let path = binDir + "/" + name
        try body.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
    }

    private func request(_ command: CNICommand = .add, path: [String]? = nil, stdin: String? = nil) throws -> CNIRequest {
        let raw = bytes(stdin ?? config("1.0.0", extra: #""ipam":{"type":"fake-ipam","subnet":"10.244.1.0/24"}"#))
        return CNIRequest(command: command, containerID: "ctr-9", netns: "/proc/self/ns/net", ifName: "eth0",
                          args: try CNIArgs(parsing: "IgnoreUnknown=1;K8S_POD_NAME=web-0"), path: path ?? ["/nonexistent", binDir],
                          config: try NetworkConfig.decode(raw), rawConfig: raw,
                          environment: ["CNI_COMMAND": command.rawValue, "KEEL_TEST_MARKER": "kept", "PATH": "/usr/bin:/bin"])
    }

    private func recorded(_ file: String) throws -> String { try String(contentsOfFile: dir + "/" + file, encoding: .utf8) }

    @Test func addReturnsConvertedResultAndPassesEverything() throws {
        let req = try request()
        let result = try IPAMDelegate.add(type: "fake-ipam", request: req)
        #expect(result == CNIResult(cniVersion: "0.4.0", ips: [IPConfig(address: "10.244.1.7/24", gateway: "10.244.1.1")],
                                    routes: [RouteConfig(dst: "0.0.0.0/0")]))
        #expect(try recorded("stdin.ADD") == text(req.rawConfig))
        let env = Set(try recorded("env.ADD").split(separator: "\n").map(String.init))
        for line in ["CNI_COMMAND=ADD", "CNI_CONTAINERID=ctr-9", "CNI_NETNS=/proc/self/ns/net", "CNI_IFNAME=eth0",
                     "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=web-0", "CNI_PATH=/nonexistent:\(binDir)", "KEEL_TEST_MARKER=kept"] {
            #expect(env.contains(line), "\(line)")
        }
    }

    @Test func delCheckGCStatusOverrideTheCommand() throws {
        try IPAMDelegate.del(type: "fake-ipam", request: try request(.del))
        try IPAMDelegate.check(type: "fake-ipam", request: try request(.check))
        let base = try request(.add)
        try IPAMDelegate.gc(type: "fake-ipam", request: CNIGCRequest(config: base.config, rawConfig: base.rawConfig,
                                                                      validAttachments: [], path: base.path, environment: base.environment))
        try IPAMDelegate.status(type: "fake-ipam", request: CNIStatusRequest(config: base.config, rawConfig: base.rawConfig,
                                                                              path: base.path, environment: base.environment))
        for command in ["DEL", "CHECK", "GC", "STATUS"] {
            #expect(try recorded("env.\(command)").contains("CNI_COMMAND=\(command)\n"))
            #expect(try recorded("stdin.\(command)") == text(base.rawConfig))
        }
    }

    @Test func delegateErrorPassesThroughUnchanged() throws {
        #expect(throws: CNIError(.tryAgainLater, "ipam store locked", details: "/run/keel/ipam/keelnet/lock")) {
            try IPAMDelegate.add(type: "busy-ipam", request: try request())
        }
        #expect(throws: CNIError(.tryAgainLater, "ipam store locked", details: "/run/keel/ipam/keelnet/lock")) {
            try IPAMDelegate.del(type: "busy-ipam", request: try request(.del))
        }
    }

    /// What the runtime finally sees when a plugin just returns the delegate's error from add.
    @Test func delegateErrorReachesTheRuntime() throws {
        struct Delegating: CNIPlugin {
            func add(_ request: CNIRequest) throws -> CNIResult { try IPAMDelegate.add(type: request.config.ipam!.type, request: request) }
            func del(_ request: CNIRequest) throws {}
            func check(_ request: CNIRequest) throws {}
        }
        let run = invoke(Delegating(), env: env("ADD", ["CNI_PATH": binDir]),
                         stdin: config("1.0.0", extra: #""ipam":{"type":"busy-ipam"}"#))
        #expect(run.status == 1)
        #expect(run.stdout == #"{"cniVersion":"1.0.0","code":11,"details":"/run/keel/ipam/keelnet/lock","msg":"ipam store locked"}"#)

        let ok = invoke(Delegating(), env: env("ADD", ["CNI_PATH": binDir]), stdin: config("0.3.1", extra: #""ipam":{"type":"fake-ipam"}"#))
        #expect(ok.status == 0)
        #expect(ok.stdout == #"{"cniVersion":"0.3.1","ips":[{"address":"10.244.1.7/24","gateway":"10.244.1.1","version":"4"}],"routes":[{"dst":"0.0.0.0/0"}]}"#)
    }

    @Test func crashWithoutErrorJSONIs999WithStderr() throws {
        #expect(throws: CNIError(.internalError, "IPAM plugin crash-ipam ADD failed with exit status 3", details: "panic: range exhausted\n")) {
            try IPAMDelegate.add(type: "crash-ipam", request: try request())
        }
    }

    @Test func largeStderrDoesNotDeadlock() throws {
        let result = try IPAMDelegate.add(type: "chatty-ipam", request: try request())
        #expect(result.ips == [IPConfig(address: "fd00::7/64")])
    }

    /// The delegate's stdin never has a name in /tmp (O_TMPFILE shows as "/tmp/#<inode> (deleted)"),
    /// so a plugin killed while it waits leaves nothing there; a named file, even one unlinked right
    /// after creation, shows its name.
    @Test func delegateStdinIsAnUnnamedFile() throws {
        _ = try IPAMDelegate.add(type: "fd0-ipam", request: try request())
        let target = try recorded("stdin-file").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(target.hasPrefix("/tmp/#") && target.hasSuffix(" (deleted)"), "\(target)")
    }

    @Test func childThatIgnoresStdin() throws {
        let big = config("1.0.0", extra: #""ipam":{"type":"deaf-ipam"},"pad":"\#(String(repeating: "p", count: 1 << 20))""#)
        #expect(try IPAMDelegate.add(type: "deaf-ipam", request: try request(stdin: big)) == CNIResult(cniVersion: "1.1.0"))
    }

    @Test func unreadableResultIsDecodingFailure() throws {
        do {
            _ = try IPAMDelegate.add(type: "garbage-ipam", request: try request())
            Issue.record("accepted garbage")
        } catch let e as CNIError {
            #expect(e.knownCode == .decodingFailure)
            #expect(e.msg == "IPAM plugin garbage-ipam returned an unreadable result")
            #expect(e.details.contains("this is not json"))
        }
    }

    @Test(arguments: [
        ("host-local", ["/nonexistent"], CNIError(.invalidNetworkConfig, "IPAM plugin \"host-local\" not found in CNI_PATH", details: "searched: /nonexistent")),
        ("host-local", [], CNIError(.invalidNetworkConfig, "IPAM plugin \"host-local\" not found in CNI_PATH", details: "searched: <empty CNI_PATH>")),
        ("../bin/fake-ipam", nil, CNIError(.invalidNetworkConfig, "invalid IPAM plugin type \"../bin/fake-ipam\"", details: "ipam.type must be a plain executable name")),
        ("", nil, CNIError(.invalidNetworkConfig, "invalid IPAM plugin type \"\"", details: "ipam.type must be a plain executable name")),
    ] as [(String, [String]?, CNIError)])
    func missingOrInvalidPlugin(_ type: String, _ path: [String]?, _ expected: CNIError) throws {
        #expect(throws: expected) { try IPAMDelegate.add(type: type, request: try request(path: path)) }
    }

    @Test func nonExecutableIsSkipped() throws {
        let other = dir + "/noexec"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try "#!/bin/sh\nexit 9\n".write(toFile: other + "/fake-ipam", atomically: true, encoding: .utf8)
        let result = try IPAMDelegate.add(type: "fake-ipam", request: try request(path: [other, binDir]))
        #expect(result.ips.count == 1)
    }
}
