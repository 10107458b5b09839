import CNI
import Foundation
import NFTables
import NetAddress
@testable import PodNetwork
import Testing

func request(_ json: String) throws -> CNIRequest {
    let bytes = Array(json.utf8)
    return CNIRequest(command: .add, containerID: "c1", netns: "/run/netns/x", ifName: "eth0", path: [],
                      config: try NetworkConfig.decode(bytes), rawConfig: bytes)
}

let ipam = #""ipam":{"type":"host-local","subnet":"10.244.1.0/24"}"#

@Suite struct BridgeConfigTests {
    @Test func defaultsAreTheReferencePlugins() throws {
        let c = try BridgeConfig(request(#"{"cniVersion":"1.0.0","name":"n","type":"bridge",\#(ipam)}"#))
        #expect(c.bridge == "cni0")
        #expect(!c.isGateway && !c.isDefaultGateway && !c.ipMasq && !c.hairpinMode && !c.forceAddress)
        #expect(c.mtu == nil && c.mac == nil && c.ipamType == "host-local")
    }

    @Test func defaultGatewayImpliesGateway() throws {
        let c = try BridgeConfig(request(#"{"cniVersion":"1.0.0","name":"n","type":"bridge","isDefaultGateway":true,\#(ipam)}"#))
        #expect(c.isGateway && c.isDefaultGateway)
    }

    @Test func macFromRuntimeConfigOrArgs() throws {
        let a = try BridgeConfig(request(#"{"cniVersion":"1.0.0","name":"n","type":"bridge","runtimeConfig":{"mac":"02:00:00:00:00:aa"},\#(ipam)}"#))
        #expect(a.mac == MACAddress("02:00:00:00:00:aa"))
        let b = try BridgeConfig(request(#"{"cniVersion":"1.0.0","name":"n","type":"bridge","args":{"cni":{"mac":"02:00:00:00:00:bb"}},\#(ipam)}"#))
        #expect(b.mac == MACAddress("02:00:00:00:00:bb"))
    }

    @Test(arguments: [
        (#""vlan":100"#, 2, "vlan"),
        (#""vlanTrunk":[{"id":5}]"#, 2, "vlanTrunk"),
        (#""macspoofchk":true"#, 2, "macspoofchk"),
        (#""preserveDefaultVlan":false"#, 2, "preserveDefaultVlan"),
        (#""ipMasqBackend":"iptables""#, 2, "ipMasqBackend"),
        (#""bridge":"a/b""#, 7, "bridge"),
        (#""bridge":"much-too-long-bridge-name""#, 7, "bridge"),
        (#""mtu":20"#, 7, "mtu"),
        (#""args":{"cni":{"mac":"nope"}}"#, 7, "args.cni.mac"),
        (#""args":{"cni":{"mac":"01:00:5e:00:00:01"}}"#, 7, "args.cni.mac"),
        (#""args":{"cni":{"mac":"00:00:00:00:00:00"}}"#, 7, "args.cni.mac"),
        (#""runtimeConfig":{"mac":"33:33:00:00:00:01"}"#, 7, "runtimeConfig.mac"),
    ])
    func refusedWithTheFieldNamed(field: String, code: Int, name: String) throws {
        let r = try request(#"{"cniVersion":"1.0.0","name":"n","type":"bridge",\#(field),\#(ipam)}"#)
        let error = #expect(throws: (any Error).self) { try BridgeConfig(r) }
        let cni = CNIError(mapping: error!)
        #expect(cni.code == code)
        #expect(cni.details == name || cni.msg.contains(name))
    }

    @Test func missingIPAMIsInvalidConfig() throws {
        let r = try request(#"{"cniVersion":"1.0.0","name":"n","type":"bridge"}"#)
        let error = #expect(throws: (any Error).self) { try BridgeConfig(r) }
        #expect(CNIError(mapping: error!).code == 7)
    }

    @Test(arguments: ["10-keel-bridge.conflist", "10-keel-bridge-dualstack.conflist"])
    func shippedConflistsAreValidBridgeConfigs(file: String) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../cni-conf/\(file)")
        let list = try NetworkConfigList.decode(Array(try Data(contentsOf: url)))
        let bytes = try list.pluginConfig(at: 0)
        let r = CNIRequest(command: .add, containerID: "c", netns: "/x", ifName: "eth0", path: [],
                           config: try NetworkConfig.decode(bytes), rawConfig: bytes)
        let c = try BridgeConfig(r)
        #expect(c.ipMasq && c.isGateway && c.ipamType == "host-local")
    }
}

@Suite struct MasqueradeTests {
    @Test func ownerHashesAreStableAndSeparateNetworks() {
        // FNV-1a reference values: the same on every machine and run (Swift's Hasher is seeded).
        #expect(fnv1a("") == 2_166_136_261)
        #expect(fnv1a("a") == 0xe40c_292c)
        let a = Masquerade.Owner(network: "n1", containerID: "c", ifName: "eth0")
        let b = Masquerade.Owner(network: "n2", containerID: "c", ifName: "eth0")
        #expect(a.attachment == b.attachment && a.network != b.network)
        #expect(Masquerade.Owner(network: "n1", containerID: "c", ifName: "eth1") != a)
    }

    @Test func skeletonHasStaticRulesOverSets() {
        let s = Masquerade.skeleton
        #expect(s.tables == [Masquerade.table])
        #expect(Set(s.sets.map(\.name)) == ["masq-v4", "masq-v6", "masq-exempt-v4", "masq-exempt-v6"])
        #expect(s.rules.count == 6)
        // The chain never names a pod: pods live only in set elements.
        #expect(!transaction(from: nil, to: s).description.contains("10.244"))
        #expect(Masquerade.hasSkeleton(s))
        var damaged = s
        damaged.rules.removeLast()
        #expect(!Masquerade.hasSkeleton(damaged))
    }

    @Test func exemptionCoversThePodsOwnSubnet() {
        let e = Masquerade.exemptElement(CIDR("10.244.1.7/24")!, CIDR("10.244.1.7/24")!)
        #expect(e.key == [.ip(IPAddress("10.244.1.7")!), .ip(IPAddress("10.244.1.0")!)])
        #expect(e.keyEnd == [.ip(IPAddress("10.244.1.7")!), .ip(IPAddress("10.244.1.255")!)])
    }
}

/// Config checks come before the first kernel object: IPAM's (injected) and the overlay's own.
@Suite struct ValidationOrderTests {
    struct Marker: Error {}

    @Test func bridgeAddRunsTheIPAMCheckBeforeOpeningThePod() throws {
        let r = try request(#"{"cniVersion":"1.0.0","name":"n","type":"bridge",\#(ipam)}"#)
        var seen: [String] = []
        let network = try BridgePlugin(ipamCheck: { _, _ in throw Marker() }).network()
        #expect(throws: Marker.self) { try network.add(r) }
        // Without a check, the same request gets as far as the (missing) pod namespace.
        #expect { try BridgePlugin().network().add(r) } throws: { error in
            seen.append("\(error)")
            if case .netnsUnavailable? = error as? PodNetworkError { return true }
            return false
        }
        #expect(seen.count == 1)
    }

    /// vxlan checks IPAM before it ensures the VXLAN device. The underlay does not exist, so a wrong
    /// order fails on a lookup (read-only) instead of creating anything.
    @Test func vxlanRunsTheIPAMCheckBeforeTheDevice() throws {
        let r = try request(#"{"cniVersion":"1.0.0","name":"n","type":"vxlan","subnet":"10.244.1.0/24","clusterCIDR":"10.244.0.0/16","underlayInterface":"keel-t-none0","underlayAddress":"192.168.50.11"}"#)
        let checked = OverlayPlugin(backend: "vxlan", ipamCheck: { type, request in
            #expect(type == "host-local")
            #expect(request.config.ipam?.raw["ranges"] != nil)   // the generated host-local section
            throw Marker()
        })
        #expect(throws: Marker.self) { _ = try checked.prepared(r, ensureDevice: true) }
        #expect { _ = try OverlayPlugin(backend: "vxlan").prepared(r, ensureDevice: true) } throws: { error in
            if case .kernel? = error as? PodNetworkError { return true }   // the underlay lookup
            return false
        }
    }

    @Test(arguments: [
        (#""subnet":"224.0.0.0/24","clusterCIDR":"10.244.0.0/16""#, "subnet"),
        (#""subnets":["10.244.1.0/24","ff02::/64"],"clusterCIDR":"10.244.0.0/16""#, "subnets[1]"),
        (#""subnet":"10.244.1.0/24","clusterCIDR":"0.0.0.0/0""#, "clusterCIDR"),
    ])
    func overlayRefusesNonUnicastSubnets(_ fields: String, _ field: String) throws {
        let r = try request(#"{"cniVersion":"1.0.0","name":"n","type":"host-gw",\#(fields)}"#)
        let plugin = OverlayPlugin(backend: "host-gw")
        #expect { try plugin.settings(r.decodeConfig(OverlayPlugin.Raw.self)) } throws: { error in
            guard case let .invalidConfig(f, reason)? = error as? PodNetworkError else { return false }
            return f == field && (reason.contains("no unicast host addresses") || reason.contains("is every IPv4 address"))
        }
    }
}
