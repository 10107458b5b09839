import Foundation
import NetAddress
import Netlink
import NetnsHarness
import Testing

/// A plugin directory (CNI_PATH) whose `bridge`, `host-local`, … are symlinks to the implementation
/// picked for each: so `bridge` can be Keel's while the `host-local` it delegates to is the reference's.
func withPluginMix<R>(_ picks: [String: String], _ body: (String) throws -> R) throws -> R {
    try withScratchDirectory("plugins") { dir in
        for (plugin, from) in picks {
            try FileManager.default.createSymbolicLink(atPath: dir + "/" + plugin, withDestinationPath: from + "/" + plugin)
        }
        return try body(dir)
    }
}

/// Keel's plugins next to Debian's containernetworking-plugins 1.1.1 (/usr/lib/cni), which speak
/// CNI up to 1.0.0: every config here is 1.0.0.
@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct CNIInteropTests {
    let keel = CNIRunner.keelPluginDirectory
    let reference = CNIRunner.referencePluginDirectory
    /// What a runtime passes besides the CNI variables; plugins exec helpers such as iptables.
    static let runtimePath = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]

    @Test func referencePluginsAreInstalled() throws {
        for plugin in ["bridge", "host-local", "portmap"] {
            #expect(access(reference + "/" + plugin, X_OK) == 0, "\(reference)/\(plugin) missing (apt-get install containernetworking-plugins)")
        }
    }

    /// Two pods through `runner`'s bridge + host-local: distinct addresses, ping each other and the
    /// gateway, CHECK passes, DEL releases the reservations and the veths.
    func twoPodsWork(_ lab: NetnsLab, tag: String, runner: CNIRunner, net: BridgeNet) throws {
        let node = runner.node
        let pods = try [lab.namespace("\(tag)-p1"), lab.namespace("\(tag)-p2")]
        var results: [AddResult] = []
        for (i, pod) in pods.enumerated() {
            results.append(try AddResult(runner.add("bridge", pod: pod, containerID: "c\(i + 1)", config: net.json())))
        }
        let addresses = try results.map { try #require($0.address) }
        let gateway = IPAddress("10.244.1.1")!
        #expect(Set(addresses).count == 2)
        #expect(results.allSatisfy { $0.ips.allSatisfy { $0.masked == CIDR("10.244.1.0/24")! } && $0.gateways == [gateway] })
        #expect(reservationFiles(in: net.reservationDirectory) ==
                [addresses[0].description: "c1\r\neth0", addresses[1].description: "c2\r\neth0"])
        #expect(try TrafficProbe.ping(from: pods[0], to: addresses[1]))
        #expect(try TrafficProbe.ping(from: pods[1], to: addresses[0]))
        #expect(try TrafficProbe.ping(from: pods[0], to: gateway))

        for (i, pod) in pods.enumerated() {
            let check = try runner.check("bridge", pod: pod, containerID: "c\(i + 1)", config: net.json(adding: ["prevResult": results[i].object]))
            #expect(check.succeeded, "\(check)")
        }
        let veths = results.compactMap { $0.hostVeth(bridge: net.bridge) }
        #expect(veths.count == 2)
        for (i, pod) in pods.enumerated() {
            let del = try runner.del("bridge", pod: pod, containerID: "c\(i + 1)", config: net.json())
            #expect(del.succeeded, "\(del)")
            #expect(try !linkNames(pod).contains("eth0"))
        }
        #expect(reservationFiles(in: net.reservationDirectory).isEmpty)
        let left = try linkNames(node)
        #expect(veths.allSatisfy { !left.contains($0) }, "\(left)")
    }

    @Test func keelBridgeWithReferenceHostLocal() throws {
        try withScratchDirectory("kb-rh") { dataDir in
            try withPluginMix(["bridge": keel, "host-local": reference]) { plugins in
                try NetnsLab.with(prefix: "keel-t") { lab in
                    let node = try lab.namespace("kbrh-node")
                    try twoPodsWork(lab, tag: "kbrh", runner: CNIRunner(node: node, path: [plugins]), net: BridgeNet(dataDir: dataDir))
                }
            }
        }
    }

    @Test func referenceBridgeWithKeelHostLocal() throws {
        try withScratchDirectory("rb-kh") { dataDir in
            try withPluginMix(["bridge": reference, "host-local": keel]) { plugins in
                try NetnsLab.with(prefix: "keel-t") { lab in
                    let node = try lab.namespace("rbkh-node")
                    var net = BridgeNet(dataDir: dataDir)
                    net.ipMasq = false   // the reference masquerades with iptables; not what this test is about
                    try twoPodsWork(lab, tag: "rbkh", runner: CNIRunner(node: node, path: [plugins]), net: net)
                }
            }
        }
    }

    @Test func referenceHostLocalDataDirIsReadByKeelsWithoutLosingAReservation() throws {
        try withScratchDirectory("ipam-share") { dataDir in
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("share-node"), pod = try lab.namespace("share-pod")
                let ref = CNIRunner(node: node, path: [reference]), ours = CNIRunner(node: node, path: [keel])
                let net = BridgeNet(dataDir: dataDir)
                let config = try net.json()
                func address(_ run: CNIInvocationResult) throws -> IPAddress { try #require(try AddResult(run).address) }

                // The reference reserves three addresses round robin from the start of the range.
                var held: [String: IPAddress] = [:]
                for id in ["r1", "r2", "r3"] { held[id] = try address(ref.add("host-local", pod: pod, containerID: id, config: config)) }
                #expect(held.values.sorted() == ["10.244.1.2", "10.244.1.3", "10.244.1.4"].map { IPAddress($0)! })

                // Keel's host-local continues after the reference's last reservation and takes none of its addresses.
                held["k1"] = try address(ours.add("host-local", pod: pod, containerID: "k1", config: config))
                #expect(held["k1"] == IPAddress("10.244.1.5"))
                // It finds the reference's reservation on CHECK, and releases it on DEL.
                let check = try ours.check("host-local", pod: pod, containerID: "r2", config: config)
                #expect(check.succeeded, "\(check)")
                let del = try ours.del("host-local", pod: pod, containerID: "r2", config: config)
                #expect(del.succeeded, "\(del)")
                held["r2"] = nil
                let files = reservationFiles(in: net.reservationDirectory)
                #expect(Set(files.keys) == Set(held.values.map(\.description)))
                #expect(files["10.244.1.5"] == "k1\r\neth0")

                // And the other way round: the reference reads Keel's reservation and round-robin position.
                let refCheck = try ref.check("host-local", pod: pod, containerID: "k1", config: config)
                #expect(refCheck.succeeded, "\(refCheck)")
                held["r4"] = try address(ref.add("host-local", pod: pod, containerID: "r4", config: config))
                #expect(held["r4"] == IPAddress("10.244.1.6"))
                #expect(Set(held.values).count == held.count)
                #expect(Set(reservationFiles(in: net.reservationDirectory).keys) == Set(held.values.map(\.description)))
            }
        }
    }

    @Test func keelBridgeChainedWithReferencePortmapCarriesAHostPortConnection() throws {
        try withScratchDirectory("portmap") { dataDir in
            try withPluginMix(["bridge": keel, "host-local": keel, "portmap": reference]) { plugins in
                try NetnsLab.with(prefix: "keel-t") { lab in
                    let node = try lab.namespace("pm-node"), pod = try lab.namespace("pm-pod")
                    let client = try makeWorld(lab, node: node, label: "pm-client")
                    let runner = CNIRunner(node: node, path: [plugins])
                    let net = BridgeNet(dataDir: dataDir)

                    // The chain as libcni runs it: bridge ADD, then portmap ADD with the bridge's result
                    // as prevResult and the runtime's port mappings.
                    let bridgeResult = try AddResult(runner.add("bridge", pod: pod, containerID: "c1", config: net.json()))
                    let podAddress = try #require(bridgeResult.address)
                    let web = try BannerServer(in: pod, address: podAddress, port: 80, banner: "pod-web")
                    defer { web.stop() }
                    #expect(try TrafficProbe.tcpConnect(from: client, to: nodeUplinkAddress, port: 8080) == .refused)

                    let portmap: [String: Any] = [
                        "cniVersion": "1.0.0", "name": net.name, "type": "portmap", "snat": true,
                        "capabilities": ["portMappings": true],
                        "runtimeConfig": ["portMappings": [["hostPort": 8080, "containerPort": 80, "protocol": "tcp"]]],
                        "prevResult": bridgeResult.object,
                    ]
                    let add = try runner.run("portmap", "ADD", containerID: "c1", netns: pod.path, config: jsonText(portmap),
                                             extraEnvironment: Self.runtimePath)
                    #expect(add.succeeded, "\(add)")
                    // portmap passes the previous result through.
                    if add.succeeded { #expect(try AddResult(add).address == podAddress) }

                    // A real connection from outside the node to the node's address and hostPort reaches the pod.
                    #expect(try TrafficProbe.tcpConnect(from: client, to: nodeUplinkAddress, port: 8080) == .connected(reply: "pod-web"))
                    // The mapping is the reference's iptables (iptables-nft here) rule in the node: a DNAT
                    // chain for the container, reached from CNI-HOSTPORT-DNAT.
                    let rules = try node.check(["iptables", "-w", "-t", "nat", "-S"])
                    #expect(rules.contains("--dport 8080 -j DNAT --to-destination \(podAddress):80"), "\(rules)")
                    #expect(rules.contains("-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"), "\(rules)")

                    // portmap 1.1.1's CHECK fails for an IPv4-only pod: it always checks the IPv6 DNAT chain,
                    // which ADD made only for IPv6 addresses (containernetworking/plugins#819, fixed after
                    // 1.1.1). A reference bug, not Keel's; this assertion fails once Debian ships a fixed
                    // portmap, and then the CHECK must simply succeed.
                    let check = try runner.run("portmap", "CHECK", containerID: "c1", netns: pod.path, config: jsonText(portmap),
                                               extraEnvironment: Self.runtimePath)
                    #expect(!check.succeeded && check.errorCode == 999, "\(check)")
                    #expect(check.stdout.contains("could not check ipv6 dnat: chain CNI-DN-"), "\(check)")
                    #expect(check.stdout.contains("not found in iptables table nat"), "\(check)")

                    // The chain's DEL runs in reverse: portmap, then bridge.
                    let del = try runner.run("portmap", "DEL", containerID: "c1", netns: pod.path, config: jsonText(portmap),
                                             extraEnvironment: Self.runtimePath)
                    #expect(del.succeeded, "\(del)")
                    #expect(try TrafficProbe.tcpConnect(from: client, to: nodeUplinkAddress, port: 8080) == .refused)
                    let bridgeDel = try runner.del("bridge", pod: pod, containerID: "c1", config: net.json())
                    #expect(bridgeDel.succeeded, "\(bridgeDel)")
                    #expect(reservationFiles(in: net.reservationDirectory).isEmpty)
                }
            }
        }
    }
}
