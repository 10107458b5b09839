import Glibc
import Logging
import NFTables
import NetAddress
import Netlink
import NetnsHarness
import ServiceProxy
import Testing

// Packet-flow tests of the service proxy with real connections in the namespace cluster: two nodes
// (TestCluster + host-gw pods) running `keeld --routes --proxy` over a manifest folder, backend pods
// that answer with their own ip:port and the address they saw the client as, a client pod on node1,
// and external clients outside the cluster CIDR on the underlay. Each test builds its own cluster
// (≈1–2 s) and uses its own service addresses, so a failure never leaks into the next test.

// MARK: - Backends and clients

/// A backend inside a pod: TCP and UDP on `address`:`port`. In `.banner` mode every TCP connection
/// and every datagram gets `"<address>:<port> <peer address>"` (the peer as the backend saw it, so
/// tests can tell masqueraded from preserved sources) and TCP connections are closed; in `.echo` mode
/// a TCP connection stays open and every chunk it receives is sent back.
private final class PeerServer: @unchecked Sendable {
    enum Mode { case banner, echo }
    let address: IPAddress
    let port: UInt16
    let mode: Mode
    private let tcpFD: Int32, udpFD: Int32
    private var threads: [pthread_t] = []          // accept loop and UDP loop
    private var echoThreads: [pthread_t] = []      // one per echo connection, under `mutex`
    private var connections: Set<Int32> = []       // open echo connections, under `mutex`
    private var mutex = pthread_mutex_t()
    private var stopped = false

    /// `"<address>:<port>"`: how replies name this backend.
    var name: String { "\(address):\(port)" }

    init(in namespace: LabNamespace, address: IPAddress, port: UInt16, mode: Mode = .banner) throws {
        self.address = address
        self.port = port
        self.mode = mode
        pthread_mutex_init(&mutex, nil)
        (tcpFD, udpFD) = try namespace.run { () throws -> (Int32, Int32) in
            let t = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0), u = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var one: Int32 = 1
            setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            guard withSocketAddress(address, port, { bind(t, $0, $1) }) == 0, listen(t, 64) == 0,
                  withSocketAddress(address, port, { bind(u, $0, $1) }) == 0 else {
                let e = errno
                close(t); close(u)
                throw ProcessError(command: ["bind \(address):\(port)"], reason: String(cString: strerror(e)))
            }
            return (t, u)
        }
        threads.append(spawnThread { [self] in serveTCP() })
        threads.append(spawnThread { [self] in serveUDP() })
    }

    deinit {
        stop()
        pthread_mutex_destroy(&mutex)
    }

    /// Stops serving, ends open echo connections and joins every thread. Safe to call twice.
    func stop() {
        pthread_mutex_lock(&mutex)
        let wasStopped = stopped
        stopped = true
        pthread_mutex_unlock(&mutex)
        guard !wasStopped else { return }
        shutdown(tcpFD, Int32(SHUT_RDWR))
        shutdown(udpFD, Int32(SHUT_RDWR))
        for t in threads { pthread_join(t, nil) }
        // The accept loop is gone: no connection or thread is added any more.
        pthread_mutex_lock(&mutex)
        for c in connections { shutdown(c, Int32(SHUT_RDWR)) }
        let echoes = echoThreads
        pthread_mutex_unlock(&mutex)
        for t in echoes { pthread_join(t, nil) }
        close(tcpFD)
        close(udpFD)
    }

    private func serveTCP() {
        while true {
            var peer = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let c = withUnsafeMutablePointer(to: &peer) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(tcpFD, $0, &len) }
            }
            if c < 0 { if errno == EINTR { continue }; return }
            switch mode {
            case .banner:
                let reply = Array("\(name) \(dottedQuad(peer))".utf8)
                _ = reply.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(c)
            case .echo:
                pthread_mutex_lock(&mutex)
                if stopped { pthread_mutex_unlock(&mutex); close(c); return }
                connections.insert(c)
                echoThreads.append(spawnThread { [self] in echo(c) })
                pthread_mutex_unlock(&mutex)
            }
        }
    }

    private func echo(_ c: Int32) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            _ = buffer.withUnsafeBytes { send(c, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }
        }
        // Out of the list before the number can be reused, so stop() never shuts down a stranger's socket.
        pthread_mutex_lock(&mutex)
        connections.remove(c)
        pthread_mutex_unlock(&mutex)
        close(c)
    }

    private func serveUDP() {
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            var peer = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = withUnsafeMutablePointer(to: &peer) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    buffer.withUnsafeMutableBytes { recvfrom(udpFD, $0.baseAddress, $0.count, 0, sa, &len) }
                }
            }
            if n < 0 { if errno == EINTR { continue }; return }
            if n == 0 { pthread_mutex_lock(&mutex); let s = stopped; pthread_mutex_unlock(&mutex); if s { return } }
            let reply = Array("\(name) \(dottedQuad(peer))".utf8)
            _ = withUnsafePointer(to: &peer) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    reply.withUnsafeBytes { sendto(udpFD, $0.baseAddress, $0.count, 0, sa, len) }
                }
            }
        }
    }
}

/// What a `.banner` backend answered: which backend, and the source address it saw.
private struct BackendReply: Hashable, CustomStringConvertible {
    var backend: String
    var peer: String
    init?(_ text: String?) {
        guard let parts = text?.split(separator: " "), parts.count == 2 else { return nil }
        backend = String(parts[0])
        peer = String(parts[1])
    }
    var description: String { "\(backend) (saw \(peer))" }
}

/// A TCP connection held open from inside a namespace, for line exchanges across a sync.
private final class HeldConnection {
    let fd: Int32
    init(from namespace: LabNamespace, to address: IPAddress, port: UInt16) throws {
        fd = try namespace.run { () throws -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            guard withSocketAddress(address, port, { connect(fd, $0, $1) }) == 0 else {
                let e = errno
                close(fd)
                throw ProcessError(command: ["connect \(address):\(port)"], reason: String(cString: strerror(e)))
            }
            return fd
        }
    }
    deinit { close(fd) }

