import Foundation
import NetAddress
import Netlink
import NFTables
import SystemPackage
import Testing

/// Each test makes its own network namespace, opens the nftables socket inside it, and removes the
/// namespace by name on the way out, also when the test fails. Nothing touches the root namespace:
/// `nft` runs only as `ip netns exec <ours> nft …`.
private func withNFTNamespace(_ body: (_ name: String, _ nft: NFTablesSocket) throws -> Void) throws {
    let name = "keel-nft-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
    let ns = try NetworkNamespace.create(named: name)
    defer {
        // A failure here would leave /run/netns/<name>; the next run's prefix cleanup removes it.
        do { try NetworkNamespace.delete(named: name) } catch { Issue.record("delete netns \(name): \(error)") }
    }
    let nft = try ns.run { try NFTablesSocket() }
    try body(name, nft)
}

/// `ip netns exec <ns> <argv…>`, returning stdout; a non-zero exit is an error with stderr.
private func execIn(_ ns: String, _ argv: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
    p.arguments = ["netns", "exec", ns] + argv
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw NFTablesError(operation: "ip netns exec \(ns) \(argv.joined(separator: " "))", errno: .ioError,
                            kernelMessage: String(decoding: errData, as: UTF8.self))
    }
    return String(decoding: data, as: UTF8.self)
}

/// `nft -j list ruleset` in the namespace: the list of objects under "nftables", minus metainfo.
private func nftObjects(_ ns: String) throws -> [[String: Any]] {
    let text = try execIn(ns, ["nft", "-j", "list", "ruleset"])
    let root = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    return (root?["nftables"] as? [[String: Any]] ?? []).filter { $0["metainfo"] == nil }
}

private func objects(_ list: [[String: Any]], _ kind: String) -> [[String: Any]] {
    list.compactMap { $0[kind] as? [String: Any] }
}

/// A service-proxy-like table: base chains, a verdict map on `ipv4_addr . inet_proto . inet_service`,
/// a numgen-keyed endpoint map, a concatenated set, an interval set, a DNAT data map, a dynamic set.
enum Fixture {
    static let table = Table(.inet, "keel-test")
    static let prerouting = Chain(table, "prerouting", type: .nat, hook: .prerouting, priority: .dstnat)
    static let postrouting = Chain(table, "postrouting", type: .nat, hook: .postrouting, priority: .srcnat)
    static let input = Chain(table, "input", type: .filter, hook: .input, priority: .filter, policy: .accept)
    static let services = Chain(table, "services")
    static let svcWeb = Chain(table, "svc-web")
    static let ep1 = Chain(table, "ep-web-1")
    static let ep2 = Chain(table, "ep-web-2")

    static let serviceIPs = NFTSet(table, "service-ips", key: [.ipv4Address, .inetProto, .inetService], mapping: .verdict, elements: [
        SetElement([.ipv4(IPv4Address(10, 96, 0, 10)), .proto(.tcp), .port(80)], verdict: .goto("svc-web")),
        SetElement([.ipv4(IPv4Address(10, 96, 0, 11)), .proto(.udp), .port(53)], verdict: .drop),
    ])
    static let webEndpoints = NFTSet(table, "web-endpoints", key: [.integer32], mapping: .verdict, elements: [
        SetElement([.integer(0)], verdict: .jump("ep-web-1")),
        SetElement([.integer(1)], verdict: .jump("ep-web-2")),
    ])
    static let allowed = NFTSet(table, "allowed", key: [.ipv4Address, .inetService], elements: [
        SetElement([.ipv4(IPv4Address(192, 0, 2, 1)), .port(22)]),
        SetElement([.ipv4(IPv4Address(192, 0, 2, 2)), .port(443)]),
    ])
    static let blocked = NFTSet(table, "blocked", key: [.ipv4Address], flags: .interval, elements: [
        SetElement(prefix: CIDR("198.51.100.0/24")!),
        SetElement([.ipv4(IPv4Address(203, 0, 113, 5))], to: [.ipv4(IPv4Address(203, 0, 113, 9))]),
        SetElement(.ipv4(IPv4Address(203, 0, 113, 77))),
    ])
    static let nodePorts = NFTSet(table, "node-ports", key: [.inetProto, .inetService], mapping: .data([.ipv4Address, .inetService]),
                                  elements: [SetElement([.proto(.tcp), .port(30080)], data: [.ipv4(IPv4Address(10, 1, 0, 5)), .port(8080)])])
    static let portRanges = NFTSet(table, "port-ranges", key: [.ipv4Address, .inetService], flags: .interval, elements: [
        SetElement([.ipv4(IPv4Address(10, 2, 0, 1)), .port(1000)], to: [.ipv4(IPv4Address(10, 2, 0, 1)), .port(2000)]),
    ])
    static let recent = NFTSet(table, "recent", key: [.ipv4Address], flags: [.dynamic], timeout: .seconds(60), maxElements: 1024)

