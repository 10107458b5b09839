import Foundation
import NFTables
import NetAddress
import Netlink
import NetnsHarness
import Testing

// The built plugin binaries (bridge, host-local, loopback), executed through the CNI protocol by
// `CNIRunner` inside a node namespace the test makes; every pod has a namespace of its own.
// Addresses: pods 10.244.x.0/24 (gateway .1 on the bridge kbr0), the "world" 192.168.100.2 behind the
// node's uplink 192.168.100.1 — all inside the lab's namespaces.

// MARK: - Helpers shared with CNIInteropTests

/// A fresh directory under /tmp for one test (IPAM dataDir, a plugin directory), removed with
/// everything in it when `body` returns or throws. Never the default /var/lib/cni.
func withScratchDirectory<R>(_ tag: String, _ body: (String) throws -> R) throws -> R {
    var template = Array("/tmp/keel-cnit-\(tag)-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw ProcessError(command: ["mkdtemp"], reason: String(cString: strerror(errno)))
    }
    let path = String(cString: made)
    defer { try? FileManager.default.removeItem(atPath: path) }   // a temp dir of ours; already gone is fine
    return try body(path)
}

/// JSON text for a config object (sorted keys, so failures print stably).
func jsonText(_ object: [String: Any]) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
}

func jsonObject(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
}

/// A bridge network config as a runtime would pass it, with host-local IPAM in `dataDir`.
struct BridgeNet {
    var name = "keelnet"
    var cniVersion = "1.0.0"
    var bridge = "kbr0"
    var subnet = "10.244.1.0/24"
    var rangeStart: String?
    var rangeEnd: String?
    var gateway: String?
    var dataDir: String
    var ipMasq = true
    var isDefaultGateway = true
    var ipamRoutes: [[String: Any]] = []
    var ipamType: String? = "host-local"

    init(dataDir: String) { self.dataDir = dataDir }

    var ipam: [String: Any] {
        var range: [String: Any] = ["subnet": subnet]
        range["rangeStart"] = rangeStart
        range["rangeEnd"] = rangeEnd
        range["gateway"] = gateway
        var ipam: [String: Any] = ["ranges": [[range]], "dataDir": dataDir]
        ipam["type"] = ipamType
        if !ipamRoutes.isEmpty { ipam["routes"] = ipamRoutes }
        return ipam
    }

    var object: [String: Any] {
        ["cniVersion": cniVersion, "name": name, "type": "bridge", "bridge": bridge, "isGateway": true,
         "isDefaultGateway": isDefaultGateway, "ipMasq": ipMasq, "ipam": ipam]
    }
    func json(adding extra: [String: Any] = [:]) throws -> String {
        try jsonText(object.merging(extra) { _, new in new })
    }
    /// `<dataDir>/<network>`, where host-local keeps its reservation files.
    var reservationDirectory: String { dataDir + "/" + name }
}

/// A successful ADD's result JSON, read with Foundation.
struct AddResult {
    let object: [String: Any]

    init(_ run: CNIInvocationResult) throws {
        try #require(run.succeeded, "ADD failed: \(run)")
        object = try jsonObject(run.stdout)
    }
    var ips: [CIDR] {
        ((object["ips"] as? [[String: Any]]) ?? []).compactMap { ($0["address"] as? String).flatMap { CIDR($0) } }
    }
    var address: IPAddress? { ips.first?.address }
    var gateways: [IPAddress] {
        ((object["ips"] as? [[String: Any]]) ?? []).compactMap { ($0["gateway"] as? String).flatMap { IPAddress($0) } }
    }
    var interfaces: [[String: Any]] { (object["interfaces"] as? [[String: Any]]) ?? [] }
    /// The node end of the veth: the interface without a sandbox that is not the bridge.
    func hostVeth(bridge: String) -> String? {
        interfaces.first { $0["sandbox"] == nil && ($0["name"] as? String) != bridge }?["name"] as? String
    }
}

/// Reservation files of host-local (named by an address), with their content. `lock` and the
/// round-robin hint `last_reserved_ip.N` are not reservations.
func reservationFiles(in directory: String) -> [String: String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []   // no directory: none
    var out: [String: String] = [:]
    for name in names where IPAddress(name) != nil {
        out[name] = (try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)) ?? "<unreadable>"
    }
    return out
}

/// Everything a plugin run could leave in the node: links, addresses, routes and sysctls (the
/// harness's fingerprint), the whole `inet keel-cni` table, and the IPAM reservations of every
/// network under `dataDir` (keyed `<network>/<address>`).
struct NodeState: Equatable, CustomStringConvertible {
    var network: [String]
    var keelTable: Ruleset?
    var reservations: [String: String]

    init(_ node: LabNamespace, dataDir: String) throws {
        // IPv6 link-local addresses are the kernel's, derived from a MAC that a bridge recomputes as
        // ports come and go; they are not something a plugin made.
        network = try NamespaceFingerprint.read(node.route, namespace: node.namespace).lines.filter { !$0.contains(" fe80:") }
        keelTable = try node.run { try NFTablesSocket() }.table(named: "keel-cni", family: .inet)
        reservations = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dataDir)) ?? [] {   // none yet: no reservations
            for (address, content) in reservationFiles(in: dataDir + "/" + name) { reservations[name + "/" + address] = content }
        }
    }

    func difference(to other: NodeState) -> String {
        let mine = Set(network), theirs = Set(other.network)
        var out = mine.subtracting(theirs).sorted().map { "- " + $0 } + theirs.subtracting(mine).sorted().map { "+ " + $0 }
        if keelTable != other.keelTable { out.append("inet keel-cni: \(String(describing: keelTable)) -> \(String(describing: other.keelTable))") }
        if reservations != other.reservations { out.append("reservations: \(reservations) -> \(other.reservations)") }
        return out.joined(separator: "\n")
    }
    var description: String { network.joined(separator: "\n") + "\nreservations: \(reservations)" }
}

