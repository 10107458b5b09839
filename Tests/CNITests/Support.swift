import CNI
import NetAddress

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

extension CIDR: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = CIDR(value)! }
}
extension IPAddress: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = IPAddress(value)! }
}
extension MACAddress: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = MACAddress(value)! }
}

/// The result the conversion and round-trip tests share: two interfaces, dual-stack addresses,
/// a route with the 1.x-only attributes, DNS.
let sampleResult = CNIResult(
    cniVersion: "1.1.0",
    interfaces: [
        Interface(name: "cni0", mac: "0a:58:0a:f4:01:01"),
        Interface(name: "eth0", mac: "0a:58:0a:f4:01:05", mtu: 1450, sandbox: "/var/run/netns/pod1"),
    ],
    ips: [
        IPConfig(address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 1),
        IPConfig(address: "fd00:1::5/64", gateway: "fd00:1::1", interface: 1),
    ],
    routes: [
        RouteConfig(dst: "0.0.0.0/0", gw: "10.244.1.1"),
        RouteConfig(dst: "fd00::/8", mtu: 1400, table: 100),
    ],
    dns: DNS(nameservers: ["10.96.0.10"], search: ["svc.cluster.local"])
)

/// A plugin whose behaviour each test sets, recording what the entry point handed it.
final class FakePlugin: CNIPlugin {
    var supportedVersions: [String] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    var calls: [String] = []
    var lastRequest: CNIRequest?
    var lastGC: CNIGCRequest?
    var lastStatus: CNIStatusRequest?
    var failure: (any Error)?
    var result = sampleResult

    func add(_ request: CNIRequest) throws -> CNIResult {
        calls.append("ADD"); lastRequest = request
        if let failure { throw failure }
        return result
    }
    func del(_ request: CNIRequest) throws {
        calls.append("DEL"); lastRequest = request
        if let failure { throw failure }
    }
    func check(_ request: CNIRequest) throws {
        calls.append("CHECK"); lastRequest = request
        if let failure { throw failure }
    }
    func gc(_ request: CNIGCRequest) throws {
        calls.append("GC"); lastGC = request
        if let failure { throw failure }
    }
    func status(_ request: CNIStatusRequest) throws {
        calls.append("STATUS"); lastStatus = request
        if let failure { throw failure }
    }
}

struct Invocation {
    var status: Int32
    var stdout: String
    var stderr: String
    /// The error reply, when stdout holds one.
    var error: CNIError? { try? JSONValue.decodeError(stdout) }
}

extension JSONValue {
    static func decodeError(_ s: String) throws -> CNIError {
        try JSONValue.parse(s).decode(CNIError.self)
    }
    static func parse(_ s: String) throws -> JSONValue { try JSONValue(parsing: Array(s.utf8)) }
}

func invoke(_ plugin: some CNIPlugin, env: [String: String], stdin: String, about: String = "fake plugin") -> Invocation {
    var out: [UInt8] = [], err: [UInt8] = []
    let status = CNIEntry.run(plugin, environment: env, stdin: bytes(stdin), stdout: { out += $0 }, stderr: { err += $0 }, about: about)
    return Invocation(status: status, stdout: text(out), stderr: text(err))
}

/// An environment every ADD/DEL/CHECK accepts; /proc/self/ns/net is a netns path that exists.
func env(_ command: String, _ changes: [String: String?] = [:]) -> [String: String] {
    var e = ["CNI_COMMAND": command, "CNI_CONTAINERID": "ctr-1", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0",
             "CNI_PATH": "/opt/cni/bin:/usr/libexec/cni", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web-0"]
    for (k, v) in changes { e[k] = v }
    return e
}

func config(_ version: String = "1.1.0", extra: String = "") -> String {
    #"{"cniVersion":"\#(version)","name":"keelnet","type":"fake"\#(extra.isEmpty ? "" : "," + extra)}"#
}
