import Glibc
import NFTables
import NetAddress
import Netlink
import NetnsHarness
import Testing

/// One UDP socket inside a lab namespace, connected to `address`:`port`: every exchange uses the same
/// 5-tuple, as a long-lived client (a DNS resolver, a game client) does.
final class UDPFlow: @unchecked Sendable {
    let fd: Int32
    let localPort: UInt16

    init(from namespace: LabNamespace, to address: IPAddress, port: UInt16) throws {
        // A socket belongs to the namespace it was made in; its fd works from any thread afterwards.
        let (fd, local) = try namespace.run { () throws -> (Int32, UInt16) in
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw ProcessError(command: ["socket"], reason: String(cString: strerror(errno))) }
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            sin.sin_addr.s_addr = address.bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            let rc = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { close(fd); throw ProcessError(command: ["connect \(address):\(port)"], reason: String(cString: strerror(errno))) }
            var bound = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
            return (fd, UInt16(bigEndian: bound.sin_port))
        }
        self.fd = fd
        localPort = local
    }
    deinit { close(fd) }

    /// Sends one datagram and returns the first reply (a BannerServer's banner), nil on timeout.
    func exchange(_ payload: String = "ping", timeoutMilliseconds: Int32 = 1500) -> String? {
        let bytes = Array(payload.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, timeoutMilliseconds) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n >= 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }
}

/// ctnetlink through the core, against the conntrack table of a router namespace that DNATs a
/// service address: client ── router (DNAT map) ── backends A and B.
@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs root"))
struct ConntrackIntegrationTests {
    let vip = IPAddress("10.96.0.10")!
    let client = IPAddress("10.1.0.2")!
    let backendA = IPAddress("10.2.0.2")!
    let backendB = IPAddress("10.2.0.3")!

    func topology(_ lab: NetnsLab, _ tag: String) throws -> (client: LabNamespace, router: LabNamespace, servers: LabNamespace) {
        let c = try lab.namespace("\(tag)-c"), r = try lab.namespace("\(tag)-r"), s = try lab.namespace("\(tag)-s")
        try connect(c, "eth0", CIDR("10.1.0.2/24"), to: r, "c0", CIDR("10.1.0.1/24"))
        try connect(r, "s0", CIDR("10.2.0.1/24"), to: s, "eth0", CIDR("10.2.0.2/24"))
        try s.configure("eth0", address: CIDR("10.2.0.3/24")!)
        try c.route.addRoute(Route(destination: CIDR("0.0.0.0/0")!, gateway: IPAddress("10.1.0.1")))
        try s.route.addRoute(Route(destination: CIDR("0.0.0.0/0")!, gateway: IPAddress("10.2.0.1")))
        try r.sysctl("net.ipv4.ip_forward", "1")
        return (c, r, s)
    }

    /// VIP:53/udp and VIP:80/tcp DNATed through one map, as the service proxy's rules do.
    func ruleset(udpBackend: IPAddress, tcpBackend: IPAddress) -> Ruleset {
        let t = Table(.ip, "keel-ct-test")
        let pre = Chain(t, "prerouting", type: .nat, hook: .prerouting, priority: .dstnat)
        let map = NFTSet(t, "service-backends", key: [.ipv4Address, .inetProto, .inetService],
                         mapping: .data([.ipv4Address, .inetService]),
                         elements: [SetElement([.ip(vip), .proto(.udp), .port(53)], data: [.ip(udpBackend), .port(8080)]),
                                    SetElement([.ip(vip), .proto(.tcp), .port(80)], data: [.ip(tcpBackend), .port(8080)])])
        return Ruleset(tables: [t], chains: [pre], sets: [map], rules: [
            Rule(pre, [.dnat(.ipv4, map: "service-backends", key: [.ipv4.daddr, .l4proto, .th.dport])]),
        ])
    }

    func udpEntries(_ ct: ConntrackSocket, from flow: UDPFlow) throws -> [ConntrackEntry] {
        try ct.entries(family: .ipv4).filter { $0.proto == .udp && $0.original.sourcePort == flow.localPort && $0.original.destination == vip }
    }

    @Test func removedUDPEndpointKeepsItsFlowUntilTheEntryIsDeleted() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let (clientNS, router, servers) = try topology(lab, "ct")
            let a = try BannerServer(in: servers, address: backendA, port: 8080, banner: "backend-A")
            defer { a.stop() }
            let b = try BannerServer(in: servers, address: backendB, port: 8080, banner: "backend-B")
            defer { b.stop() }
            let nft = try router.run { try NFTablesSocket() }
            let ct = try router.run { try ConntrackSocket() }
            let toA = ruleset(udpBackend: backendA, tcpBackend: backendA)
            try nft.apply(transaction(from: nil, to: toA))

            let flow = try UDPFlow(from: clientNS, to: vip, port: 53)
            #expect(flow.exchange() == "backend-A")
            // A TCP connection to the same backend: its entry (TIME_WAIT, 120 s) must survive a UDP cleanup.
            #expect(try TrafficProbe.tcpConnect(from: clientNS, to: vip, port: 80).reply == "backend-A")