    /// Sends `line` and returns what came back within 2 s (nil on a reset, close or timeout).
    func exchange(_ line: String) -> String? {
        let bytes = Array(line.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }
}

/// One UDP socket (one source port, so one conntrack entry) used for many exchanges.
private final class ServiceUDPFlow {
    let fd: Int32
    init(from namespace: LabNamespace, to address: IPAddress, port: UInt16) throws {
        fd = try namespace.run { () throws -> Int32 in
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard withSocketAddress(address, port, { connect(fd, $0, $1) }) == 0 else {
                let e = errno
                close(fd)
                throw ProcessError(command: ["connect udp \(address):\(port)"], reason: String(cString: strerror(e)))
            }
            return fd
        }
    }
    deinit { close(fd) }

    /// Sends one datagram and waits up to `timeoutMilliseconds` for one reply.
    func exchange(timeoutMilliseconds: Int32 = 300) -> BackendReply? {
        let payload = Array("ping".utf8)
        _ = payload.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, timeoutMilliseconds) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        return n > 0 ? BackendReply(String(decoding: buffer[0..<n], as: UTF8.self)) : nil
    }
}

/// `GET path` over HTTP/1.0 from inside `namespace`; the status code and body, or nil if nothing answered.
private func httpGet(from namespace: LabNamespace, _ address: IPAddress, _ port: UInt16, _ path: String) throws -> (status: Int, body: String)? {
    try namespace.run { () -> (Int, String)? in
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard withSocketAddress(address, port, { connect(fd, $0, $1) }) == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(address)\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        let text = String(decoding: out, as: UTF8.self)
        guard let statusText = text.split(separator: " ").dropFirst().first, let status = Int(statusText),
              let split = text.firstRange(of: "\r\n\r\n") else { return nil }
        return (status, String(text[split.upperBound...]))
    }
}

private func dottedQuad(_ sin: sockaddr_in) -> String {
    withUnsafeBytes(of: sin.sin_addr.s_addr) { $0.map(String.init).joined(separator: ".") }   // network order: a.b.c.d
}

/// Polls `body` until it returns a value or `timeout` seconds (of wall-clock time, probes included) pass.
private func eventually<T>(_ what: String, timeout: Double = 10, _ body: () throws -> T?) throws -> T {
    let clock = ContinuousClock()
    let deadline = clock.now + .milliseconds(Int(timeout * 1000))
    while true {
        if let value = try body() { return value }
        guard clock.now < deadline else { throw ProcessError(command: ["wait"], reason: "timed out after \(timeout) s waiting for \(what)") }
        usleep(50_000)
    }
}

// MARK: - Manifests

/// One Service port, as the manifest writes it.
private struct PortSpec {
    var name = "http"
    var proto = "TCP"
    var port = 80                  // Int: a test may write an invalid one
    var targetPort = 8080
    var nodePort: Int?
}

/// A v1 Service; `spec` and `status` are extra lines already indented for their block.
private func serviceManifest(_ name: String, clusterIP: String, type: String = "ClusterIP", ports: [PortSpec] = [PortSpec()],
                     spec: [String] = [], status: [String] = []) -> String {
    var lines = ["apiVersion: v1", "kind: Service", "metadata:", "  name: \(name)", "  namespace: default", "spec:",
                 "  type: \(type)", "  clusterIP: \(clusterIP)", "  ports:"]
    for p in ports {
        lines += ["  - name: \(p.name)", "    protocol: \(p.proto)", "    port: \(p.port)", "    targetPort: \(p.targetPort)"]
        if let np = p.nodePort { lines.append("    nodePort: \(np)") }
    }
    lines += spec
    if !status.isEmpty { lines += ["status:"] + status }
    return lines.joined(separator: "\n") + "\n"
}

/// A discovery.k8s.io/v1 EndpointSlice for `service` with ready endpoints (address, node).
private func sliceManifest(_ name: String, service: String, endpoints: [(String, String)], ports: [PortSpec] = [PortSpec()]) -> String {
    var lines = ["apiVersion: discovery.k8s.io/v1", "kind: EndpointSlice", "metadata:", "  name: \(name)", "  namespace: default",
                 "  labels:", "    kubernetes.io/service-name: \(service)", "addressType: IPv4"]
    lines.append(endpoints.isEmpty ? "endpoints: []" : "endpoints:")
    for (ip, node) in endpoints {
        lines += ["- addresses: [\"\(ip)\"]", "  conditions: {ready: true}", "  nodeName: \(node)"]
    }
    lines.append("ports:")
    for p in ports { lines += ["- name: \(p.name)", "  protocol: \(p.proto)", "  port: \(p.targetPort)"] }
    return lines.joined(separator: "\n") + "\n"
}

// MARK: - The cluster

/// A backend pod: its namespace, address and server.
private struct BackendPod {
    var namespace: LabNamespace
    var ip: IPAddress
    var node: String
    var server: PeerServer
    var name: String { server.name }
}

/// Two nodes running `keeld --routes --proxy` (host-gw), a client pod on node1, backend pods on demand.
private final class ProxyCluster {
    let cluster: TestCluster
    let overlay: OverlayLab
    let client: LabNamespace
    let clientIP: IPAddress
    private(set) var pods: [BackendPod] = []
    static let agentArgs = ["--proxy", "--cluster-cidr", "10.244.0.0/16"]

    init(lab: NetnsLab, proxy: Bool = true, extraArgs: [String] = []) throws {
        cluster = try TestCluster(lab: lab, nodeCount: 2)
        overlay = try OverlayLab(cluster: cluster, backend: "host-gw")
        for n in cluster.nodes { try overlay.startAgent(n, extra: (proxy ? Self.agentArgs : []) + extraArgs) }
        let (o, nodes) = (overlay, cluster.nodes)
        try waitFor("node files", timeout: 10) { nodes.allSatisfy { access(o.nodeFile($0.name), R_OK) == 0 } }
        (client, clientIP) = try overlay.addPod(cluster.nodes[0], "client")
        try overlay.waitForPeers()
    }

