import ArgumentParser
import NFTables
import NetAddress
import Netlink
import NetnsHarness

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build a node in network namespaces with Keel's netlink and nftables cores, send real traffic through it, then remove it.",
        discussion: """
        Namespaces keel-demo-<pid>-{node,pod-a,pod-b,world}: a bridge on the node with a veth into each pod \
        (the pod end created directly in the pod's namespace), addresses and routes, masquerade for pod \
        traffic leaving the node, and a DNAT of node:8080 to pod-b:80 through an nftables map. Then two \
        two-node clusters (keel-demo-<pid>-hg-*, -vx-*) with keeld's route controller and pods from the \
        host-gw and vxlan plugins, pinging across nodes. Needs keeld and the plugins built next to \
        keel-lab. Nothing outside those namespaces is touched.
        """)

    @Flag(help: "Leave the namespaces in place for a look around (remove with: keel-lab cleanup --prefix keel-demo --all).")
    var keep = false

    func run() throws {
        NetnsLab.removeLeftovers(prefix: "keel-demo")
        let lab = try NetnsLab(prefix: "keel-demo")
        defer { if !keep { lab.removeAll(); say("\nremoved namespaces keel-demo-\(lab.runID)-*") } }
        try DemoRun(lab: lab).run()
        if keep { say("\nkept: ip netns list | grep keel-demo-\(lab.runID)") }
    }
}

private func say(_ s: String) { print(s) }

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}
private func step(_ s: String) { print("\n== \(s)") }
private func check(_ ok: Bool, _ what: String) throws {
    print("   \(ok ? "ok  " : "FAIL") \(what)")
    if !ok { throw ProcessError(command: ["demo"], reason: "check failed: \(what)") }
}

struct DemoRun {
    let lab: NetnsLab
    let podCIDR = CIDR("10.244.1.0/24")!
    let gateway = IPAddress("10.244.1.1")!
    let nodeIP = IPAddress("192.168.100.1")!
    let worldIP = IPAddress("192.168.100.2")!

