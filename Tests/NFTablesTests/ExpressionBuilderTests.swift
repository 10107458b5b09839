import NetAddress
@testable import NFTables
import Testing

/// Statements expand into the kernel expressions nft itself would emit; compared through libnftnl's
/// own rendering of the rule object (`nft --debug=netlink` notation), so register numbers, byte
/// order and attribute choice are all checked.
struct ExpressionBuilderTests {
    static let inet = Table(.inet, "keel")
    static let ip = Table(.ip, "keel")

    static let cases: [(name: String, rule: Rule, expected: String)] = [
        ("ipv4 match in inet adds nfproto once",
         Rule(inet, chain: "c", [.match(.ipv4.daddr, equals: .ipv4(IPv4Address(10, 96, 0, 1))),
                                 .match(.ipv4.saddr, notEquals: .ipv4(IPv4Address(10, 0, 0, 1))), .accept]),
         """
         inet keel c
           [ meta load nfproto => reg 1 ]
           [ cmp eq reg 1 0x00000002 ]
           [ payload load 4b @ network header + 16 => reg 1 ]
           [ cmp eq reg 1 0x0100600a ]
           [ payload load 4b @ network header + 12 => reg 1 ]
           [ cmp neq reg 1 0x0100000a ]
           [ immediate reg 0 accept ]
         """),
        ("ipv4 match in ip family needs no nfproto",
         Rule(ip, chain: "c", [.match(.ipv4.daddr, equals: .ipv4(IPv4Address(10, 96, 0, 1))), .drop]),
         """
         ip keel c
           [ payload load 4b @ network header + 16 => reg 1 ]
           [ cmp eq reg 1 0x0100600a ]
           [ immediate reg 0 drop ]
         """),
        ("concatenated verdict-map lookup lays fields in 32-bit registers",
         Rule(inet, chain: "c", [.vmap("svc", key: [.ipv4.daddr, .l4proto, .th.dport])]),
         """
         inet keel c
           [ meta load nfproto => reg 1 ]
           [ cmp eq reg 1 0x00000002 ]
           [ payload load 4b @ network header + 16 => reg 1 ]
           [ meta load l4proto => reg 9 ]
           [ payload load 2b @ transport header + 2 => reg 10 ]
           [ lookup reg 1 set svc dreg 0 ]
         """),
        ("ipv6 concatenation: the port starts after four 32-bit registers",
         Rule(inet, chain: "c", [.lookup(notIn: "allowed6", key: [.ipv6.saddr, .tcp.dport]), .drop]),
         """
         inet keel c
           [ meta load nfproto => reg 1 ]
           [ cmp eq reg 1 0x0000000a ]
           [ meta load l4proto => reg 1 ]
           [ cmp eq reg 1 0x00000006 ]
           [ payload load 16b @ network header + 8 => reg 1 ]
           [ payload load 2b @ transport header + 2 => reg 2 ]
           [ lookup reg 1 set allowed6 0x1 ]
           [ immediate reg 0 drop ]
         """),
        ("tcp port match after an l4proto match adds no second l4proto",
         Rule(inet, chain: "c", [.match(.l4proto, equals: .proto(.tcp)), .match(.tcp.dport, from: .port(30000), through: .port(32767)), .counter, .accept]),
         """
         inet keel c
           [ meta load l4proto => reg 1 ]
           [ cmp eq reg 1 0x00000006 ]
           [ payload load 2b @ transport header + 2 => reg 1 ]
           [ cmp gte reg 1 0x00003075 ]
           [ cmp lte reg 1 0x0000ff7f ]
           [ counter pkts 0 bytes 0 ]
           [ immediate reg 0 accept ]
         """),
        ("dnat to address and port",
         Rule(inet, chain: "ep", [.dnat(to: .v4(IPv4Address(10, 1, 0, 5)), port: 8080)]),
         """
         inet keel ep
           [ immediate reg 1 0x0500010a ]
           [ immediate reg 2 0x0000901f ]
           [ nat dnat ip addr_min reg 1 proto_min reg 2 ]
         """),
        ("dnat through a map whose value is address . port",
         Rule(inet, chain: "c", [.dnat(.ipv4, map: "nodeports", key: [.l4proto, .th.dport])]),
         """
         inet keel c
           [ meta load l4proto => reg 1 ]
           [ payload load 2b @ transport header + 2 => reg 9 ]
           [ lookup reg 1 set nodeports dreg 1 ]
           [ nat dnat ip addr_min reg 1 proto_min reg 9 ]
         """),
        ("prefix match, masquerade",
         Rule(ip, chain: "post", [.match(.ipv4.saddr, in: CIDR("10.244.0.0/16")!), .masquerade([.fullyRandom])]),
         """
         ip keel post
           [ payload load 4b @ network header + 12 => reg 1 ]
           [ bitwise reg 1 = ( reg 1 & 0x0000ffff ) ^ 0x00000000 ]
           [ cmp eq reg 1 0x0000f40a ]
           [ masq flags 0x10 ]
         """),
        ("ct state, numgen vmap",
         Rule(inet, chain: "svc", [.ctState([.established, .related]), .vmap("eps", key: [.numgen(.random, modulus: 3)])]),
         """
         inet keel svc
           [ ct load state => reg 1 ]
           [ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]
           [ cmp neq reg 1 0x00000000 ]
           [ numgen reg 1 = random mod 3 ]
           [ lookup reg 1 set eps dreg 0 ]
         """),
        ("limit, reject, dynset, mark, comment",
         Rule(inet, chain: "in", comment: "rate", [.limit(rate: 10, per: .second), .setMark(0x4000),
                                                 .updateSet(.update, key: [.ipv4.saddr], set: "seen", timeout: .seconds(30)),
                                                 .reject(.icmpx(.portUnreachable))]),
         """
         inet keel in
           [ limit rate 10/second burst 5 type packets flags 0x0 ]
           [ immediate reg 1 0x00004000 ]
           [ meta set mark with reg 1 ]
           [ meta load nfproto => reg 1 ]
           [ cmp eq reg 1 0x00000002 ]
           [ payload load 4b @ network header + 12 => reg 1 ]
           [ dynset update reg_key 1 set seen timeout 30000ms ]
           [ reject type 2 code 1 ]
           userdata = { \\x00\\x05rate\\x00 }
         """),
        ("jump and goto",
         Rule(inet, chain: "c", [.match(.iifname, equals: .ifname("cni0")), .jump("pods")]),
         """
         inet keel c
           [ meta load iifname => reg 1 ]
           [ cmp eq reg 1 0x30696e63 0x00000000 0x00000000 0x00000000 ]
           [ immediate reg 0 jump -> pods ]
         """),
    ]