    static var ruleset: Ruleset {
        Ruleset(
            tables: [table],
            chains: [prerouting, postrouting, input, services, svcWeb, ep1, ep2],
            sets: [serviceIPs, webEndpoints, allowed, blocked, nodePorts, portRanges, recent],
            rules: [
                Rule(prerouting, [.jump("services")]),
                Rule(services, comment: "cluster IPs", [.vmap("service-ips", key: [.ipv4.daddr, .l4proto, .th.dport])]),
                Rule(services, [.match(.fibDestinationType, equals: .integer(2)),
                                .dnat(.ipv4, map: "node-ports", key: [.l4proto, .th.dport])]),
                Rule(svcWeb, [.vmap("web-endpoints", key: [.numgen(.random, modulus: 2)])]),
                Rule(ep1, [.counter, .dnat(to: .v4(IPv4Address(10, 1, 0, 5)), port: 8080)]),
                Rule(ep2, [.counter, .dnat(to: .v4(IPv4Address(10, 1, 0, 6)), port: 8080)]),
                Rule(postrouting, [.match(.ipv4.saddr, in: CIDR("10.1.0.0/16")!), .match(.ipv4.daddr, notIn: CIDR("10.1.0.0/16")!), .masquerade]),
                Rule(input, [.ctState([.established, .related]), .accept]),
                Rule(input, comment: "blocked sources", [.lookup(in: "blocked", key: [.ipv4.saddr]), .counter, .drop]),
                Rule(input, [.lookup(in: "allowed", key: [.ipv4.saddr, .tcp.dport]), .accept]),
                Rule(input, [.lookup(in: "port-ranges", key: [.ipv4.daddr, .udp.dport]), .accept]),
                Rule(input, [.match(.tcp.dport, equals: .port(25)), .reject(.tcpReset)]),
                Rule(input, [.match(.tcp.dport, from: .port(6000), through: .port(6010)), .reject(.icmpx(.adminProhibited))]),
                Rule(input, [.match(.l4proto, equals: .proto(.icmp)), .limit(rate: 10, per: .second), .accept]),
                Rule(input, [.ctState(.new), .updateSet(.add, key: [.ipv4.saddr], set: "recent", timeout: .seconds(30))]),
                Rule(input, [.match(.iifname, equals: .ifname("lo")), .setMark(0x4000), .accept]),
                Rule(input, [.reject(.icmp(code: 3))]),
            ])
    }
}

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct NFTablesIntegrationTests {
    @Test func transactionIsAppliedReadBackEqualAndVisibleToNft() throws {
        try withNFTNamespace { ns, nft in
            let desired = Fixture.ruleset
            try nft.apply(transaction(from: nil, to: desired))

            let read = try #require(try nft.table(named: "keel-test", family: .inet))
            #expect(read == desired, "diff from read back to desired:\n\(transaction(from: read, to: desired))")
            // Rules read back carry the kernel's handles.
            #expect(read.rules.allSatisfy { $0.handle != nil })

            let objs = try nftObjects(ns)
            #expect(objs.contains { ($0["table"] as? [String: Any])?["name"] as? String == "keel-test" })
            let chains = Set(objects(objs, "chain").compactMap { $0["name"] as? String })
            #expect(chains == ["prerouting", "postrouting", "input", "services", "svc-web", "ep-web-1", "ep-web-2"])
            let hooks = Dictionary(objects(objs, "chain").compactMap { c in (c["hook"] as? String).map { (c["name"] as! String, $0) } },
                                   uniquingKeysWith: { a, _ in a })
            #expect(hooks == ["prerouting": "prerouting", "postrouting": "postrouting", "input": "input"])
            let maps = objects(objs, "map"), sets = objects(objs, "set")
            #expect(Set(maps.compactMap { $0["name"] as? String }) == ["service-ips", "web-endpoints", "node-ports"])
            #expect(Set(sets.compactMap { $0["name"] as? String }) == ["allowed", "blocked", "port-ranges", "recent"])
            let vmap = try #require(maps.first { $0["name"] as? String == "service-ips" })
            #expect(vmap["type"] as? [String] == ["ipv4_addr", "inet_proto", "inet_service"])
            #expect(vmap["map"] as? String == "verdict")
            #expect((vmap["elem"] as? [Any])?.count == 2)
            let blocked = try #require(sets.first { $0["name"] as? String == "blocked" })
            #expect((blocked["flags"] as? [String])?.contains("interval") == true)
            #expect((blocked["elem"] as? [Any])?.count == 3)
            #expect(objects(objs, "rule").count == desired.rules.count)

            // The nft text names what the rules do, as nft understands our expressions.
            let text = try execIn(ns, ["nft", "list", "table", "inet", "keel-test"])
            for fragment in ["ip daddr . meta l4proto . th dport vmap @service-ips", "numgen random mod 2 vmap @web-endpoints",
                             "dnat ip to 10.1.0.5:8080", "masquerade", "ct state established,related accept",
                             "ip saddr @blocked counter", "limit rate 10/second", "comment \"blocked sources\"",
                             "reject with tcp reset", "add @recent { ip saddr timeout 30s }"] {
                #expect(text.contains(fragment), "nft output lacks \(fragment):\n\(text)")
            }
        }
    }

    @Test func transactionWithOneBadRuleChangesNothing() throws {
        try withNFTNamespace { ns, nft in
            try nft.apply(transaction(from: nil, to: Fixture.ruleset))
            let before = try nft.ruleset()
            let nftBefore = try execIn(ns, ["nft", "list", "ruleset"])

            var tx = Transaction()
            tx.add(Table(.ip, "other"))
            tx.add(elements: [SetElement([.ipv4(IPv4Address(10, 96, 0, 12)), .proto(.tcp), .port(443)], verdict: .accept)],
                   to: Fixture.serviceIPs)
            tx.flush(chain: "input", in: Fixture.table)
            tx.add(Rule(Fixture.input, [.jump("no-such-chain")]))
            tx.add(Rule(Fixture.input, [.accept]))
            let error = #expect(throws: NFTablesError.self) { try nft.apply(tx) }
            #expect(error?.operationIndex == 3)
            #expect(error?.operation.contains("add rule inet keel-test input") == true)
            #expect(error?.operation.contains("jump no-such-chain") == true)
            #expect(error?.errno == .noSuchFileOrDirectory)

            var lookupTx = Transaction()
            lookupTx.add(Rule(Fixture.input, [.lookup(in: "no-such-set", key: [.ipv4.saddr]), .drop]))
            let lookupError = #expect(throws: NFTablesError.self) { try nft.apply(lookupTx) }
            #expect(lookupError?.operationIndex == 0)

            #expect(try nft.ruleset() == before)
            #expect(try execIn(ns, ["nft", "list", "ruleset"]) == nftBefore)
        }
    }

    @Test func singleElementsAreAddedAndRemoved() throws {
        try withNFTNamespace { _, nft in
            let desired = Fixture.ruleset
            try nft.apply(transaction(from: nil, to: desired))

            var next = desired
            let i = try #require(next.sets.firstIndex { $0.name == "service-ips" })
            let web = SetElement([.ipv4(IPv4Address(10, 96, 0, 10)), .proto(.tcp), .port(80)], verdict: .goto("svc-web"))
            let dns = SetElement([.ipv4(IPv4Address(10, 96, 0, 11)), .proto(.udp), .port(53)], verdict: .drop)
            let https = SetElement([.ipv4(IPv4Address(10, 96, 0, 12)), .proto(.tcp), .port(443)], verdict: .goto("svc-web"))
            next.sets[i].elements = [web, https]
            let b = try #require(next.sets.firstIndex { $0.name == "blocked" })
            next.sets[b].elements.remove(SetElement(.ipv4(IPv4Address(203, 0, 113, 77))))
            next.sets[b].elements.insert(SetElement(prefix: CIDR("100.64.0.0/10")!))

            let diff = transaction(from: desired, to: next)
            #expect(diff.operations.count == 4, "\(diff)")
            #expect(diff.operations.allSatisfy {
                switch $0 { case .addElements, .deleteElements: true; default: false }
            })
            try nft.apply(diff)
            #expect(try nft.table(named: "keel-test", family: .inet) == next)
            #expect(try nft.elements(of: Fixture.serviceIPs) == [web, https])
            #expect(!(try nft.elements(of: Fixture.serviceIPs)).contains(dns))

            // A diff against what is there is empty.
            #expect(transaction(from: try nft.table(named: "keel-test", family: .inet), to: next).isEmpty)
        }
    }

    @Test func changedChainIsFlushedAndRefilled() throws {
        try withNFTNamespace { _, nft in
            let desired = Fixture.ruleset
            try nft.apply(transaction(from: nil, to: desired))
            var next = desired
            next.rules.removeAll { $0.chain == "ep-web-2" }
            next.rules.append(Rule(Fixture.ep2, [.counter, .dnat(to: .v4(IPv4Address(10, 1, 0, 7)), port: 8443)]))
            next.chains.append(Chain(Fixture.table, "svc-new"))
            next.rules.append(Rule(Fixture.table, chain: "svc-new", [.drop]))
            try nft.apply(transaction(from: desired, to: next))
            #expect(try nft.table(named: "keel-test", family: .inet) == next)

            // Back again, removing the new chain.
            try nft.apply(transaction(from: next, to: desired))
            #expect(try nft.table(named: "keel-test", family: .inet) == desired)
            // And a full resync over a table that already exists converges too.
            try nft.apply(transaction(from: nil, to: desired))
            #expect(try nft.table(named: "keel-test", family: .inet) == desired)
        }
    }

    @Test func tenThousandVerdictMapElementsInOneTransaction() throws {
        try withNFTNamespace { _, nft in
            let table = Table(.inet, "keel-big")
            let chain = Chain(table, "services", type: .nat, hook: .prerouting, priority: .dstnat)
            var elements = Set<SetElement>()
            for i in 0..<10_000 {
                elements.insert(SetElement([.ipv4(IPv4Address(10, 96, UInt8(i / 256), UInt8(i % 256))), .proto(.tcp), .port(80)],
                                           verdict: i % 2 == 0 ? .accept : .drop))
            }
            let map = NFTSet(table, "service-ips", key: [.ipv4Address, .inetProto, .inetService], mapping: .verdict, elements: elements)
            let desired = Ruleset(tables: [table], chains: [chain], sets: [map],
                                  rules: [Rule(chain, [.vmap("service-ips", key: [.ipv4.daddr, .l4proto, .th.dport])])])
            let clock = ContinuousClock()
            let took = try clock.measure { try nft.apply(transaction(from: nil, to: desired)) }
            print("applied 10,000 verdict-map elements in \(took)")
            #expect(try nft.elements(of: map).count == 10_000)
            #expect(try nft.table(named: "keel-big", family: .inet) == desired)
        }
    }
}