    deinit { pods.forEach { $0.server.stop() } }

    var node1: TestCluster.ClusterNode { cluster.nodes[0] }
    var node2: TestCluster.ClusterNode { cluster.nodes[1] }

    /// A pod on `node` whose server answers on `port`.
    func backend(_ node: TestCluster.ClusterNode, _ name: String, port: UInt16 = 8080, mode: PeerServer.Mode = .banner) throws -> BackendPod {
        let (ns, ip) = try overlay.addPod(node, name)
        let pod = BackendPod(namespace: ns, ip: ip, node: node.name, server: try PeerServer(in: ns, address: ip, port: port, mode: mode))
        pods.append(pod)
        return pod
    }

    /// Writes (atomically) `<name>.yaml` into keeld's manifest folder.
    func write(_ name: String, _ documents: String...) throws {
        try writeFile("\(overlay.manifests)/\(name).yaml", documents.joined(separator: "---\n"))
    }

    func remove(_ name: String) { unlink("\(overlay.manifests)/\(name).yaml") }

    /// A Service and its one EndpointSlice in one file.
    func service(_ name: String, clusterIP: String, type: String = "ClusterIP", ports: [PortSpec] = [PortSpec()], backends: [BackendPod],
                 spec: [String] = [], status: [String] = []) throws {
        try write("svc-\(name)",
                  serviceManifest(name, clusterIP: clusterIP, type: type, ports: ports, spec: spec, status: status),
                  sliceManifest("\(name)-1", service: name, endpoints: backends.map { ("\($0.ip)", $0.node) }, ports: ports))
    }

    func agentLog(_ node: String) -> String { overlay.agents[node]?.stderr ?? "" }

    /// The first successful reply from `address`:`port`, polled until keeld has programmed it.
    @discardableResult
    func waitForReply(from ns: LabNamespace, to address: IPAddress, _ port: UInt16, timeout: Double = 10) throws -> BackendReply {
        do {
            return try eventually("a reply from \(address):\(port)", timeout: timeout) {
                BackendReply(try TrafficProbe.tcpConnect(from: ns, to: address, port: port, timeoutMilliseconds: 500).reply)
            }
        } catch {
            throw ProcessError(command: ["connect \(address):\(port)"], reason: "\(error)\n--- keeld node1\n\(agentLog("node1"))\n--- keeld node2\n\(agentLog("node2"))")
        }
    }

    /// `count` connections; each one's reply (nil for one that did not get a banner).
    func replies(from ns: LabNamespace, to address: IPAddress, _ port: UInt16, count: Int) throws -> [BackendReply?] {
        try (0..<count).map { _ in BackendReply(try TrafficProbe.tcpConnect(from: ns, to: address, port: port).reply) }
    }

    /// An external client (outside the cluster CIDR) with routes to `addresses` through node1.
    func externalClient(routing addresses: [String] = []) throws -> (LabNamespace, IPAddress) {
        let (ns, ip) = try cluster.externalClient()
        for a in addresses { try ns.route.addRoute(Route(destination: CIDR("\(a)/32")!, gateway: node1.ip)) }
        return (ns, ip)
    }

    /// The table `ip keel-proxy` on `node`, read over netlink inside the node's namespace; the
    /// affinity map's dynamic entries (the packet path's) are left out.
    func proxyTable(_ node: TestCluster.ClusterNode) throws -> Ruleset? {
        let nft = try node.namespace.run { try NFTablesSocket() }
        guard var table = try nft.table(named: "keel-proxy", family: .ip) else { return nil }
        if let i = table.sets.firstIndex(where: { $0.name == "affinity" }) { table.sets[i].elements = [] }
        return table
    }

    func healthz(_ node: TestCluster.ClusterNode) throws -> (status: Int, body: String)? {
        try httpGet(from: node.namespace, IPAddress("127.0.0.1")!, 10256, "/healthz")
    }
}

private func ip(_ text: String) -> IPAddress { IPAddress(text)! }