    func run() throws {
        step("namespaces (each one created with unshare + a bind mount under /run/netns)")
        let node = try lab.namespace("node"), world = try lab.namespace("world")
        let pods = [try lab.namespace("pod-a"), try lab.namespace("pod-b")]
        for ns in [node, world] + pods { say("   \(ns.name)") }

        step("node: bridge keel0 \(gateway)/24, forwarding on (inside the node namespace only)")
        let bridge = try node.route.createLink(LinkSpec(name: "keel0", kind: .bridge, up: true))
        try node.route.addAddress(.withBroadcast(linkIndex: bridge.index, cidr: CIDR(gateway, prefixLength: 24)!))
        try node.sysctl("net.ipv4.ip_forward", "1")
        try check(try node.sysctl("net.ipv4.ip_forward") == "1", "net.ipv4.ip_forward = 1 in \(node.name)")

        step("pods: veth pair per pod, the eth0 end created directly in the pod namespace")
        var podIPs: [IPAddress] = []
        for (i, pod) in pods.enumerated() {
            let ip = IPAddress("10.244.1.\(10 + i)")!
            podIPs.append(ip)
            let hostEnd = try node.route.createLink(LinkSpec(
                name: InterfaceName("veth-pod\(i)")!, kind: .veth(peerName: "eth0", peerNamespace: pod.namespace),
                mtu: 1500, masterIndex: bridge.index, up: true))
            try node.route.setHairpin(.index(hostEnd.index), true)
            try pod.configure("eth0", address: CIDR(ip, prefixLength: 24)!)
            try pod.route.addRoute(Route(destination: CIDR("0.0.0.0/0")!, gateway: gateway))
            let eth0 = try pod.route.link("eth0")
            say("   \(pod.name): eth0 \(ip)/24 mac \(eth0.mac?.description ?? "-"), default via \(gateway); host end \(hostEnd.name) (#\(hostEnd.index)) hairpin on")
        }

        step("world: a namespace playing 'the internet' at \(worldIP), linked to the node's \(nodeIP)")
        try connect(node, "uplink", CIDR(nodeIP, prefixLength: 24), to: world, "eth0", CIDR(worldIP, prefixLength: 24))
        // The world knows no route to pods: replies reach pods only through the node's masquerade.

        step("netlink read-back (the core's own view of the node)")
        for l in try node.route.links() {
            say("   link \(l.index): \(l.name) kind=\(l.kind ?? "-") mtu=\(l.mtu) up=\(l.isUp)\(l.masterIndex.map { " master #\($0)" } ?? "")")
        }
        for r in try node.route.routes(table: .main) { say("   route \(r.destination) dev #\(r.device ?? 0)\(r.gateway.map { " via \($0)" } ?? "")") }

        step("nftables: one atomic transaction into table 'ip keel-demo'")
        let nft = try node.run { try NFTablesSocket() }
        let ruleset = demoRuleset(pod: podIPs[1])
        try nft.apply(transaction(from: nil, to: ruleset))
        let readBack = try nft.table(named: "keel-demo", family: .ip)
        try check(readBack == ruleset, "the table read back from the kernel equals the one applied")
        print(transaction(from: nil, to: readBack ?? Ruleset()).description.split(separator: "\n").map { "   " + $0 }.joined(separator: "\n"))

        step("traffic")
        try check(try TrafficProbe.ping(from: pods[0], to: podIPs[1]), "ping pod-a -> pod-b across the bridge")
        try check(try TrafficProbe.ping(from: pods[0], to: gateway), "ping pod-a -> gateway \(gateway)")
        try check(try TrafficProbe.ping(from: pods[0], to: worldIP), "ping pod-a -> world \(worldIP) (masqueraded as \(nodeIP))")
        let web = try BannerServer(in: pods[1], address: podIPs[1], port: 80, banner: "hello from pod-b")
        defer { web.stop() }
        let outcome = try TrafficProbe.tcpConnect(from: world, to: nodeIP, port: 8080)
        try check(outcome.reply == "hello from pod-b", "TCP world -> \(nodeIP):8080 DNATed through the map to pod-b:80: \(outcome)")
        let refused = try TrafficProbe.tcpConnect(from: world, to: nodeIP, port: 8081)
        try check(refused == .refused, "TCP world -> \(nodeIP):8081 (no map entry) is refused: \(refused)")

        for backend in ["host-gw", "vxlan"] { try crossNode(backend) }
    }

    /// Two nodes on an underlay bridge, keeld's route controller on each, a pod per node attached
    /// by the plugin binary, and traffic across.
    func crossNode(_ backend: String) throws {
        step("cross-node over \(backend): two nodes, keeld on each, a pod per node from the \(backend) plugin")
        let cluster = try TestCluster(lab: lab, nodeCount: 2, label: backend == "vxlan" ? "vx-" : "hg-")
        let overlay = try OverlayLab(cluster: cluster, backend: backend)
        for n in cluster.nodes { say("   \(n.namespace.name): \(n.ip) on the underlay, pod CIDR \(n.podCIDR)") }
        let withProxy = backend == "host-gw"
        try overlay.startAgents(extra: withProxy ? ["--proxy", "--policy", "--cluster-cidr", "10.244.0.0/16"] : [])
        let (podA, ipA) = try overlay.addPod(cluster.nodes[0], "a")
        let (podB, ipB) = try overlay.addPod(cluster.nodes[1], "b")
        say("   pods: \(ipA) on node1, \(ipB) on node2 (MTU \(try podA.route.link("eth0").mtu))")
        try overlay.waitForPeers()
        let node1 = cluster.nodes[0].namespace
        for r in try overlay.peerRoutes(cluster.nodes[0]) { say("   node1 route (keeld): \(r)") }
        if backend == "vxlan" {
            let vx = try node1.route.link("keel.1")
            for e in try node1.route.fdbEntries(link: vx.index) where e.destination != nil { say("   node1 fdb (keeld): \(e)") }
            for n in try node1.route.neighbours(link: vx.index) where n.state == .permanent { say("   node1 neighbour (keeld): \(n)") }
        }
        try check(try TrafficProbe.ping(from: podA, to: ipB), "ping pod on node1 -> pod on node2 over \(backend)")
        let server = try BannerServer(in: podB, address: ipB, port: 80, banner: "hello from node2's pod")
        defer { server.stop() }
        let outcome = try TrafficProbe.tcpConnect(from: podA, to: ipB, port: 80)
        try check(outcome.reply == "hello from node2's pod", "TCP node1 pod -> node2 pod: \(outcome)")
        if withProxy {
            try serviceDemo(overlay, pods: [(podA, ipA, "node1"), (podB, ipB, "node2")])
            try policyDemo(overlay, pods: [(podA, ipA, "node1"), (podB, ipB, "node2")])
        }
        for (name, agent) in overlay.agents.sorted(by: { $0.key < $1.key }) {
            let status = agent.stop()
            say("   keeld on \(name) stopped by SIGTERM (exit \(status)); its routes stay in place")
        }
        try check(try overlay.peerRoutes(cluster.nodes[0]).count == 1, "the datapath survives keeld's shutdown")
    }

    /// A Service with a backend on each node: a pod reaches it by its cluster IP, an outside client by
    /// its NodePort, through the rules keeld's proxy wrote into `ip keel-proxy` on every node.
    func serviceDemo(_ overlay: OverlayLab, pods: [(LabNamespace, IPAddress, String)]) throws {
        step("service proxy: Service web (10.96.0.80:80, NodePort 30080) with a backend on each node")
        let servers = try pods.map { try BannerServer(in: $0.0, address: $0.1, port: 8080, banner: "\($0.1):8080 on \($0.2)") }
        defer { servers.forEach { $0.stop() } }
        let endpoints = pods.map { "  - addresses: [\"\($0.1)\"]\n    nodeName: \($0.2)\n    conditions: {ready: true}" }.joined(separator: "\n")
        try overlay.writeManifest("web.yaml", """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: default}
            spec:
              type: NodePort
              clusterIP: 10.96.0.80
              ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}]
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
            addressType: IPv4
            ports: [{name: http, port: 8080, protocol: TCP}]
            endpoints:
            \(endpoints)

            """)
        let vip = IPAddress("10.96.0.80")!
        var answers = Set<String>()
        try waitFor("the service answers from both nodes", timeout: 10) {
            if let r = try TrafficProbe.tcpConnect(from: pods[0].0, to: vip, port: 80, timeoutMilliseconds: 500).reply { answers.insert(r) }
            return answers.count == 2
        }
        try check(answers.count == 2, "pod on node1 -> 10.96.0.80:80 answered by \(answers.sorted().joined(separator: " and "))")
        let (client, clientIP) = try overlay.cluster.externalClient()
        let node2 = overlay.cluster.nodes[1].ip
        let outside = try TrafficProbe.tcpConnect(from: client, to: node2, port: 30080)
        try check(outside.reply != nil, "outside client \(clientIP) -> NodePort \(node2):30080: \(outside)")
        let node1 = overlay.cluster.nodes[0]
        let health = try TrafficProbe.httpGet(from: node1.namespace, to: node1.ip, port: 10256, path: "/healthz").reply ?? ""
        say("   node1 keeld /healthz: \(health.split(separator: "\r\n").first ?? "no answer")")
    }

    /// NetworkPolicy: namespace shop (web on node1, db on node2) and a client pod in guest on node1.
    /// Each cell is a real connection, waited for until it matches what the policies say.
    func policyDemo(_ overlay: OverlayLab, pods: [(LabNamespace, IPAddress, String)]) throws {
        step("network policy: namespace shop (web on node1, db on node2), a client in namespace guest")
        let (client, clientIP) = try overlay.addPod(overlay.cluster.nodes[0], "client")
        let members: [(name: String, ns: String, app: String, pod: LabNamespace, ip: IPAddress, node: String)] = [
            ("web", "shop", "web", pods[0].0, pods[0].1, pods[0].2),
            ("db", "shop", "db", pods[1].0, pods[1].1, pods[1].2),
            ("client", "guest", "client", client, clientIP, "node1"),
        ]
        let servers = try members.map { try BannerServer(in: $0.pod, address: $0.ip, port: 9000, banner: "\($0.ns)/\($0.name)") }
        defer { servers.forEach { $0.stop() } }
        var yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: guest}\n"
        for m in members {
            yaml += """
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: \(m.name), namespace: \(m.ns), labels: {app: \(m.app)}}
                spec: {nodeName: \(m.node), containers: [{name: main, ports: [{name: api, containerPort: 9000}]}]}
                status: {podIP: \(m.ip)}

                """
        }
        try overlay.writeManifest("pods.yaml", yaml)

        func matrix(_ title: String, expect: (String, String) -> Bool) throws {
            say("   \(title)   (rows: from, columns: to, TCP 9000; X connects, . is dropped)")
            say("   " + "".padding(10) + members.map { $0.name.padding(8) }.joined())
            for from in members {
                var row = "   " + from.name.padding(10)
                for to in members {
                    guard from.name != to.name else { row += "-".padding(8); continue }
                    let wanted = expect(from.name, to.name)
                    var got = false
                    try waitFor("\(from.name) -> \(to.name) as the policies say", timeout: 10) {
                        got = try TrafficProbe.tcpConnect(from: from.pod, to: to.ip, port: 9000, timeoutMilliseconds: 400).reply != nil
                        return got == wanted
                    }
                    row += (got ? "X" : ".").padding(8)
                }
                say(row)
            }
        }
        try matrix("no policy", expect: { _, _ in true })
        try overlay.writeManifest("shop-default-deny.yaml", """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: default-deny, namespace: shop}
            spec: {podSelector: {}, policyTypes: [Ingress]}

            """)
        try matrix("shop: default-deny ingress", expect: { _, to in to == "client" })
        try overlay.writeManifest("shop-allow-client.yaml", """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: web-from-guest-clients, namespace: shop}
            spec:
              podSelector: {matchLabels: {app: web}}
              ingress:
              - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: guest}}, podSelector: {matchLabels: {app: client}}}]
                ports: [{port: api}]

            """)
        try matrix("+ allow guest clients to shop/web on its named port api", expect: { from, to in to == "client" || (from == "client" && to == "web") })
        say("   (keelctl policy explain / matrix print the same decisions from the same manifests)")
    }