            // The router's table, read through the core: client → VIP:53 original, A:8080 → client reply.
            let entry = try #require(try udpEntries(ct, from: flow).first)
            #expect(entry.original == ConntrackTuple(source: client, destination: vip, sourcePort: flow.localPort, destinationPort: 53))
            #expect(entry.reply == ConntrackTuple(source: backendA, destination: client, sourcePort: 8080, destinationPort: flow.localPort))
            #expect(entry.status.contains(.destinationNAT) && entry.status.contains(.seenReply))
            #expect(entry.family == .ipv4 && entry.zone == 0 && entry.id != nil)
            #expect((entry.timeout ?? 0) > 0)
            let tcpBefore = try ct.entries(family: .ipv4).filter { $0.proto == .tcp && $0.original.destination == vip }
            #expect(tcpBefore.count == 1 && tcpBefore.first?.reply.source == backendA)

            // Independent view, when conntrack-tools is installed (scripts/lib.sh installs it).
            if access("/usr/sbin/conntrack", X_OK) == 0 {
                let listed = try router.check(["conntrack", "-L", "-p", "udp", "--orig-dst", "\(vip)"])
                #expect(listed.contains("sport=\(flow.localPort) dport=53 src=\(backendA) dst=\(client) sport=8080 dport=\(flow.localPort)"),
                        "conntrack -L: \(listed)")
            }

            // Endpoint A leaves the service; B takes its place in the map.
            try nft.apply(transaction(from: toA, to: ruleset(udpBackend: backendB, tcpBackend: backendA)))
            // A new flow is balanced to B at once …
            let fresh = try UDPFlow(from: clientNS, to: vip, port: 53)
            #expect(fresh.exchange() == "backend-B")
            // … but the old 5-tuple still follows its entry to A: the stale entry is what this is for.
            for _ in 0..<3 { #expect(flow.exchange() == "backend-A") }

            let deleted = try ct.deleteEntries(ofRemovedEndpoint: backendA, service: vip, servicePort: 53)
            #expect(deleted == 1)
            #expect(try udpEntries(ct, from: flow).isEmpty)
            // Deleting what is gone is a typed ENOENT that DEL paths count as done. (Checked before the
            // flow sends again: its next entry may reuse the freed slot and so the same CTA_ID.)
            do {
                try ct.delete(entry)
                Issue.record("deleting a deleted entry succeeded")
            } catch let error as NetlinkError {
                #expect(error.isAlreadyGone && error.operation == .delConntrack && error.errno == .noSuchFileOrDirectory, "\(error)")
            }
            #expect(flow.exchange() == "backend-B")
            let renewed = try #require(try udpEntries(ct, from: flow).first)
            #expect(renewed.reply.source == backendB)
            // The UDP-only filter left the TCP entry to A alone, and the flow to B too.
            let tcpAfter = try ct.entries(family: .ipv4).filter { $0.proto == .tcp && $0.original.destination == vip }
            #expect(tcpAfter.map(\.original) == tcpBefore.map(\.original))
            #expect(try ct.entries(family: .ipv4).contains { $0.original.sourcePort == fresh.localPort && $0.reply.source == backendB })

            #expect(try ct.deleteEntries(ofRemovedEndpoint: backendA) == 0)
        }
    }

    @Test func serviceCleanupKeepsServingEndpointsAndFlushEmptiesTheTable() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let (clientNS, router, servers) = try topology(lab, "ctf")
            let a = try BannerServer(in: servers, address: backendA, port: 8080, banner: "backend-A")
            defer { a.stop() }
            let b = try BannerServer(in: servers, address: backendB, port: 8080, banner: "backend-B")
            defer { b.stop() }
            let nft = try router.run { try NFTablesSocket() }
            let ct = try ConntrackSocket.inside(router.namespace)
            let toA = ruleset(udpBackend: backendA, tcpBackend: backendA)
            try nft.apply(transaction(from: nil, to: toA))
            let flowA = try UDPFlow(from: clientNS, to: vip, port: 53)
            #expect(flowA.exchange() == "backend-A")
            try nft.apply(transaction(from: toA, to: ruleset(udpBackend: backendB, tcpBackend: backendA)))
            let flowB = try UDPFlow(from: clientNS, to: vip, port: 53)
            #expect(flowB.exchange() == "backend-B")

            // kube-proxy's reconcile: entries to VIP:53 not DNATed to a serving endpoint (B) go.
            #expect(try ct.deleteEntries(ofServiceGainingEndpoints: vip, port: 53, keeping: [backendB]) == 1)
            let left = try ct.entries(family: .ipv4).filter { $0.original.destination == vip }
            #expect(left.map(\.original.sourcePort) == [flowB.localPort])

            #expect(try TrafficProbe.tcpConnect(from: clientNS, to: vip, port: 80).reply == "backend-A")
            try ct.flush(family: .ipv4)
            #expect(try ct.entries().filter { $0.original.destination == vip }.isEmpty)
        }
    }
}