/// Link names inside a namespace.
func linkNames(_ ns: LabNamespace) throws -> [String] { try ns.route.links().map(\.name).sorted() }

/// The pod addresses in the masquerade map `masq-v4` of the node's `inet keel-cni` table.
func masqueradedAddresses(_ node: LabNamespace) throws -> Set<IPAddress> {
    let table = try node.run { try NFTablesSocket() }.table(named: "keel-cni", family: .inet)
    let map = table?.set("masq-v4", in: Table(.inet, "keel-cni"))
    return Set((map?.elements ?? []).compactMap { $0.key.first.flatMap { IPAddress(bytes: $0.bytes) } })
}

/// The node with an uplink to a "world" namespace: 192.168.100.1 (node) ↔ 192.168.100.2 (world).
/// The world has no route to any pod subnet, so only masqueraded pod traffic gets an answer.
let worldAddress = IPAddress("192.168.100.2")!
let nodeUplinkAddress = IPAddress("192.168.100.1")!
func makeWorld(_ lab: NetnsLab, node: LabNamespace, label: String) throws -> LabNamespace {
    let world = try lab.namespace(label)
    try connect(node, "uplink", CIDR("192.168.100.1/24"), to: world, "eth0", CIDR("192.168.100.2/24"))
    return world
}

/// Receives UDP datagrams inside a namespace and reports the source address of the first one:
/// what the receiver sees is what masquerade made of the sender.
final class UDPSourceRecorder {
    let fd: Int32
    init(in ns: LabNamespace, address: IPAddress, port: UInt16) throws {
        fd = try ns.run { () throws -> Int32 in
            let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            _ = address.description.withCString { inet_pton(AF_INET, $0, &sin.sin_addr) }
            let rc = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard s >= 0, rc == 0 else { throw ProcessError(command: ["bind udp \(address):\(port)"], reason: String(cString: strerror(errno))) }
            return s
        }
    }
    deinit { close(fd) }

    /// The source of the next datagram, waiting up to `timeoutMilliseconds`.
    func nextSource(timeoutMilliseconds: Int32 = 1000) -> IPAddress? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, timeoutMilliseconds) > 0 else { return nil }
        var from = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = withUnsafeMutablePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            buffer.withUnsafeMutableBytes { recvfrom(fd, $0.baseAddress, $0.count, 0, sa, &len) } } }
        guard n >= 0 else { return nil }
        return IPAddress(bytes: withUnsafeBytes(of: from.sin_addr) { Array($0) })
    }
}

/// Runs `body(i)` for every i on its own thread, all released at once, and waits for them.
final class ThreadSlots<T>: @unchecked Sendable {
    let lock = NSLock()
    var values: [Int: T] = [:]
}

func onThreads<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
    let slots = ThreadSlots<T>(), done = DispatchGroup(), gate = DispatchSemaphore(value: 0)
    for i in 0..<count {
        done.enter()
        let t = Thread {
            gate.wait()
            let v = body(i)
            slots.lock.withLock { slots.values[i] = v }
            done.leave()
        }
        t.start()
    }
    for _ in 0..<count { gate.signal() }
    done.wait()
    return (0..<count).map { slots.values[$0]! }
}