// MARK: - Tests

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct ServiceProxyClusterTests {
    static let prefix = "keel-pxc"

    @Test func clusterIPSpreadsAcrossBackendsOnBothNodes() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let b1 = try c.backend(c.node1, "web1"), b2 = try c.backend(c.node2, "web2")
            let vip = ip("10.96.1.10")
            try c.service("web", clusterIP: "\(vip)", backends: [b1, b2])
            try c.waitForReply(from: c.client, to: vip, 80)
            var seen: [BackendReply] = []
            for _ in 0..<40 where Set(seen.map(\.backend)).count < 2 {
                if let r = BackendReply(try TrafficProbe.tcpConnect(from: c.client, to: vip, port: 80).reply) { seen.append(r) }
            }
            #expect(Set(seen.map(\.backend)) == [b1.name, b2.name], "\(seen)")
            // Pod-to-service traffic is not masqueraded: both backends see the client pod itself.
            #expect(seen.allSatisfy { $0.peer == "\(c.clientIP)" }, "\(seen)")
            // Another port of the cluster IP is not a service port: nothing answers it as one.
            #expect(try TrafficProbe.tcpConnect(from: c.client, to: vip, port: 81, timeoutMilliseconds: 1000).reply == nil)
        }
    }

    @Test func nodePortFromOutsideReachesBackendsOnEveryNode() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let b1 = try c.backend(c.node1, "np1"), b2 = try c.backend(c.node2, "np2")
            try c.service("np", clusterIP: "10.96.2.10", type: "NodePort", ports: [PortSpec(nodePort: 30080)], backends: [b1, b2])
            let (ext, extIP) = try c.externalClient()
            for node in c.cluster.nodes {
                try c.waitForReply(from: ext, to: node.ip, 30080)
                var seen: [BackendReply] = []
                for _ in 0..<40 where Set(seen.map(\.backend)).count < 2 {
                    if let r = BackendReply(try TrafficProbe.tcpConnect(from: ext, to: node.ip, port: 30080).reply) { seen.append(r) }
                }
                #expect(Set(seen.map(\.backend)) == [b1.name, b2.name], "via \(node.name): \(seen)")
                // externalTrafficPolicy Cluster: the source is masqueraded to the node, so replies can come back through it.
                #expect(seen.allSatisfy { $0.peer != "\(extIP)" }, "via \(node.name): \(seen)")
            }
        }
    }

    @Test func loadBalancerSourceRangesAllowAndDeny() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let b = try c.backend(c.node2, "lb1")
            let lbIP = "192.168.60.10"
            let (allowed, allowedIP) = try c.externalClient(routing: [lbIP])
            let (denied, deniedIP) = try c.externalClient(routing: [lbIP])
            try c.service("lb", clusterIP: "10.96.3.10", type: "LoadBalancer", ports: [PortSpec(nodePort: 30081)], backends: [b],
                          spec: ["  loadBalancerSourceRanges: [\"\(allowedIP)/32\"]"],
                          status: ["  loadBalancer:", "    ingress:", "    - ip: \(lbIP)"])
            let reply = try c.waitForReply(from: allowed, to: ip(lbIP), 80)
            #expect(reply.backend == b.name)
            // Same rules, same transaction: the other client is dropped (no answer at all), not refused.
            #expect(try TrafficProbe.tcpConnect(from: denied, to: ip(lbIP), port: 80, timeoutMilliseconds: 1000) == .timedOut,
                    "\(deniedIP) is outside loadBalancerSourceRanges")
            // The ranges restrict the load-balancer address only; the node port answers that client.
            #expect(BackendReply(try TrafficProbe.tcpConnect(from: denied, to: c.node1.ip, port: 30081).reply)?.backend == b.name)
        }
    }

    @Test func serviceWithoutEndpointsIsRefusedFast() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let vip = ip("10.96.4.10")
            // A Service whose slice lists no endpoint yet.
            try c.service("empty", clusterIP: "\(vip)", type: "NodePort", ports: [PortSpec(nodePort: 30082)], backends: [])
            let (ext, _) = try c.externalClient()
            let clock = ContinuousClock()
            _ = try eventually("connections to \(vip):80 refused") {
                try TrafficProbe.tcpConnect(from: c.client, to: vip, port: 80, timeoutMilliseconds: 500) == .refused ? true : nil
            }
            let start = clock.now
            let outcome = try TrafficProbe.tcpConnect(from: c.client, to: vip, port: 80, timeoutMilliseconds: 1000)
            let elapsed = clock.now - start
            #expect(outcome == .refused)
            #expect(elapsed < .milliseconds(300), "refused after \(elapsed)")
            #expect(try TrafficProbe.tcpConnect(from: ext, to: c.node1.ip, port: 30082, timeoutMilliseconds: 1000) == .refused)
            // Once an endpoint appears, the same addresses serve.
            let b = try c.backend(c.node2, "late")
            try c.service("empty", clusterIP: "\(vip)", type: "NodePort", ports: [PortSpec(nodePort: 30082)], backends: [b])
            #expect(try c.waitForReply(from: c.client, to: vip, 80).backend == b.name)
            #expect(try c.waitForReply(from: ext, to: c.node1.ip, 30082).backend == b.name)
        }
    }

    @Test func clientIPAffinitySticksToOneBackend() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let b1 = try c.backend(c.node1, "aff1"), b2 = try c.backend(c.node2, "aff2"), b3 = try c.backend(c.node2, "aff3")
            let vip = ip("10.96.5.10")
            try c.service("sticky", clusterIP: "\(vip)", backends: [b1, b2, b3],
                          spec: ["  sessionAffinity: ClientIP", "  sessionAffinityConfig:", "    clientIP:", "      timeoutSeconds: 600"])
            let first = try c.waitForReply(from: c.client, to: vip, 80)
            let replies = try c.replies(from: c.client, to: vip, 80, count: 20)
            #expect(replies.allSatisfy { $0?.backend == first.backend }, "first \(first), then \(replies)")
        }
    }

    @Test func externalTrafficPolicyLocalKeepsSourceAndUsesLocalBackends() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let b1 = try c.backend(c.node1, "loc1"), b2 = try c.backend(c.node2, "loc2")
            let vip = ip("10.96.6.10")
            try c.service("local", clusterIP: "\(vip)", type: "NodePort", ports: [PortSpec(nodePort: 30086)], backends: [b1, b2],
                          spec: ["  externalTrafficPolicy: Local"])
            let (ext, extIP) = try c.externalClient()
            for (node, local) in [(c.node1, b1), (c.node2, b2)] {
                try c.waitForReply(from: ext, to: node.ip, 30086)
                let replies = try c.replies(from: ext, to: node.ip, 30086, count: 10)
                #expect(replies.allSatisfy { $0?.backend == local.name }, "via \(node.name): \(replies)")
                #expect(replies.allSatisfy { $0?.peer == "\(extIP)" }, "via \(node.name): the client's source must be kept: \(replies)")
            }
            // Internal traffic keeps using every backend.
            var seen = Set<String>()
            for _ in 0..<40 where seen.count < 2 {
                if let r = BackendReply(try TrafficProbe.tcpConnect(from: c.client, to: vip, port: 80).reply) { seen.insert(r.backend) }
            }
            #expect(seen == [b1.name, b2.name])
        }
    }

    @Test func hairpinBackendReachesItselfThroughItsService() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let self1 = try c.backend(c.node1, "hair")
            let vip = ip("10.96.7.10")
            try c.service("hairpin", clusterIP: "\(vip)", backends: [self1])
            try c.waitForReply(from: c.client, to: vip, 80)
            let replies = try c.replies(from: self1.namespace, to: vip, 80, count: 5)
            #expect(replies.allSatisfy { $0?.backend == self1.name }, "\(replies)")
            // Masqueraded on the way back in, or the backend would answer itself directly and the client would drop it.
            #expect(replies.allSatisfy { $0?.peer != "\(self1.ip)" }, "\(replies)")
        }
    }

    @Test func udpServiceFollowsItsReplacedBackend() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let dns = [PortSpec(name: "dns", proto: "UDP", port: 53, targetPort: 5353)]
            let old = try c.backend(c.node2, "dns-old", port: 5353), new = try c.backend(c.node1, "dns-new", port: 5353)
            let vip = ip("10.96.8.10")
            // One socket: one source port, one conntrack entry, as a resolver's long-lived socket. It
            // sends before the Service exists (a resolver retrying before the proxy's sync), so node1
            // holds an entry for it that was never DNATed.
            let flow = try ServiceUDPFlow(from: c.client, to: vip, port: 53)
            #expect(flow.exchange(timeoutMilliseconds: 200) == nil)
            let unNATed = try c.node1.namespace.check(["conntrack", "-L", "-p", "udp", "--orig-dst", "\(vip)", "--reply-src", "\(vip)"])
            #expect(unNATed.contains("dport=53"), "\(unNATed)")
            try c.service("dns", clusterIP: "\(vip)", ports: dns, backends: [old])
            let first = try eventually("a UDP reply from \(vip):53", timeout: 5) { flow.exchange() }
            #expect(first.backend == old.name)
            // The backend is replaced; the old one keeps answering, so a stale conntrack entry would show.
            try c.service("dns", clusterIP: "\(vip)", ports: dns, backends: [new])
            let switched = try eventually("the flow to reach \(new.name)", timeout: 5) { () -> BackendReply? in
                guard let r = flow.exchange(), r.backend == new.name else { return nil }
                return r
            }
            #expect(switched.backend == new.name)
            let later = (0..<5).map { _ in flow.exchange() }
            #expect(later.allSatisfy { $0?.backend == new.name }, "\(later)")
        }
    }

    /// A pod's UDP flow to an externalTrafficPolicy (and internalTrafficPolicy) Local service's
    /// external IP, with no endpoint on the pod's node, goes through the short-circuit to a backend
    /// elsewhere; when that backend is replaced, the flow follows (its conntrack entry is cleared).
    /// Its first datagrams may precede the sync, leaving an entry that was never DNATed: cleared too
    /// once the service has backends (which, on this node, only the short-circuit has).
    @Test func udpShortCircuitFollowsItsReplacedBackend() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let dns = [PortSpec(name: "dns", proto: "UDP", port: 53, targetPort: 5353, nodePort: 30053)]
            let old = try c.backend(c.node2, "sc-old", port: 5353), new = try c.backend(c.node2, "sc-new", port: 5353)
            let extIP = ip("192.168.61.30")
            let spec = ["  externalTrafficPolicy: Local", "  internalTrafficPolicy: Local", "  externalIPs: [\"\(extIP)\"]"]
            try c.service("scdns", clusterIP: "10.96.16.10", type: "NodePort", ports: dns, backends: [old], spec: spec)
            let flow = try ServiceUDPFlow(from: c.client, to: extIP, port: 53)
            let first = try eventually("a UDP reply from \(extIP):53", timeout: 5) { flow.exchange() }
            #expect(first.backend == old.name)
            try c.service("scdns", clusterIP: "10.96.16.10", type: "NodePort", ports: dns, backends: [new], spec: spec)
            let switched = try eventually("the flow to reach \(new.name)", timeout: 5) { () -> BackendReply? in
                guard let r = flow.exchange(), r.backend == new.name else { return nil }
                return r
            }
            #expect(switched.backend == new.name && switched.peer == "\(c.clientIP)")
        }
    }

    /// 1,000 services driven through `NFTablesServiceDataplane` in node1's namespace (keeld runs
    /// the route controller only): one endpoint of one service changes; the transaction holds that
    /// service's elements and nothing else, and connections held open to other services keep working.
    @Test func incrementalSyncTouchesOnlyTheChangedServiceOutOf1000() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab, proxy: false)
            let near = try c.backend(c.node1, "echo1", port: 7, mode: .echo), far = try c.backend(c.node2, "echo2", port: 7, mode: .echo)
            let (nft, conntrack) = try c.node1.namespace.run { (try NFTablesSocket(), try ConntrackSocket()) }
            let dataplane = NFTablesServiceDataplane(nft: nft, conntrack: conntrack, logger: Logger(label: "test.proxy"))

            func name(_ i: Int) -> ServicePortName { ServicePortName(namespace: "bulk", name: "svc-\(i)", port: "http", proto: .tcp) }
            func vip(_ i: Int) -> IPAddress { ip("10.96.\(100 + i / 250).\(i % 250 + 1)") }
            // Two backends per service; the addresses of the bulk services are never contacted.
            func fake(_ i: Int, _ k: Int) -> Backend { Backend(ip("10.244.\(10 + i / 100).\(2 * (i % 100) + k + 1)"), 8080) }
            var services = (0..<1000).map { i in
                ServicePortState(name: name(i), clusterIPs: [vip(i)], port: 80, internalBackends: [fake(i, 0), fake(i, 1)])
            }
            services[7].internalBackends = [Backend(near.ip, 7)]
            services[993].internalBackends = [Backend(far.ip, 7)]
            let cidr = CIDR("10.244.0.0/16")
            try dataplane.apply(ProxyState(services: services, clusterCIDR: cidr))

            let held = try [(vip(7), near), (vip(993), far)].map { (v, b) in (try HeldConnection(from: c.client, to: v, port: 80), b) }
            for (conn, b) in held { #expect(conn.exchange("before \(b.name)\n") == "before \(b.name)\n") }

            // Service 500 swaps its second backend.
            let changed = 500
            let replaced = fake(changed, 1), replacement = Backend(ip("10.244.99.9"), 8080)
            services[changed].internalBackends = [fake(changed, 0), replacement]
            let clock = ContinuousClock()
            let start = clock.now
            try dataplane.apply(ProxyState(services: services, clusterCIDR: cidr))
            let elapsed = clock.now - start
            let tx = try #require(dataplane.lastTransaction)

            // The changed service's endpoint keys start with its address . protocol . port.
            let serviceKey: [DataValue] = [.ip(services[changed].clusterIPs[0]), .proto(.tcp), .port(services[changed].port)]
            var touched: [String] = []
            for op in tx.operations {
                switch op {
                case .addElements(let set, let elements), .deleteElements(let set, let elements):
                    for e in elements {
                        let add = if case .addElements = op { "+" } else { "-" }
                        touched.append("\(add) \(set.name) \(e)")
                        switch set.name {
                        case "endpoints":
                            #expect(Array(e.key.prefix(3)) == serviceKey, "endpoint element of another service: \(e)")
                        case "hairpin":
                            #expect([replaced.address, replacement.address].contains(where: { e.key == [.ip($0), .ip($0)] }), "\(e)")
                        default:
                            Issue.record("element of \(set.name) changed: \(e)")
                        }
                    }
                default:
                    Issue.record("not an element change: \(op)")
                }
            }
            // Index 1 now names the replacement: one endpoint out, one in; its hairpin pair likewise.
            #expect(touched.sorted() == [
                "+ endpoints \(SetElement(serviceKey + [.mark(1)], data: [.ip(replacement.address), .port(8080)]))",
                "+ hairpin \(SetElement([.ip(replacement.address), .ip(replacement.address)]))",
                "- endpoints \(SetElement(serviceKey + [.mark(1)], data: [.ip(replaced.address), .port(8080)]))",
                "- hairpin \(SetElement([.ip(replaced.address), .ip(replaced.address)]))",
            ].sorted(), "\(tx)")
            #expect(elapsed < .seconds(2), "an incremental sync of 1,000 services took \(elapsed)")
            // The kernel holds what was asked for, and the connections opened before the sync still work.
            #expect(try nft.table(named: "keel-proxy", family: .ip) == ServiceRuleset.ruleset(ProxyState(services: services, clusterCIDR: cidr)))
            for (conn, b) in held { #expect(conn.exchange("after \(b.name)\n") == "after \(b.name)\n") }
            // A sync without changes sends nothing.
            try dataplane.apply(ProxyState(services: services, clusterCIDR: cidr))
            #expect(dataplane.lastTransaction?.isEmpty == true)
        }
    }

    @Test func healthzAndMetricsAnswerOnceSyncsSucceed() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let b1 = try c.backend(c.node1, "m1"), b2 = try c.backend(c.node2, "m2")
            try c.service("metrics", clusterIP: "10.96.9.10", backends: [b1, b2])
            try c.waitForReply(from: c.client, to: ip("10.96.9.10"), 80)
            let health = try eventually("/healthz 200 on node1") { try c.healthz(c.node1).flatMap { $0.status == 200 ? $0 : nil } }
            #expect(health.body.contains("\"lastUpdated\""), "\(health.body)")
            // kubelet and load balancers ask over the node address.
            let (ext, _) = try c.externalClient()
            #expect(try httpGet(from: ext, c.node2.ip, 10256, "/healthz")?.status == 200)
            #expect(try httpGet(from: ext, c.node2.ip, 10256, "/nothing")?.status == 404)

            let metrics = try #require(try httpGet(from: c.node1.namespace, ip("127.0.0.1"), 10249, "/metrics"))
            #expect(metrics.status == 200)
            let lines = metrics.body.split(separator: "\n").map(String.init)
            func value(_ name: String) -> Double? {
                lines.first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last!) }
            }
            #expect(lines.contains { $0.hasPrefix("sync_proxy_rules_duration_seconds_bucket{") }, "\(metrics.body)")
            #expect((value("sync_proxy_rules_duration_seconds_count") ?? 0) >= 1, "\(metrics.body)")
            #expect((value("keel_proxy_syncs_total") ?? 0) >= 1, "\(metrics.body)")
            #expect(value("keel_proxy_sync_failures_total") == 0, "\(metrics.body)")
            #expect(value("keel_proxy_service_ports") == 1, "\(metrics.body)")
            #expect(value("keel_proxy_endpoints") == 2, "\(metrics.body)")
        }
    }

    @Test func badManifestsAreLoggedAndSkippedWhileTheRestIsServed() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let b = try c.backend(c.node2, "good")
            let good = ip("10.96.10.10"), alsoGood = ip("10.96.10.20")
            try c.service("good", clusterIP: "\(good)", backends: [b])
            try c.waitForReply(from: c.client, to: good, 80)
            // One file: a Service with a bad port, a good Service, and a slice with a bad address for it.
            try c.write("mixed",
                        serviceManifest("bad-port", clusterIP: "10.96.10.30", ports: [PortSpec(port: 70000)]),
                        serviceManifest("also-good", clusterIP: "\(alsoGood)"),
                        sliceManifest("also-good-1", service: "also-good", endpoints: [("\(b.ip)", b.node)]),
                        sliceManifest("also-good-2", service: "also-good", endpoints: [("10.244.1.999", "node1")]))
            #expect(try c.waitForReply(from: c.client, to: alsoGood, 80).backend == b.name)
            #expect(try c.waitForReply(from: c.client, to: good, 80).backend == b.name)
            let log = try eventually("both problems logged") { () -> String? in
                let log = c.agentLog("node1")
                return log.contains("bad-port") && log.contains("also-good-2") ? log : nil
            }
            let lines = log.split(separator: "\n")
            #expect(lines.contains { $0.contains("Service \"bad-port\"") && $0.contains("spec.ports[0].port") }, "\(log)")
            #expect(lines.contains { $0.contains("EndpointSlice \"also-good-2\"") && $0.contains("endpoints[0].addresses[0]") }, "\(log)")
            // The bad Service is not programmed; the agent keeps running and syncing.
            #expect(try TrafficProbe.tcpConnect(from: c.client, to: ip("10.96.10.30"), port: 80, timeoutMilliseconds: 1000).reply == nil)
            #expect(c.overlay.agents["node1"]?.isRunning == true)
            #expect(try c.healthz(c.node1)?.status == 200)
        }
    }

    @Test func restartingKeeldConvergesToTheSameRulesetWithoutDuplicates() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let b1 = try c.backend(c.node1, "r1"), b2 = try c.backend(c.node2, "r2")
            let vip = ip("10.96.11.10")
            try c.service("web", clusterIP: "\(vip)", type: "LoadBalancer", ports: [PortSpec(nodePort: 30090)], backends: [b1, b2],
                          spec: ["  loadBalancerSourceRanges: [\"192.168.50.0/24\"]"],
                          status: ["  loadBalancer:", "    ingress:", "    - ip: 192.168.60.11"])
            try c.service("sticky", clusterIP: "10.96.11.20", backends: [b1, b2],
                          spec: ["  sessionAffinity: ClientIP"])
            try c.service("dns", clusterIP: "10.96.11.30", ports: [PortSpec(name: "dns", proto: "UDP", port: 53, targetPort: 8080)], backends: [b2])
            try c.service("empty", clusterIP: "10.96.11.40", backends: [])
            try c.waitForReply(from: c.client, to: vip, 80)
            try c.waitForReply(from: c.client, to: ip("10.96.11.20"), 80)
            _ = try eventually("/healthz 200") { try c.healthz(c.node1)?.status == 200 ? true : nil }
            let before = try #require(try c.proxyTable(c.node1))

            let exit = try #require(c.overlay.agents["node1"]).stop()
            #expect(exit == 0, "keeld exits cleanly on SIGTERM")
            // The datapath stays while the agent is down.
            #expect(BackendReply(try TrafficProbe.tcpConnect(from: c.client, to: vip, port: 80).reply) != nil)
            try c.overlay.startAgent(c.node1, extra: ProxyCluster.agentArgs)
            _ = try eventually("/healthz 200 from the new keeld") { try c.healthz(c.node1)?.status == 200 ? true : nil }
            // And again after a resync (every second here) had the chance to add anything twice.
            usleep(1_200_000)
            let after = try #require(try c.proxyTable(c.node1))
            #expect(after == before)
            #expect(Set(after.rules).count == after.rules.count, "a rule appears twice")
            #expect(Set(after.chains.map(\.name)).count == after.chains.count)
            let nft = try c.node1.namespace.run { try NFTablesSocket() }
            #expect(try nft.tables().filter { $0.name == "keel-proxy" }.count == 1)
            #expect(BackendReply(try TrafficProbe.tcpConnect(from: c.client, to: vip, port: 80).reply) != nil)
        }
    }

    // MARK: Issue 13: traffic policies, unused service addresses, affinity state

    /// externalTrafficPolicy Local narrows outside clients only: a pod and the node itself reach the
    /// node port and the external IP through the endpoint on the other node (the pod keeps its
    /// address, the node is masqueraded); an outside client gets nothing from node1 (dropped, not
    /// refused) and keeps its address through node2, which has the endpoint.
    @Test func externalTrafficPolicyLocalAppliesToOutsideClientsOnly() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let far = try c.backend(c.node2, "far")
            let extIP = "192.168.61.10"
            try c.service("etp", clusterIP: "10.96.12.10", type: "NodePort", ports: [PortSpec(nodePort: 30087)], backends: [far],
                          spec: ["  externalTrafficPolicy: Local", "  externalIPs: [\"\(extIP)\"]"])
            // The node's own connections to the external IP need a route for it (any: the DNAT
            // happens in the output hook, before the packet follows it).
            try c.node1.namespace.route.addRoute(Route(destination: CIDR("\(extIP)/32")!, gateway: c.node2.ip))
            for (address, port) in [(c.node1.ip, UInt16(30087)), (ip(extIP), UInt16(80))] {
                let fromPod = try c.waitForReply(from: c.client, to: address, port)
                #expect(fromPod.backend == far.name && fromPod.peer == "\(c.clientIP)", "pod → \(address):\(port): \(fromPod)")
                let fromNode = try c.waitForReply(from: c.node1.namespace, to: address, port)
                #expect(fromNode.backend == far.name && fromNode.peer == "\(c.node1.ip)", "node1 → \(address):\(port): \(fromNode)")
            }
            let (ext, extClientIP) = try c.externalClient(routing: [extIP])
            #expect(try TrafficProbe.tcpConnect(from: ext, to: c.node1.ip, port: 30087, timeoutMilliseconds: 1000) == .timedOut)
            #expect(try TrafficProbe.tcpConnect(from: ext, to: ip(extIP), port: 80, timeoutMilliseconds: 1000) == .timedOut)
            let viaNode2 = try c.waitForReply(from: ext, to: c.node2.ip, 30087)
            #expect(viaNode2.backend == far.name && viaNode2.peer == "\(extClientIP)", "\(viaNode2)")
        }
    }

    /// internalTrafficPolicy Local with the only endpoint on node2: node1 drops cluster-IP traffic
    /// (the client waits, as with kube-proxy) rather than refusing it; node2 serves it.
    @Test func internalTrafficPolicyLocalWithoutALocalEndpointDrops() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let far = try c.backend(c.node2, "itp")
            let vip = ip("10.96.13.10")
            try c.service("itp", clusterIP: "\(vip)", backends: [far], spec: ["  internalTrafficPolicy: Local"])
            #expect(try c.waitForReply(from: c.node2.namespace, to: vip, 80).backend == far.name)
            let key = [DataValue.ip(vip), .proto(.tcp), .port(80)]
            _ = try eventually("node1 drops \(vip):80") {
                try c.proxyTable(c.node1)?.set("no-endpoint-services", in: ServiceRuleset.table)?.elements
                    .contains(SetElement(key, verdict: .drop)) == true ? true : nil
            }
            #expect(try TrafficProbe.tcpConnect(from: c.client, to: vip, port: 80, timeoutMilliseconds: 1000) == .timedOut)
        }
    }

    /// A cluster IP on a port none of its Service's ports uses is refused at once; an address of the
    /// service range (here from a ServiceCIDR object) that no Service holds is dropped at node1, even
    /// where something else would answer it.
    @Test func unusedPortsAndAddressesOfTheServiceRange() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let b = try c.backend(c.node1, "used")
            let vip = ip("10.96.14.10"), unused = ip("10.96.14.11")
            // Something on node2 answers the unused address: without the drop at node1, the pod would reach it.
            let lo = try c.node2.namespace.route.link("lo")
            try c.node2.namespace.route.addAddress(InterfaceAddress(linkIndex: lo.index, cidr: CIDR(unused, prefixLength: 32)!))
            let impostor = try PeerServer(in: c.node2.namespace, address: unused, port: 80)
            defer { impostor.stop() }
            try c.node1.namespace.route.addRoute(Route(destination: CIDR(unused, prefixLength: 32)!, gateway: c.node2.ip))
            #expect(BackendReply(try TrafficProbe.tcpConnect(from: c.client, to: unused, port: 80).reply)?.backend == impostor.name,
                    "before the ServiceCIDR, the address is routed like any other")

            try c.service("used", clusterIP: "\(vip)", backends: [b])
            try c.write("servicecidr", """
                apiVersion: networking.k8s.io/v1
                kind: ServiceCIDR
                metadata:
                  name: kubernetes
                spec:
                  cidrs: ["10.96.0.0/16"]

                """)
            try c.waitForReply(from: c.client, to: vip, 80)
            _ = try eventually("node1's service-cidrs set") {
                try c.proxyTable(c.node1)?.set("service-cidrs", in: ServiceRuleset.table)?.elements
                    == [SetElement(prefix: CIDR("10.96.0.0/16")!)] ? true : nil
            }
            let clock = ContinuousClock()
            for client in [c.client, c.node1.namespace] {
                let start = clock.now
                #expect(try TrafficProbe.tcpConnect(from: client, to: vip, port: 81, timeoutMilliseconds: 1000) == .refused)
                #expect(clock.now - start < .milliseconds(300))
            }
            #expect(try TrafficProbe.tcpConnect(from: c.client, to: unused, port: 80, timeoutMilliseconds: 1000) == .timedOut)
            // The service port itself still serves.
            #expect(BackendReply(try TrafficProbe.tcpConnect(from: c.client, to: vip, port: 80).reply)?.backend == b.name)
        }
    }

    /// `--service-cidr` alone (no ServiceCIDR object): its ranges, merged, are the dropped range; a
    /// range that is not a CIDR stops keeld before it changes anything.
    @Test func serviceCIDRFlag() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab, extraArgs: ["--service-cidr", "10.96.0.0/16,10.96.16.0/24,10.100.0.0/24"])
            let b = try c.backend(c.node1, "flag")
            let vip = ip("10.96.16.10")
            try c.service("flag", clusterIP: "\(vip)", backends: [b])
            try c.waitForReply(from: c.client, to: vip, 80)
            let ranges = try #require(try c.proxyTable(c.node1)?.set("service-cidrs", in: ServiceRuleset.table)?.elements)
            #expect(ranges == [SetElement(prefix: CIDR("10.96.0.0/16")!), SetElement(prefix: CIDR("10.100.0.0/24")!)])
            #expect(try TrafficProbe.tcpConnect(from: c.client, to: vip, port: 81, timeoutMilliseconds: 1000) == .refused)

            let bad = try c.node1.namespace.exec(["\(CNIRunner.keelPluginDirectory)/keeld", "--manifests", c.overlay.manifests, "--proxy",
                                                  "--service-cidr", "10.96.0.0/16,10.96.0.1"])
            #expect(bad.exitStatus != 0 && bad.stderr.contains("--service-cidr: 10.96.0.1 is not a CIDR"), "\(bad.stderr)")
        }
    }

    /// Turning ClientIP affinity off removes that Service's entries from the affinity map (they
    /// would otherwise stay for their timeout and pin clients again if affinity came back), and
    /// leaves other Services' entries alone.
    @Test func affinityTurnedOffLeavesNoStateBehind() throws {
        try NetnsLab.with(prefix: Self.prefix) { lab in
            let c = try ProxyCluster(lab: lab)
            let b1 = try c.backend(c.node1, "s1"), b2 = try c.backend(c.node2, "s2"), b3 = try c.backend(c.node2, "s3")
            let vip = ip("10.96.15.10"), other = ip("10.96.15.20")
            let sticky = ["  sessionAffinity: ClientIP", "  sessionAffinityConfig:", "    clientIP:", "      timeoutSeconds: 600"]
            try c.service("sticky", clusterIP: "\(vip)", backends: [b1, b2, b3], spec: sticky)
            try c.service("other", clusterIP: "\(other)", backends: [b1, b2], spec: sticky)
            try c.waitForReply(from: c.client, to: vip, 80)
            try c.waitForReply(from: c.client, to: other, 80)
            let nft = try c.node1.namespace.run { try NFTablesSocket() }
            let map = try #require(ServiceRuleset.sets.first { $0.name == "affinity" })
            func entries(_ address: IPAddress) throws -> Int { try nft.elements(of: map).filter { $0.key.count == 4 && $0.key[1] == .ip(address) }.count }
            #expect(try entries(vip) == 1 && entries(other) == 1)

            try c.service("sticky", clusterIP: "\(vip)", backends: [b1, b2, b3])
            _ = try eventually("sticky without affinity in node1's table") {
                try c.proxyTable(c.node1)?.set("service-ips", in: ServiceRuleset.table)?.elements
                    .contains(SetElement([.ip(vip), .proto(.tcp), .port(80)], verdict: .goto("svc-3"))) == true ? true : nil
            }
            // Flushed right after the sync's transaction (which the table above may show a moment earlier).
            _ = try eventually("the sticky service's affinity entries flushed", timeout: 5) { try entries(vip) == 0 ? true : nil }
            #expect(try entries(other) == 1, "another service's entries stay")
            var seen = Set<String>()
            for _ in 0..<40 where seen.count < 2 {
                if let r = BackendReply(try TrafficProbe.tcpConnect(from: c.client, to: vip, port: 80).reply) { seen.insert(r.backend) }
            }
            #expect(seen.count >= 2, "connections spread again: \(seen)")
            #expect(try entries(vip) == 0)
        }
    }
}
