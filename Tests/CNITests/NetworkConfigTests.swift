import CNI
import Foundation
import NetAddress
import Testing

struct NetworkConfigTests {
    @Test func commonFields() throws {
        let c = try NetworkConfig.decode(bytes(#"""
        {"cniVersion":"1.0.0","name":"keelnet","type":"bridge","bridge":"cni0","isGateway":true,
         "ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]],"dataDir":"/run/keel/ipam"},
         "dns":{"nameservers":["10.96.0.10"],"domain":"cluster.local","search":["svc.cluster.local"],"options":["ndots:5"]}}
        """#))
        #expect(c.cniVersion == "1.0.0")
        #expect(c.name == "keelnet")
        #expect(c.type == "bridge")
        #expect(c.ipam?.type == "host-local")
        #expect(c.ipam?.raw["dataDir"] == .string("/run/keel/ipam"))
        #expect(c.dns == DNS(nameservers: ["10.96.0.10"], domain: "cluster.local", search: ["svc.cluster.local"], options: ["ndots:5"]))
        #expect(c.prevResult == nil && c.runtimeConfig == nil && c.capabilities == nil)

        struct Ranges: Decodable { struct R: Decodable { var subnet: String }; var ranges: [[R]] }
        #expect(try c.ipam?.decode(Ranges.self).ranges[0][0].subnet == "10.244.1.0/24")
    }

    /// The same prevResult in each version's shape decodes to the same model.
    @Test(arguments: [
        ("1.1.0", #"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:01:05","sandbox":"/run/netns/p"}],"ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}]}"#),
        ("1.0.0", #"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:01:05","sandbox":"/run/netns/p"}],"ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#),
        ("0.4.0", #"{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:01:05","sandbox":"/run/netns/p"}],"ips":[{"version":"4","address":"10.244.1.5/24","gateway":"10.244.1.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#),
        ("0.3.1", #"{"cniVersion":"0.3.1","interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:01:05","sandbox":"/run/netns/p"}],"ips":[{"version":"4","address":"10.244.1.5/24","gateway":"10.244.1.1","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":""}]}"#),
    ])
    func prevResultOfEachVersion(_ version: String, _ prev: String) throws {
        let c = try NetworkConfig.decode(bytes(config(version, extra: #""prevResult":\#(prev)"#)))
        let expected = CNIResult(cniVersion: version,
                                 interfaces: [Interface(name: "eth0", mac: "0a:58:0a:f4:01:05", sandbox: "/run/netns/p")],
                                 ips: [IPConfig(address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 0)],
                                 routes: [RouteConfig(dst: "0.0.0.0/0")])
        #expect(c.prevResult == expected)
    }

    @Test func runtimeConfigAndCapabilities() throws {
        let c = try NetworkConfig.decode(bytes(config(extra: #"""
        "capabilities":{"ips":true,"portMappings":true,"mac":true,"bandwidth":true,"aliases":false},
        "runtimeConfig":{"ips":["10.244.1.9/24","fd00::9"],"mac":"c2:11:22:33:44:55",
          "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},{"hostPort":53,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}],
          "bandwidth":{"ingressRate":1000000,"ingressBurst":2000},"cgroupPath":"/kubepods/pod1"}
        """#)))
        #expect(c.capabilities == ["ips": true, "portMappings": true, "mac": true, "bandwidth": true, "aliases": false])
        let rc = try #require(c.runtimeConfig)
        #expect(rc.ips == ["10.244.1.9/24", "fd00::9"])
        #expect(rc.mac == MACAddress("c2:11:22:33:44:55"))
        #expect(rc.portMappings == [PortMapping(hostPort: 8080, containerPort: 80),
                                    PortMapping(hostPort: 53, containerPort: 53, protocol: "udp", hostIP: "127.0.0.1")])
        #expect(rc.bandwidth == .object(["ingressRate": .number(1_000_000), "ingressBurst": .number(2000)]))
        #expect(rc.other == ["cgroupPath": .string("/kubepods/pod1")])
        #expect(text(Array(try JSONEncoder.sorted.encode(rc))) == #"{"bandwidth":{"ingressBurst":2000,"ingressRate":1000000},"cgroupPath":"/kubepods/pod1","ips":["10.244.1.9/24","fd00::9"],"mac":"c2:11:22:33:44:55","portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"},{"containerPort":53,"hostIP":"127.0.0.1","hostPort":53,"protocol":"udp"}]}"#)
    }

    @Test(arguments: [
        ("not json", CNIError.Code.decodingFailure, "error decoding"),
        (#"{"cniVersion":"1.0.0","name":"n""#, .decodingFailure, "error decoding"),
        ("[]", .decodingFailure, "not a JSON object"),
        (#"{"cniVersion":"1.0.0","type":"bridge"}"#, .invalidNetworkConfig, "missing network name"),
        (#"{"cniVersion":"1.0.0","name":"bad name","type":"bridge"}"#, .invalidNetworkConfig, "invalid characters"),
        (#"{"cniVersion":"1.0.0","name":"n"}"#, .invalidNetworkConfig, "missing plugin type"),
        (#"{"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":"host-local"}"#, .invalidNetworkConfig, "ipam"),
        (#"{"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{"type":3}}"#, .invalidNetworkConfig, "ipam.type"),
        (#"{"cniVersion":"1.0.0","name":"n","type":"bridge","capabilities":{"ips":"yes"}}"#, .invalidNetworkConfig, "capabilities.ips"),
        (#"{"cniVersion":"1.0.0","name":"n","type":"bridge","runtimeConfig":{"portMappings":[{"hostPort":80}]}}"#, .invalidNetworkConfig, "runtimeConfig.portMappings[0].containerPort"),
        (#"{"cniVersion":"1.0.0","name":"n","type":"bridge","prevResult":{"ips":[{"address":"nope/24"}]}}"#, .invalidNetworkConfig, "prevResult.ips[0].address"),
    ])
    func invalidConfigs(_ json: String, _ code: CNIError.Code, _ fragment: String) {
        do {
            _ = try NetworkConfig.decode(bytes(json))
            Issue.record("decoded \(json)")
        } catch {
            let e = error as? CNIError
            #expect(e?.knownCode == code, "\(error)")
            #expect(e?.msg.contains(fragment) == true, "\(error)")
        }
    }

    @Test func missingVersionIs010() throws {
        #expect(try NetworkConfig.decode(bytes(#"{"name":"n","type":"t"}"#)).cniVersion == "0.1.0")
    }

    static let conflist = #"""
    {"cniVersion":"1.1.0","cniVersions":["1.0.0","1.1.0"],"name":"keelnet","disableCheck":"true",
     "plugins":[
       {"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","subnet":"10.244.1.0/24"}},
       {"type":"portmap","capabilities":{"portMappings":true},"snat":true},
       {"type":"bandwidth","capabilities":{"bandwidth":true}}]}
    """#

    @Test func conflistElements() throws {
        let list = try NetworkConfigList.decode(bytes(Self.conflist))
        #expect(list.name == "keelnet" && list.cniVersion == "1.1.0" && list.cniVersions == ["1.0.0", "1.1.0"])
        #expect(list.disableCheck && !list.disableGC)
        #expect(list.plugins.count == 3)

        let first = try list.networkConfig(at: 0)
        #expect(first.name == "keelnet" && first.type == "bridge" && first.cniVersion == "1.1.0" && first.ipam?.type == "host-local")

        let prev = CNIResult(ips: [IPConfig(address: "10.244.1.5/24", gateway: "10.244.1.1")])
        let runtime: [String: JSONValue] = [
            "portMappings": .array([.object(["hostPort": .number(8080), "containerPort": .number(80), "protocol": .string("tcp")])]),
            "bandwidth": .object(["egressRate": .number(1000)]),
        ]
        let second = try list.networkConfig(at: 1, prevResult: prev, runtimeConfig: runtime)
        #expect(second.type == "portmap")
        #expect(second.prevResult?.ips == prev.ips)
        #expect(second.prevResult?.cniVersion == "1.1.0")
        #expect(second.capabilities == ["portMappings": true])
        // Only the capability the plugin declared reaches it.
        #expect(second.runtimeConfig == RuntimeConfig(portMappings: [PortMapping(hostPort: 8080, containerPort: 80)]))
        #expect(text(try list.pluginConfig(at: 1, prevResult: prev, runtimeConfig: runtime)) == #"{"capabilities":{"portMappings":true},"cniVersion":"1.1.0","name":"keelnet","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1"}]},"runtimeConfig":{"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]},"snat":true,"type":"portmap"}"#)

        let third = try list.networkConfig(at: 2, runtimeConfig: runtime)
        #expect(third.runtimeConfig?.bandwidth == .object(["egressRate": .number(1000)]))
        #expect(throws: CNIError.self) { try list.pluginConfig(at: 3) }
    }

    /// An older list writes the previous result in its own version.
    @Test func conflistPrevResultFollowsListVersion() throws {
        let list = try NetworkConfigList.decode(bytes(#"{"cniVersion":"0.4.0","name":"old","plugins":[{"type":"a"},{"type":"b"}]}"#))
        let cfg = try JSONValue(parsing: try list.pluginConfig(at: 1, prevResult: CNIResult(ips: [IPConfig(address: "10.0.0.2/8")])))
        #expect(cfg["prevResult"] == .object(["cniVersion": .string("0.4.0"),
                                               "ips": .array([.object(["address": .string("10.0.0.2/8"), "version": .string("4")])])]))
    }

    @Test(arguments: [
        (#"{"cniVersion":"1.0.0","name":"x","plugins":[]}"#, CNIError.Code.invalidNetworkConfig),
        (#"{"cniVersion":"1.0.0","plugins":[{"type":"a"}]}"#, .invalidNetworkConfig),
        (#"{"cniVersion":"1.0.0","name":"x","disableCheck":"maybe","plugins":[{"type":"a"}]}"#, .invalidNetworkConfig),
        ("{", .decodingFailure),
    ])
    func invalidConflists(_ json: String, _ code: CNIError.Code) {
        #expect(performing: { try NetworkConfigList.decode(bytes(json)) }, throws: { ($0 as? CNIError)?.knownCode == code })
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}