    /// Masquerade for pod traffic leaving the pod network, and a port-forward map for DNAT.
    func demoRuleset(pod: IPAddress) -> Ruleset {
        let table = Table(.ip, "keel-demo")
        let prerouting = Chain(table, "prerouting", type: .nat, hook: .prerouting, priority: .dstnat)
        let postrouting = Chain(table, "postrouting", type: .nat, hook: .postrouting, priority: .srcnat)
        let forwards = NFTSet(table, "port-forwards", key: [.inetProto, .inetService], mapping: .data([.ipv4Address, .inetService]),
                              elements: [SetElement([.proto(.tcp), .port(8080)], data: [.ip(pod), .port(80)])])
        return Ruleset(
            tables: [table], chains: [prerouting, postrouting], sets: [forwards],
            rules: [
                Rule(prerouting, comment: "port forwards", [.match(.ipv4.daddr, equals: .ip(nodeIP)), .counter,
                                                           .dnat(.ipv4, map: "port-forwards", key: [.l4proto, .th.dport])]),
                Rule(postrouting, comment: "pod traffic leaving the pod network", [
                    .match(.ipv4.saddr, in: podCIDR), .match(.ipv4.daddr, notIn: CIDR("10.244.0.0/16")!), .counter, .masquerade]),
            ])
    }
}