    @Test(arguments: cases.indices)
    func ruleRendersAsNftWould(_ index: Int) {
        let c = Self.cases[index]
        let expected = c.expected.split(separator: "\n").map(trimmed)
        let actual = WireInspection.nftnlText(c.rule).split(separator: "\n").map(trimmed)
        #expect(actual == expected, "\(c.name)")
    }

    @Test(arguments: cases.indices)
    func ruleSurvivesTheWire(_ index: Int) {
        var rule = Self.cases[index].rule
        rule.handle = 42
        let back = WireInspection.roundTrip(rule)
        #expect(back == rule, "\(Self.cases[index].name)")
        #expect(back?.handle == 42)
    }

    private func trimmed(_ line: Substring) -> String {
        String(line.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " }.reversed())
    }

    @Test func registersAreCanonical() {
        #expect(Register.slot(0) == .r1)
        #expect(Register.slot(4) == .r2)
        #expect(Register.slot(1).rawValue == 9)
        #expect(Register(rawValue: 20) == .r4)
        #expect(Register.slot(5).slot == 5)
        #expect(Register.r3.slot == 8)
    }

    @Test func natMaximumEqualToMinimumIsTheSameRule() {
        let a = NATExpression(.dnat, family: .ip, addressMin: .r1, addressMax: .r1, portMin: .r2, portMax: .r2)
        let b = NATExpression(.dnat, family: .ip, addressMin: .r1, portMin: .r2)
        #expect(a == b)
    }

    @Test func handleIsNotPartOfARulesIdentity() {
        var a = Rule(Self.inet, chain: "c", [.accept])
        let b = a
        a.handle = 7
        #expect(a == b)
        #expect(Set([a, b]).count == 1)
    }
}