// MARK: - The bridge plugin (with host-local) and loopback

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct BridgePluginTests {
    let keel = [CNIRunner.keelPluginDirectory]

    @Test func pluginsAreBuilt() throws {
        for plugin in ["bridge", "host-local", "loopback"] {
            #expect(access(keel[0] + "/" + plugin, X_OK) == 0, "\(plugin) not found in \(keel[0]) (swift build first, or set KEEL_PLUGIN_DIR)")
        }
        // Unless KEEL_PLUGIN_DIR says otherwise, the plugins are the ones built with this test binary
        // (same scratch path: .build/debug, or .build-xyz/debug with --scratch-path), not another build's.
        if getenv("KEEL_PLUGIN_DIR") == nil {
            let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            #expect(exe.hasPrefix(keel[0] + "/"), "plugins from \(keel[0]), test binary \(exe)")
        }
    }

    @Test func twoPodsGetDistinctAddressesReachEachOtherTheGatewayAndTheWorldThroughMasquerade() throws {
        try withScratchDirectory("two") { dataDir in
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("two-node"), p1 = try lab.namespace("two-p1"), p2 = try lab.namespace("two-p2")
                let world = try makeWorld(lab, node: node, label: "two-world")
                let runner = CNIRunner(node: node, path: keel)
                let net = BridgeNet(dataDir: dataDir)

                let r1 = try AddResult(runner.add("bridge", pod: p1, containerID: "c1", config: net.json()))
                let r2 = try AddResult(runner.add("bridge", pod: p2, containerID: "c2", config: net.json()))
                let a1 = try #require(r1.address), a2 = try #require(r2.address)
                let subnet = CIDR("10.244.1.0/24")!, gateway = IPAddress("10.244.1.1")!
                #expect(a1 != a2)
                #expect(r1.ips.allSatisfy { $0.masked == subnet } && r2.ips.allSatisfy { $0.masked == subnet })
                #expect(r1.gateways == [gateway] && r2.gateways == [gateway])
                #expect(![a1, a2].contains(gateway))

                // The kernel agrees with the result: the address is on eth0 in the pod, the host end on kbr0.
                let podAddresses = try p1.route.addresses(link: p1.route.link("eth0").index).map(\.cidr)
                #expect(podAddresses.contains(r1.ips[0]))
                let bridge = try node.route.link("kbr0")
                for r in [r1, r2] {
                    let veth = try #require(r.hostVeth(bridge: "kbr0"))
                    #expect(try node.route.link(.name(InterfaceName(veth)!)).masterIndex == bridge.index)
                }
                #expect(try node.route.addresses(link: bridge.index, family: .ipv4).map(\.cidr) == [CIDR("10.244.1.1/24")!])
                #expect(reservationFiles(in: net.reservationDirectory) == [a1.description: "c1\r\neth0", a2.description: "c2\r\neth0"])

                #expect(try TrafficProbe.ping(from: p1, to: a2))
                #expect(try TrafficProbe.ping(from: p2, to: a1))
                #expect(try TrafficProbe.ping(from: p1, to: gateway))
                #expect(try TrafficProbe.ping(from: p2, to: gateway))

                // The world: reachable only through masquerade, and it sees the node's uplink address.
                #expect(try masqueradedAddresses(node) == [a1, a2])
                #expect(try TrafficProbe.ping(from: p1, to: worldAddress))
                let server = try BannerServer(in: world, address: worldAddress, port: 8080, banner: "world")
                defer { server.stop() }
                #expect(try TrafficProbe.tcpConnect(from: p2, to: worldAddress, port: 8080).reply == "world")
                let recorder = try UDPSourceRecorder(in: world, address: worldAddress, port: 9999)
                _ = try TrafficProbe.udpExchange(from: p1, to: worldAddress, port: 9999, timeoutMilliseconds: 200)  // no reply expected
                #expect(recorder.nextSource() == nodeUplinkAddress)

                // Control: without its masquerade entry the same pod gets no answer from the world.
                try node.check(["nft", "delete", "element", "inet", "keel-cni", "masq-v4", "{ \(a1) }"])
                #expect(try TrafficProbe.tcpConnect(from: p1, to: worldAddress, port: 8080, timeoutMilliseconds: 1000) == .timedOut)
                // ... while the other pod still gets through.
                #expect(try TrafficProbe.tcpConnect(from: p2, to: worldAddress, port: 8080).reply == "world")
            }
        }
    }

    @Test func dualStackPodsGetOneAddressPerFamilyAndReachEachOtherOverBoth() throws {
        try withScratchDirectory("dual") { dataDir in
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("dual-node"), p1 = try lab.namespace("dual-p1"), p2 = try lab.namespace("dual-p2")
                let runner = CNIRunner(node: node, path: keel)
                var object = BridgeNet(dataDir: dataDir).object
                object["ipam"] = ["type": "host-local", "dataDir": dataDir,
                                  "ranges": [[["subnet": "10.244.1.0/24"]], [["subnet": "fd00:10:244:1::/64"]]]]
                let config = try jsonText(object)
                let r1 = try AddResult(runner.add("bridge", pod: p1, containerID: "c1", config: config))
                let r2 = try AddResult(runner.add("bridge", pod: p2, containerID: "c2", config: config))
                for r in [r1, r2] {
                    #expect(r.ips.map(\.family) == [.ipv4, .ipv6], "\(r.object)")
                    #expect(r.gateways == [IPAddress("10.244.1.1")!, IPAddress("fd00:10:244:1::1")!])
                }
                let v6a = try #require(r1.ips.last?.address), v6b = try #require(r2.ips.last?.address)
                #expect(v6a != v6b)
                // Both routes are in the pods (isDefaultGateway), and v6 works without waiting for DAD.
                #expect(try p1.route.routes().contains { $0.destination == CIDR("::/0")! && $0.gateway == IPAddress("fd00:10:244:1::1") })
                #expect(try TrafficProbe.ping(from: p1, to: v6b))
                #expect(try TrafficProbe.ping(from: p2, to: IPAddress("fd00:10:244:1::1")!))
                #expect(try TrafficProbe.ping(from: p2, to: try #require(r1.address)))
                // Masquerade holds both addresses of each pod; DEL takes both away.
                let table = try node.run { try NFTablesSocket() }.table(named: "keel-cni", family: .inet)
                let v6Masq = Set((table?.set("masq-v6", in: Table(.inet, "keel-cni"))?.elements ?? []).compactMap { $0.key.first.flatMap { IPAddress(bytes: $0.bytes) } })
                #expect(v6Masq == [v6a, v6b])
                #expect(try runner.del("bridge", pod: p1, containerID: "c1", config: config).succeeded)
                #expect(Set(reservationFiles(in: dataDir + "/keelnet").keys) == Set(r2.ips.map { $0.address.description }))
                let after = try node.run { try NFTablesSocket() }.table(named: "keel-cni", family: .inet)
                #expect(after?.set("masq-v6", in: Table(.inet, "keel-cni"))?.elements.count == 1)
            }
        }
    }

    @Test func checkPassesThenFailsAfterAnAddressIsRemovedByHand() throws {
        try withScratchDirectory("check") { dataDir in
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("chk-node"), pod = try lab.namespace("chk-pod")
                let runner = CNIRunner(node: node, path: keel)
                let net = BridgeNet(dataDir: dataDir)
                let add = try runner.add("bridge", pod: pod, containerID: "c1", config: net.json())
                let result = try AddResult(add)
                let checkConfig = try net.json(adding: ["prevResult": result.object])

                let ok = try runner.check("bridge", pod: pod, containerID: "c1", config: checkConfig)
                #expect(ok.succeeded, "\(ok)")
                #expect(ok.stdout.isEmpty)

                // Remove the pod's address by hand: CHECK must notice.
                let eth0 = try pod.route.link("eth0")
                let assigned = try #require(try pod.route.addresses(link: eth0.index).first { $0.cidr == result.ips[0] })
                try pod.route.deleteAddress(assigned)
                let failed = try runner.check("bridge", pod: pod, containerID: "c1", config: checkConfig)
                #expect(!failed.succeeded)
                #expect(failed.errorCode == 999, "\(failed)")
                #expect(failed.stdout.contains("lacks address \(result.ips[0])"), "\(failed)")

                // More pods: CHECK also notices a reservation that is gone, and a missing masquerade entry.
                let pod2 = try lab.namespace("chk-pod2"), pod3 = try lab.namespace("chk-pod3")
                let r2 = try AddResult(runner.add("bridge", pod: pod2, containerID: "c2", config: net.json()))
                let r3 = try AddResult(runner.add("bridge", pod: pod3, containerID: "c3", config: net.json()))
                let check2 = try net.json(adding: ["prevResult": r2.object]), check3 = try net.json(adding: ["prevResult": r3.object])
                #expect(try runner.check("bridge", pod: pod2, containerID: "c2", config: check2).succeeded)
                #expect(try runner.check("bridge", pod: pod3, containerID: "c3", config: check3).succeeded)
                let a2 = try #require(r2.address), a3 = try #require(r3.address)
                try FileManager.default.removeItem(atPath: net.reservationDirectory + "/" + a2.description)
                let noLease = try runner.check("bridge", pod: pod2, containerID: "c2", config: check2)
                #expect(noLease.errorCode == 999 && noLease.stdout.contains("failed to find address added by container c2"), "\(noLease)")
                try node.check(["nft", "delete", "element", "inet", "keel-cni", "masq-v4", "{ \(a3) }"])
                let noMasq = try runner.check("bridge", pod: pod3, containerID: "c3", config: check3)
                #expect(noMasq.errorCode == 999 && noMasq.stdout.contains("no masquerade entry for \(a3)"), "\(noMasq)")
            }
        }
    }

    @Test func delRemovesTheVethTheReservationAndTheMasqueradeEntryAndIsIdempotent() throws {
        try withScratchDirectory("del") { dataDir in
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("del-node"), p0 = try lab.namespace("del-p0"), pod = try lab.namespace("del-pod")
                let runner = CNIRunner(node: node, path: keel)
                let net = BridgeNet(dataDir: dataDir)
                // A first pod makes the shared objects (bridge, gateway address, table) that DEL keeps.
                _ = try AddResult(runner.add("bridge", pod: p0, containerID: "c0", config: net.json()))
                let before = try NodeState(node, dataDir: dataDir)
                let podBefore = try linkNames(pod)

                let r = try AddResult(runner.add("bridge", pod: pod, containerID: "c1", config: net.json()))
                let veth = try #require(r.hostVeth(bridge: "kbr0"))
                let address = try #require(r.address)
                #expect(try linkNames(node).contains(veth))
                #expect(try linkNames(pod).contains("eth0"))
                #expect(reservationFiles(in: net.reservationDirectory)[address.description] == "c1\r\neth0")
                #expect(try masqueradedAddresses(node).contains(address))
                // The comparison sees what an ADD makes (else "unchanged" below would prove nothing).
                let added = try NodeState(node, dataDir: dataDir)
                #expect(added != before)
                #expect(added.difference(to: before).contains("- link \(veth) kind=veth"), "\(added.difference(to: before))")

                let del = try runner.del("bridge", pod: pod, containerID: "c1", config: net.json())
                #expect(del.succeeded, "\(del)")
                #expect(try !linkNames(node).contains(veth))
                #expect(try linkNames(pod) == podBefore)
                let after = try NodeState(node, dataDir: dataDir)
                #expect(after == before, "\(before.difference(to: after))")

                // Again, without CNI_NETNS, and after the namespace is gone: all success, nothing changes.
                let again = try runner.del("bridge", pod: pod, containerID: "c1", config: net.json())
                #expect(again.succeeded, "\(again)")
                let noNetns = try runner.del("bridge", pod: nil, containerID: "c1", config: net.json())
                #expect(noNetns.succeeded, "\(noNetns)")
                try NetworkNamespace.delete(named: pod.name)
                let goneNetns = try runner.del("bridge", pod: pod, containerID: "c1", config: net.json())
                #expect(goneNetns.succeeded, "\(goneNetns)")
                let end = try NodeState(node, dataDir: dataDir)
                #expect(end == before, "\(before.difference(to: end))")
            }
        }
    }

    /// Five DELs of one attachment at once, as a runtime retrying a timed-out DEL does, racing a GC
    /// that also drops the attachment: each must succeed (CNI spec: DEL is idempotent, whichever run
    /// removed the veth, the reservation or the masquerade entry first), and the node ends as before
    /// the ADD. Several rounds, since a race needs the runs to overlap at the wrong step.
    @Test func fiveConcurrentDelsOfOneAttachmentAndAGCAllSucceedAndLeaveNothing() throws {
        try withScratchDirectory("cdel") { dataDir in
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("cdel-node"), p0 = try lab.namespace("cdel-p0")
                let runner = CNIRunner(node: node, path: keel)
                var net = BridgeNet(dataDir: dataDir)
                net.cniVersion = "1.1.0"   // GC exists from 1.1.0
                let config = try net.json()
                let gcConfig = try net.json(adding: ["cni.dev/valid-attachments": [["containerID": "c0", "ifname": "eth0"]]])
                _ = try AddResult(runner.add("bridge", pod: p0, containerID: "c0", config: config))
                let before = try NodeState(node, dataDir: dataDir)
                for round in 0..<4 {
                    let pod = try lab.namespace("cdel-pod\(round)")
                    let podBefore = try linkNames(pod)
                    let added = try AddResult(runner.add("bridge", pod: pod, containerID: "c1", config: config))
                    #expect(try masqueradedAddresses(node).contains(try #require(added.address)))
                    // Runs 0–4 are DELs; in odd rounds run 5 is a GC that does not list c1.
                    let runs = onThreads(round % 2 == 0 ? 5 : 6) { i in
                        Result { i < 5 ? try runner.del("bridge", pod: pod, containerID: "c1", config: config)
                                       : try runner.run("bridge", "GC", ifName: "", config: gcConfig) }
                    }
                    for (i, run) in runs.enumerated() {
                        switch run {
                        case .success(let r): #expect(r.succeeded, "round \(round), run \(i): \(r)")
                        case .failure(let e): Issue.record("round \(round), run \(i): \(e)")
                        }
                    }
                    #expect(try linkNames(pod) == podBefore, "round \(round)")
                    let after = try NodeState(node, dataDir: dataDir)
                    #expect(after == before, "round \(round): \(before.difference(to: after))")
                }
            }
        }
    }

    /// An ADD that fails after the veth and the reservation exist must undo both.
    func expectLateFailureLeavesNothing(tag: String, failing: (inout BridgeNet) -> Void, firstPodTakesLastAddress: Bool = false,
                                        expectedCode: Int, expectedMessage: String) throws {
        try withScratchDirectory(tag) { dataDir in
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("\(tag)-node"), p0 = try lab.namespace("\(tag)-p0"), pod = try lab.namespace("\(tag)-pod")
                let runner = CNIRunner(node: node, path: keel)
                var net = BridgeNet(dataDir: dataDir)
                if firstPodTakesLastAddress { net.rangeStart = "10.244.1.10"; net.rangeEnd = "10.244.1.10" }
                // Shared objects (bridge, gateway address, masquerade table) exist before, as on a live node.
                let first = try AddResult(runner.add("bridge", pod: p0, containerID: "c0", config: net.json()))
                if firstPodTakesLastAddress { #expect(first.address == IPAddress("10.244.1.10")) }
                let before = try NodeState(node, dataDir: dataDir)
                let podBefore = try linkNames(pod)

                var bad = net
                failing(&bad)
                let run = try runner.add("bridge", pod: pod, containerID: "c1", config: bad.json())
                #expect(!run.succeeded)
                #expect(run.errorCode == expectedCode, "\(run)")
                #expect(run.stdout.contains(expectedMessage), "\(run)")

                let after = try NodeState(node, dataDir: dataDir)
                #expect(after == before, "\(before.difference(to: after))")
                #expect(try linkNames(pod) == podBefore)
                #expect(try masqueradedAddresses(node) == Set([first.address].compactMap { $0 }))
            }
        }
    }

    @Test func addThatFailsOnABadRouteInTheIPAMResultLeavesNoVethNoReservationNoRule() throws {
        // A gateway that is not on-link: RTM_NEWROUTE fails in the pod after the veth and the lease exist.
        try expectLateFailureLeavesNothing(tag: "badrt", failing: { $0.ipamRoutes = [["dst": "10.77.0.0/16", "gw": "10.99.99.1"]] },
                                           expectedCode: 999, expectedMessage: "RTM_NEWROUTE")
    }

    /// On a node without the bridge, the ADD that makes it and then fails (a route the pod's kernel
    /// refuses) removes it again: the node is as it was, and the next good ADD starts clean.
    @Test func addThatFailsLateOnAFreshNodeRemovesTheBridgeItMade() throws {
        try withScratchDirectory("fresh") { dataDir in
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("fresh-node"), pod = try lab.namespace("fresh-pod")
                let runner = CNIRunner(node: node, path: keel)
                var net = BridgeNet(dataDir: dataDir)
                net.ipamRoutes = [["dst": "10.77.0.0/16", "gw": "10.99.99.1"]]
                let before = try NodeState(node, dataDir: dataDir)
                let podBefore = try linkNames(pod)
                let run = try runner.add("bridge", pod: pod, containerID: "c1", config: net.json())
                #expect(run.errorCode == 999 && run.stdout.contains("RTM_NEWROUTE"), "\(run)")
                let after = try NodeState(node, dataDir: dataDir)
                #expect(after == before, "\(before.difference(to: after))")
                #expect(try !linkNames(node).contains("kbr0"))
                #expect(try linkNames(pod) == podBefore)

                net.ipamRoutes = []
                let good = try AddResult(runner.add("bridge", pod: pod, containerID: "c1", config: net.json()))
                #expect(good.address.map { CIDR("10.244.1.0/24")!.contains($0) } == true)
            }
        }
    }

    /// vxlan makes the node's VXLAN device before it attaches the pod: a config its IPAM refuses must
    /// be refused first, with the field named, on a node where the device could be made.
    @Test func vxlanRefusesABadIPAMConfigBeforeMakingTheDevice() throws {
        try withScratchDirectory("vxbad") { dataDir in
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("vxbad-node"), pod = try lab.namespace("vxbad-pod")
                _ = try makeWorld(lab, node: node, label: "vxbad-world")   // the underlay: uplink 192.168.100.1
                let runner = CNIRunner(node: node, path: keel)
                var config: [String: Any] = [
                    "cniVersion": "1.0.0", "name": "keelvx", "type": "vxlan", "subnet": "10.244.1.0/24", "clusterCIDR": "10.244.0.0/16",
                    "underlayInterface": "uplink", "underlayAddress": nodeUplinkAddress.description, "ipMasq": false,
                    "ipam": ["type": "host-local", "dataDir": dataDir, "ranges": [[["subnet": "10.244.1.0/24", "gateway": "10.244.1.255"]]]],
                ]
                let before = try NodeState(node, dataDir: dataDir)
                let podBefore = try linkNames(pod)
                let run = try runner.add("vxlan", pod: pod, containerID: "c1", config: jsonText(config))
                #expect(run.errorCode == 7 && run.stdout.contains("ipam.ranges[0][0].gateway"), "\(run)")
                let after = try NodeState(node, dataDir: dataDir)
                #expect(after == before, "\(before.difference(to: after))")
                #expect(try !linkNames(node).contains("keel.1"))
                #expect(try linkNames(pod) == podBefore)

                // The good config makes the device: the refusal above is not for want of an underlay.
                config["ipam"] = ["type": "host-local", "dataDir": dataDir, "ranges": [[["subnet": "10.244.1.0/24"]]]]
                _ = try AddResult(runner.add("vxlan", pod: pod, containerID: "c1", config: jsonText(config)))
                #expect(try linkNames(node).contains("keel.1"))
            }
        }
    }

    @Test func addThatFailsOnAnExhaustedRangeLeavesNoVethNoReservationNoRule() throws {
        try expectLateFailureLeavesNothing(tag: "exh", failing: { _ in }, firstPodTakesLastAddress: true,
                                           expectedCode: 999, expectedMessage: "no IP addresses available")
    }

    @Test func addThatFailsOnAGatewayConflictOnTheBridgeLeavesNoVethNoReservationNoRule() throws {
        // A second network on the same bridge and subnet with another gateway: the pod is configured,
        // then the bridge refuses the second gateway address (no forceAddress).
        try expectLateFailureLeavesNothing(tag: "gwc", failing: { $0.name = "othernet"; $0.gateway = "10.244.1.254" },
                                           expectedCode: 999, expectedMessage: "kbr0 already has an IP address 10.244.1.1/24 different from 10.244.1.254/24")
    }

    @Test func fiftyConcurrentAddsGetFiftyDistinctAddresses() throws {
        try withScratchDirectory("fifty") { dataDir in
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("c50-node")
                let pods = try (0..<50).map { try lab.namespace("c50-p\($0)") }
                let runner = CNIRunner(node: node, path: keel)
                let net = BridgeNet(dataDir: dataDir)
                let config = try net.json()
                let runs = onThreads(50) { i in
                    Result { try runner.add("bridge", pod: pods[i], containerID: "c\(i)", config: config) }
                }
                var addresses: [IPAddress] = []
                for (i, run) in runs.enumerated() {
                    switch run {
                    case .success(let r):
                        #expect(r.succeeded, "pod \(i): \(r)")
                        if r.succeeded, let a = try AddResult(r).address { addresses.append(a) }
                    case .failure(let e):
                        Issue.record("pod \(i): \(e)")
                    }
                }
                #expect(addresses.count == 50)
                #expect(Set(addresses).count == 50)
                #expect(reservationFiles(in: net.reservationDirectory).count == 50)
                #expect(try masqueradedAddresses(node) == Set(addresses))
                let bridge = try node.route.link("kbr0")
                #expect(try node.route.links().filter { $0.masterIndex == bridge.index }.count == 50)
                #expect(try node.route.addresses(link: bridge.index, family: .ipv4).map(\.cidr) == [CIDR("10.244.1.1/24")!])
                // Spot-check the datapath between two of them.
                if addresses.count == 50 { #expect(try TrafficProbe.ping(from: pods[0], to: addresses[49])) }
            }
        }
    }

    @Test func gcReleasesWhatTheValidListDoesNotName() throws {
        try withScratchDirectory("gc") { dataDir in
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("gc-node")
                let runner = CNIRunner(node: node, path: keel)
                var net = BridgeNet(dataDir: dataDir)
                net.cniVersion = "1.1.0"   // GC exists from 1.1.0
                var byContainer: [String: IPAddress] = [:]
                for i in 1...3 {
                    let pod = try lab.namespace("gc-p\(i)")
                    let address = try #require(try AddResult(runner.add("bridge", pod: pod, containerID: "c\(i)", config: net.json())).address)
                    byContainer["c\(i)"] = address
                }
                #expect(reservationFiles(in: net.reservationDirectory).count == 3)
                #expect(try masqueradedAddresses(node).count == 3)

                func gc(_ valid: [(String, String)]) throws -> CNIInvocationResult {
                    let list = valid.map { ["containerID": $0.0, "ifname": $0.1] }
                    return try runner.run("bridge", "GC", ifName: "", config: net.json(adding: ["cni.dev/valid-attachments": list]))
                }
                // c1 stays; c2, c3 go.
                let partial = try gc([("c1", "eth0")])
                #expect(partial.succeeded, "\(partial)")
                #expect(Array(reservationFiles(in: net.reservationDirectory).keys) == [byContainer["c1"]!.description])
                #expect(try masqueradedAddresses(node) == [byContainer["c1"]!])

                let all = try gc([])
                #expect(all.succeeded, "\(all)")
                #expect(reservationFiles(in: net.reservationDirectory).isEmpty)
                #expect(try masqueradedAddresses(node).isEmpty)
                // The table itself (shared) stays, empty.
                let table = try node.run { try NFTablesSocket() }.table(named: "keel-cni", family: .inet)
                #expect(table?.set("masq-exempt-v4", in: Table(.inet, "keel-cni"))?.elements.isEmpty == true)
            }
        }
    }

    /// One malformed invocation: what to change in a good one, the exact code it must return and
    /// what its message must name.
    struct Malformed: CustomTestStringConvertible, Sendable {
        var name: String
        /// Names this case's namespaces, unique even if the cases ever run in parallel.
        var tag: String
        var code: Int
        var mentions: String
        /// Replaces the config text (nil: the good config).
        var config: (@Sendable (BridgeNet) throws -> String)?
        var ifName = "eth0"
        /// The CNI_NETNS to pass: nil leaves it unset; "" means the pod's path.
        var netns: String? = ""
        var testDescription: String { name }
    }

    static let malformed: [Malformed] = [
        Malformed(name: "bad JSON", tag: "mf-json", code: 6, mentions: "unexpected end of input, expected a key (a string in double quotes) at line 1, column 62",
                  config: { _ in #"{"cniVersion": "1.0.0", "name": "keelnet", "type": "bridge", "# }),
        Malformed(name: "nested 5000 levels deep", tag: "mf-deep", code: 6, mentions: "nested more than 128 levels deep",
                  config: { n in try n.json().replacingOccurrences(of: "{", with: "{\"x\":" + String(repeating: "[", count: 5000)
                                                                          + String(repeating: "]", count: 5000) + ",", options: .anchored) }),
        // Configs host-local's reference takes and the kernel then refuses half-way through an ADD.
        Malformed(name: "subnet 0.0.0.0/0", tag: "mf-all4", code: 7, mentions: "ipam.ranges[0][0].subnet",
                  config: { n in var n = n; n.subnet = "0.0.0.0/0"; return try n.json() }),
        Malformed(name: "subnet ::/0", tag: "mf-all6", code: 7, mentions: "ipam.ranges[0][0].subnet",
                  config: { n in var n = n; n.subnet = "::/0"; return try n.json() }),
        Malformed(name: "multicast subnet", tag: "mf-mc4", code: 7, mentions: "ipam.ranges[0][0].subnet",
                  config: { n in var n = n; n.subnet = "224.1.1.0/24"; return try n.json() }),
        Malformed(name: "IPv6 multicast subnet", tag: "mf-mc6", code: 7, mentions: "ipam.ranges[0][0].subnet",
                  config: { n in var n = n; n.subnet = "ff05::/64"; return try n.json() }),
        Malformed(name: "loopback subnet", tag: "mf-lo", code: 7, mentions: "ipam.ranges[0][0].subnet",
                  config: { n in var n = n; n.subnet = "127.1.0.0/16"; return try n.json() }),
        Malformed(name: "gateway on the broadcast address", tag: "mf-gwbc", code: 7, mentions: "ipam.ranges[0][0].gateway",
                  config: { n in var n = n; n.gateway = "10.244.1.255"; return try n.json() }),
        Malformed(name: "gateway on the network address", tag: "mf-gwnet", code: 7, mentions: "ipam.ranges[0][0].gateway",
                  config: { n in var n = n; n.gateway = "10.244.1.0"; return try n.json() }),
        Malformed(name: "rangeStart on the network address", tag: "mf-rsnet", code: 7, mentions: "ipam.ranges[0][0].rangeStart",
                  config: { n in var n = n; n.rangeStart = "10.244.1.0"; return try n.json() }),
        Malformed(name: "rangeEnd outside the subnet", tag: "mf-reout", code: 7, mentions: "ipam.ranges[0][0].rangeEnd",
                  config: { n in var n = n; n.rangeEnd = "10.244.2.10"; return try n.json() }),
        Malformed(name: "IPv6 pod with an MTU below 1280", tag: "mf-mtu6", code: 7, mentions: "below 1280",
                  config: { n in var n = n; n.subnet = "fd00:1::/64"; return try n.json(adding: ["mtu": 1000]) }),
        Malformed(name: "multicast MAC", tag: "mf-mac", code: 7, mentions: "args.cni.mac",
                  config: { n in try n.json(adding: ["args": ["cni": ["mac": "01:00:5e:00:00:01"]]]) }),
        Malformed(name: "route gateway of the other family", tag: "mf-rtfam", code: 7, mentions: "ipam.routes[0].gw",
                  config: { n in var n = n; n.ipamRoutes = [["dst": "10.77.0.0/16", "gw": "fd00::1"]]; return try n.json() }),
        Malformed(name: "unknown cniVersion", tag: "mf-ver", code: 1, mentions: "9.9.9",
                  config: { n in var n = n; n.cniVersion = "9.9.9"; return try n.json() }),
        Malformed(name: "invalid CIDR", tag: "mf-cidr", code: 7, mentions: "ipam.ranges[0][0].subnet",
                  config: { n in var n = n; n.subnet = "10.244.1.0/33"; return try n.json() }),
        Malformed(name: "missing ipam type", tag: "mf-ipam", code: 7, mentions: "ipam.type",
                  config: { n in var n = n; n.ipamType = nil; return try n.json() }),
        Malformed(name: "bad ifname (too long)", tag: "mf-iflen", code: 4, mentions: "interface name is too long", ifName: "eth0-much-too-long"),
        Malformed(name: "bad ifname (slash)", tag: "mf-ifslash", code: 4, mentions: "eth/0", ifName: "eth/0"),
        Malformed(name: "missing netns (CNI_NETNS unset)", tag: "mf-nons", code: 4, mentions: "CNI_NETNS", netns: nil),
        Malformed(name: "missing netns (no such path)", tag: "mf-nopath", code: 8, mentions: "/run/netns/keel-t-no-such-namespace",
                  netns: "/run/netns/keel-t-no-such-namespace"),
    ]

    @Test(arguments: malformed)
    func malformedAddReturnsTheExactCodeAndChangesNothing(_ m: Malformed) throws {
        try withScratchDirectory(m.tag) { dataDir in
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("\(m.tag)-node"), p0 = try lab.namespace("\(m.tag)-p0"), pod = try lab.namespace("\(m.tag)-pod")
                let runner = CNIRunner(node: node, path: keel)
                let net = BridgeNet(dataDir: dataDir)
                let podBefore = try linkNames(pod)
                func malformedAdd() throws {
                    let config = try m.config.map { try $0(net) } ?? net.json()
                    let run = try runner.run("bridge", "ADD", containerID: "c1", netns: m.netns.map { $0.isEmpty ? pod.path : $0 },
                                             ifName: m.ifName, config: config)
                    #expect(run.process.exitStatus == 1, "\(run)")
                    #expect(run.errorCode == m.code, "\(run)")
                    // The error document itself is JSON with the code and a message naming the problem.
                    let error = try jsonObject(run.stdout)
                    #expect(error["code"] as? Int == m.code)
                    let text = "\(error["msg"] as? String ?? "") \(error["details"] as? String ?? "")"
                    #expect(text.contains(m.mentions), "\(run)")
                    #expect(try linkNames(pod) == podBefore)
                }

                // A fresh node.
                let fresh = try NodeState(node, dataDir: dataDir)
                try malformedAdd()
                let afterFresh = try NodeState(node, dataDir: dataDir)
                // The bridge is made only after IPAM accepted the config: nothing changes, not even on a fresh node.
                #expect(afterFresh == fresh, "\(fresh.difference(to: afterFresh))")

                // A node with a pod on the network already.
                _ = try AddResult(runner.add("bridge", pod: p0, containerID: "c0", config: net.json()))
                let before = try NodeState(node, dataDir: dataDir)
                try malformedAdd()
                let after = try NodeState(node, dataDir: dataDir)
                #expect(after == before, "\(before.difference(to: after))")
            }
        }
    }

    @Test func loopbackAddBringsLoUpDelBringsItDownCheckFollows() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let node = try lab.namespace("lo-node"), pod = try lab.namespace("lo-pod")
            let runner = CNIRunner(node: node, path: keel)
            let config = try jsonText(["cniVersion": "1.0.0", "name": "lo", "type": "loopback"])
            // The lab brings lo up in every namespace; start from a pod whose lo is down, as a fresh netns has it.
            try pod.route.setUp("lo", false)
            let loopback = IPAddress("127.0.0.1")!
            #expect(try !TrafficProbe.ping(from: pod, to: loopback, timeoutSeconds: 1))

            let add = try runner.add("loopback", pod: pod, containerID: "c1", config: config)
            let result = try AddResult(add)
            #expect(result.ips.contains(CIDR("127.0.0.1/8")!))
            #expect(try pod.route.link("lo").isUp)
            #expect(try TrafficProbe.ping(from: pod, to: loopback))

            let checkConfig = try jsonText(["cniVersion": "1.0.0", "name": "lo", "type": "loopback", "prevResult": result.object])
            let ok = try runner.check("loopback", pod: pod, containerID: "c1", config: checkConfig)
            #expect(ok.succeeded, "\(ok)")

            let del = try runner.del("loopback", pod: pod, containerID: "c1", config: config)
            #expect(del.succeeded, "\(del)")
            #expect(try !pod.route.link("lo").isUp)
            #expect(try !TrafficProbe.ping(from: pod, to: loopback, timeoutSeconds: 1))
            let failed = try runner.check("loopback", pod: pod, containerID: "c1", config: checkConfig)
            #expect(!failed.succeeded)
            #expect(failed.errorCode == 999 && failed.stdout.contains("lo is down"), "\(failed)")
            // DEL again, and without a netns: success.
            #expect(try runner.del("loopback", pod: pod, containerID: "c1", config: config).succeeded)
            #expect(try runner.del("loopback", pod: nil, containerID: "c1", config: config).succeeded)
        }
    }
}
