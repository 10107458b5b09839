import Foundation
import NetAddress
import Netlink
import NetnsHarness
import SystemPackage
import Testing

/// Reads `ip -j …` / `bridge -j …` inside a lab namespace as JSON, to verify the core independently.
func ipJSON(_ ns: LabNamespace, _ args: [String], tool: String = "ip") throws -> [[String: Any]] {
    let out = try ns.check([tool, "-j"] + args)
    let trimmed = out.trimmingCharacters(in: .whitespacesAndNewlines)
    if trimmed.isEmpty { return [] }
    return try JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [[String: Any]] ?? []
}

/// A link with carrier to hang addresses and routes on: a veth whose peer stays in the same namespace.
/// (This kernel has no dummy module; see `dummyLinksOrATypedError`.)
func scratchLink(_ ns: LabNamespace, _ name: InterfaceName) throws -> Link {
    let l = try ns.route.createLink(LinkSpec(name: name, kind: .veth(peerName: name.value + "p"), up: true))
    try ns.route.setUp(.name(InterfaceName(name.value + "p")!))
    return try ns.route.link(.index(l.index))
}

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct NetlinkIntegrationTests {
    @Test func vethPairWithPeerInOtherNamespaceCarriesPing() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let a = try lab.namespace("veth-a"), b = try lab.namespace("veth-b")
            let (left, right) = try connect(a, "va0", CIDR("10.99.0.1/24"), to: b, "vb0", CIDR("10.99.0.2/24"), mtu: 1400)
            #expect(left.kind == "veth" && right.kind == "veth")
            #expect(left.mtu == 1400 && right.mtu == 1400)
            #expect(left.isUp && right.isUp)
            // Independent view: iproute2 sees the same link in the peer namespace.
            let shown = try ipJSON(b, ["-d", "link", "show", "vb0"])
            #expect(shown.first?["mtu"] as? Int == 1400)
            #expect((shown.first?["linkinfo"] as? [String: Any])?["info_kind"] as? String == "veth")
            #expect(try TrafficProbe.ping(from: a, to: IPAddress("10.99.0.2")!))
        }
    }

    @Test func bridgeWithPortsCarriesPingAndHairpinReadsBack() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let node = try lab.namespace("br-node"), p1 = try lab.namespace("br-p1"), p2 = try lab.namespace("br-p2")
            let bridge = try node.route.createLink(LinkSpec(name: "kbr0", kind: .bridge, up: true))
            #expect(bridge.kind == "bridge")
            try node.route.addAddress(.withBroadcast(linkIndex: bridge.index, cidr: CIDR("10.98.0.1/24")!))
            for (i, pod) in [p1, p2].enumerated() {
                let host = InterfaceName("kv\(i)")!
                let (hostEnd, _) = try connect(node, host, nil, to: pod, "eth0", CIDR("10.98.0.\(10 + i)/24"))
                try node.route.setMaster(.index(hostEnd.index), bridge.index)
                try node.route.setHairpin(.index(hostEnd.index), true)
                let port = try node.route.link(.index(hostEnd.index))
                #expect(port.masterIndex == bridge.index)
                #expect(port.hairpin == true)
                let bj = try ipJSON(node, ["-d", "link", "show", host.value])
                let slave = (bj.first?["linkinfo"] as? [String: Any])?["info_slave_data"] as? [String: Any]
                #expect(slave?["hairpin"] as? Bool == true)
                #expect(bj.first?["master"] as? String == "kbr0")
            }
            #expect(try TrafficProbe.ping(from: p1, to: IPAddress("10.98.0.11")!))
            #expect(try TrafficProbe.ping(from: p2, to: IPAddress("10.98.0.1")!))
            let a = try node.route.addresses(link: bridge.index, family: .ipv4)
            #expect(a.map(\.cidr) == [CIDR("10.98.0.1/24")!])
            #expect(a.first?.broadcast == IPAddress("10.98.0.255"))
            // Unset master.
            let kv0 = try node.route.link("kv0")
            try node.route.setMaster(.index(kv0.index), nil)
            #expect(try node.route.link(.index(kv0.index)).masterIndex == nil)
        }
    }

    @Test func linkSettersReadBackThroughCoreAndIproute() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("set"), other = try lab.namespace("set-other")
            // A veth end (bridges are netns-local and cannot move).
            let dummy = try ns.route.createLink(LinkSpec(name: "kd0", kind: .veth(peerName: "kd0p")))
            #expect(dummy.kind == "veth" && !dummy.isUp)
            try ns.route.setMTU(.index(dummy.index), 1234)
            let mac = MACAddress("02:11:22:33:44:55")!
            try ns.route.setMAC(.index(dummy.index), mac)
            try ns.route.setUp(.index(dummy.index))
            var l = try ns.route.link(.index(dummy.index))
            #expect(l.mtu == 1234 && l.mac == mac && l.isUp)
            try ns.route.setUp(.index(dummy.index), false)
            try ns.route.rename(dummy.index, to: "kd-renamed")
            l = try ns.route.link(.index(dummy.index))
            #expect(l.name == "kd-renamed" && !l.isUp)
            let j = try ipJSON(ns, ["link", "show", "kd-renamed"])
            #expect(j.first?["address"] as? String == "02:11:22:33:44:55")
            #expect(j.first?["mtu"] as? Int == 1234)
            #expect(try ns.route.links().contains { $0.name == "kd-renamed" })
            // Move it into another namespace: gone here, present there.
            try ns.route.move(.index(dummy.index), to: other.namespace)
            #expect(try !ns.route.links().contains { $0.name == "kd-renamed" })
            #expect(try other.route.link("kd-renamed").mac == mac)
        }
    }

    @Test func errorsCarryErrno() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("errno")
            try ns.route.createLink(LinkSpec(name: "kdup", kind: .bridge))
            let exists = #expect(throws: NetlinkError.self) { try ns.route.createLink(LinkSpec(name: "kdup", kind: .bridge)) }
            #expect(exists?.errno == .fileExists && exists?.isAlreadyExists == true)
            #expect(exists?.operation == .newLink)
            #expect(exists?.description.contains("kdup") == true)
            let missing = #expect(throws: NetlinkError.self) { try ns.route.deleteLink("knothere") }
            #expect(missing?.errno == .operationNotSupportedByDevice || missing?.errno == .noSuchFileOrDirectory)
            #expect(missing?.isAlreadyGone == true)
            let noRoute = #expect(throws: NetlinkError.self) {
                try ns.route.deleteRoute(Route(destination: CIDR("10.1.2.0/24")!, gateway: IPAddress("10.0.0.1")))
            }
            #expect(noRoute?.errno == .noSuchProcess && noRoute?.isAlreadyGone == true)
            let lookup = #expect(throws: NetlinkError.self) { try ns.route.link("knothere") }
            #expect(lookup?.errno == .operationNotSupportedByDevice)
        }
    }

    @Test func addressesIPv4AndIPv6() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("addr")
            let d = try scratchLink(ns, "ka0")
            let v4 = InterfaceAddress(linkIndex: d.index, cidr: CIDR("192.0.2.10/24")!, broadcast: IPAddress("192.0.2.255"))
            let v6 = InterfaceAddress(linkIndex: d.index, cidr: CIDR("fd00:99::10/64")!, skipDuplicateDetection: true)
            let hostScoped = InterfaceAddress(linkIndex: d.index, cidr: CIDR("198.51.100.1/32")!, scope: .host)
            try ns.route.addAddress(v4)
            try ns.route.addAddress(v6)
            try ns.route.addAddress(hostScoped)
            let got = try ns.route.addresses(link: d.index)
            #expect(got.contains(v4))
            #expect(got.contains { $0.cidr == v6.cidr && $0.skipDuplicateDetection })
            #expect(got.contains { $0.cidr == hostScoped.cidr && $0.scope == .host })
            let j = try ipJSON(ns, ["addr", "show", "dev", "ka0"])
            let infos = (j.first?["addr_info"] as? [[String: Any]]) ?? []
            #expect(infos.contains { $0["local"] as? String == "192.0.2.10" && $0["prefixlen"] as? Int == 24 && $0["broadcast"] as? String == "192.0.2.255" })
            #expect(infos.contains { $0["local"] as? String == "fd00:99::10" && $0["prefixlen"] as? Int == 64 })
            #expect(infos.contains { $0["local"] as? String == "198.51.100.1" && $0["scope"] as? String == "host" })
            #expect(throws: NetlinkError.self) { try ns.route.addAddress(v4) }
            try ns.route.deleteAddress(v4)
            try ns.route.deleteAddress(v6)
            #expect(try !ns.route.addresses(link: d.index).contains { $0.cidr == v4.cidr || $0.cidr == v6.cidr })
            let again = #expect(throws: NetlinkError.self) { try ns.route.deleteAddress(v4) }
            #expect(again?.isAlreadyGone == true)
        }
    }

    @Test func routesAddReplaceDeleteList() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("route")
            let d = try scratchLink(ns, "kr0")
            try ns.route.addAddress(.withBroadcast(linkIndex: d.index, cidr: CIDR("10.50.0.1/24")!))
            let viaGateway = Route(destination: CIDR("10.60.0.0/16")!, gateway: IPAddress("10.50.0.254"), device: d.index,
                                   metric: 100, proto: .keel)
            // A gateway outside every local prefix only works with onlink (host-gw across subnets).
            let onlink = Route(destination: CIDR("10.70.1.0/24")!, gateway: IPAddress("172.31.9.9"), device: d.index,
                               onlink: true, proto: .keel)
            let otherTable = Route(destination: CIDR("10.80.0.0/24")!, device: d.index, table: RouteTable(rawValue: 1000), proto: .keel)
            let v6 = Route(destination: CIDR("fd00:70::/64")!, device: d.index, metric: 50, proto: .keel)
            try ns.route.addRoute(viaGateway)
            try ns.route.addRoute(onlink)
            try ns.route.addRoute(otherTable)
            try ns.route.addRoute(v6)
            let all = try ns.route.routes()
            #expect(all.contains(viaGateway))
            #expect(all.contains(onlink))
            #expect(all.contains(otherTable))
            #expect(all.contains { $0.destination == v6.destination && $0.metric == 50 && $0.proto == .keel })
            #expect(try ns.route.routes(table: RouteTable(rawValue: 1000)).map(\.destination) == [otherTable.destination])
            let j = try ipJSON(ns, ["route", "show", "table", "all"])
            #expect(j.contains { $0["dst"] as? String == "10.70.1.0/24" && $0["gateway"] as? String == "172.31.9.9"
                && ($0["flags"] as? [String] ?? []).contains("onlink") })
            #expect(j.contains { $0["dst"] as? String == "10.80.0.0/24" && "\($0["table"] ?? "")" == "1000" })
            #expect(j.contains { $0["dst"] as? String == "10.60.0.0/16" && $0["metric"] as? Int == 100 })
            // add again: EEXIST; replace changes the gateway in place.
            let dup = #expect(throws: NetlinkError.self) { try ns.route.addRoute(viaGateway) }
            #expect(dup?.errno == .fileExists)
            var moved = viaGateway
            moved.gateway = IPAddress("10.50.0.253")
            try ns.route.replaceRoute(moved)
            #expect(try ns.route.routes().filter { $0.destination == viaGateway.destination }.map(\.gateway) == [moved.gateway])
            for r in [moved, onlink, otherTable, v6] { try ns.route.deleteRoute(r) }
            #expect(try ns.route.routes().filter { $0.proto == .keel }.isEmpty)
        }
    }

    @Test func pipelinedRoutesReportTheFailingOne() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("rbatch")
            let d = try scratchLink(ns, "kb0")
            let routes = (0..<600).map { Route(destination: CIDR("10.\(100 + $0 / 256).\($0 % 256).0/24")!, device: d.index, proto: .keel) }
            try ns.route.apply(routes.map(RouteChange.add))
            #expect(try ns.route.routes().filter { $0.proto == .keel }.count == 600)
            // Re-adding one existing route among new ones: the new ones go in, the error names the duplicate.
            let fresh = Route(destination: CIDR("10.200.0.0/24")!, device: d.index, proto: .keel)
            let e = #expect(throws: NetlinkError.self) { try ns.route.apply([.add(fresh), .add(routes[42]), .add(fresh)]) }
            #expect(e?.errno == .fileExists)
            #expect(e?.subject.contains("10.100.42.0/24") == true)
            #expect(try ns.route.routes().contains(fresh))
            try ns.route.apply(routes.map(RouteChange.delete) + [.delete(fresh)])
            #expect(try ns.route.routes().filter { $0.proto == .keel }.isEmpty)
        }
    }

    @Test func vxlanWithFDBAndNeighboursCarriesPing() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            // Two "nodes" on an underlay veth, each with a VXLAN device, learning off: traffic between
            // the overlay addresses flows only because of the FDB + neighbour entries made here.
            let n1 = try lab.namespace("vx1"), n2 = try lab.namespace("vx2")
            try connect(n1, "u0", CIDR("192.168.77.1/24"), to: n2, "u0", CIDR("192.168.77.2/24"))
            var vteps: [(LabNamespace, Link, IPAddress, IPAddress)] = []
            for (i, n) in [n1, n2].enumerated() {
                let underlay = try n.route.link("u0")
                let local = IPAddress("192.168.77.\(i + 1)")!
                let vx = try n.route.createLink(LinkSpec(name: "kvx.1", kind: .vxlan(VXLANAttributes(
                    vni: 42, port: 8472, local: local, underlayIndex: underlay.index, learning: false)), mtu: 1450,
                    mac: MACAddress("02:00:00:00:00:0\(i + 1)")!, up: true))
                #expect(vx.vxlan == VXLANAttributes(vni: 42, port: 8472, local: local, underlayIndex: underlay.index, learning: false))
                let overlay = IPAddress("10.244.\(i).0")!
                try n.route.addAddress(InterfaceAddress(linkIndex: vx.index, cidr: CIDR(overlay, prefixLength: 32)!))
                vteps.append((n, vx, local, overlay))
            }
            for (me, other) in [(0, 1), (1, 0)] {
                let (n, vx, _, _) = vteps[me]
                let (_, peerVX, peerLocal, peerOverlay) = vteps[other]
                let peerMAC = peerVX.mac!
                try n.route.replaceNeighbour(Neighbour(linkIndex: vx.index, address: peerOverlay, mac: peerMAC))
                try n.route.appendFDB(FDBEntry(linkIndex: vx.index, mac: peerMAC, destination: peerLocal))
                try n.route.addRoute(Route(destination: CIDR(peerOverlay, prefixLength: 24)!, gateway: peerOverlay,
                                           device: vx.index, onlink: true, proto: .keel))
                #expect(try n.route.fdbEntries(link: vx.index).contains { $0.mac == peerMAC && $0.destination == peerLocal && $0.state == .permanent })
                #expect(try n.route.neighbours(link: vx.index).contains { $0.address == peerOverlay && $0.mac == peerMAC && $0.state == .permanent })
                let neigh = try ipJSON(n, ["neigh", "show", "dev", "kvx.1"])
                #expect(neigh.contains { $0["dst"] as? String == peerOverlay.description && $0["lladdr"] as? String == peerMAC.description
                    && ($0["state"] as? [String] ?? []).contains("PERMANENT") })
                let fdb = try ipJSON(n, ["fdb", "show", "dev", "kvx.1"], tool: "bridge")
                #expect(fdb.contains { $0["mac"] as? String == peerMAC.description && $0["dst"] as? String == peerLocal.description })
                let vj = try ipJSON(n, ["-d", "link", "show", "kvx.1"])
                let data = ((vj.first?["linkinfo"] as? [String: Any])?["info_data"] as? [String: Any]) ?? [:]
                #expect(data["id"] as? Int == 42 && data["port"] as? Int == 8472 && data["learning"] as? Bool == false)
            }
            #expect(try TrafficProbe.ping(from: n1, to: vteps[1].3))
            // Without the FDB entry the overlay is dark again: the ping above depended on it.
            let (n, vx, _, _) = vteps[0]
            try n.route.deleteFDB(FDBEntry(linkIndex: vx.index, mac: vteps[1].1.mac!, destination: vteps[1].2))
            #expect(try !TrafficProbe.ping(from: n1, to: vteps[1].3, timeoutSeconds: 1))
            try n.route.deleteNeighbour(Neighbour(linkIndex: vx.index, address: vteps[1].3, mac: nil))
            #expect(try !n.route.neighbours(link: vx.index).contains { $0.address == vteps[1].3 && $0.state == .permanent })
        }
    }

    @Test func sysctlsAreReadAndWrittenPerNamespace() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let a = try lab.namespace("sys-a"), b = try lab.namespace("sys-b")
            try a.sysctl("net.ipv4.ip_forward", "1")
            #expect(try a.sysctl("net.ipv4.ip_forward") == "1")
            #expect(try b.sysctl("net.ipv4.ip_forward") == "0")
            #expect(try a.check(["cat", "/proc/sys/net/ipv4/ip_forward"]).hasPrefix("1"))
        }
    }

    @Test func dummyLinksOrATypedError() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("dummy")
            do {
                let d = try ns.route.createLink(LinkSpec(name: "kdum0", kind: .dummy, mtu: 1300, up: true))
                #expect(d.kind == "dummy" && d.mtu == 1300 && d.isUp)
                #expect(try ipJSON(ns, ["-d", "link", "show", "kdum0"]).first?["mtu"] as? Int == 1300)
            } catch let e as NetlinkError {
                // Kernels built without CONFIG_DUMMY (this one) answer EOPNOTSUPP; the error must say so.
                #expect(e.errno == .notSupported && e.operation == .newLink)
                #expect(e.kernelMessage == "Unknown device type")
                #expect(!(try ns.route.links().contains { $0.name == "kdum0" }))
            }
        }
    }

    @Test func namespacesAreCreatedAndRemovedByName() throws {
        let lab = try NetnsLab(prefix: "keel-t")
        let ns = try lab.namespace("lifecycle")
        #expect(NetworkNamespace.listNamed().contains(ns.name))
        #expect(try ns.exec(["ip", "netns", "identify"]).stdout.contains(ns.name))
        lab.removeAll()
        #expect(!NetworkNamespace.listNamed().contains(ns.name))
        let gone = #expect(throws: NetlinkError.self) { try NetworkNamespace.delete(named: ns.name) }
        #expect(gone?.isAlreadyGone == true)
    }
}
