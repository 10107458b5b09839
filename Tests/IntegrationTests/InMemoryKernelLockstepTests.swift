import NFTables
import NetAddress
import Netlink
import NetnsHarness
import Testing

/// The in-memory kernel (`Ruleset.applying`) refuses what the real kernel refuses, with the same
/// errno and operation, and accepts what it accepts: each transaction below goes to both, from the
/// same table, in a fresh namespace.
@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct InMemoryKernelLockstepTests {
    static let t = Table(.ip, "keel-lockstep")
    static let rules = NFTSet(t, "rules", key: [.mark, .ipv4Address, .inetProto, .inetService], flags: .interval)
    static let vmap = NFTSet(t, "dispatch", key: [.ipv4Address], mapping: .verdict)
    static let single = NFTSet(t, "single", key: [.ipv4Address], flags: .interval)

    static func box(_ id: UInt32, _ lo: String, _ hi: String, _ plo: UInt16, _ phi: UInt16) -> SetElement {
        SetElement([.mark(id), .ipv4(IPv4Address(lo)!), .proto(.tcp), .port(plo)], to: [.mark(id), .ipv4(IPv4Address(hi)!), .proto(.tcp), .port(phi)])
    }
    static func dispatch(_ a: String, _ v: Verdict) -> SetElement { SetElement([.ipv4(IPv4Address(a)!)], verdict: v) }

    static var base: Ruleset {
        let forward = Chain(t, "forward", type: .filter, hook: .forward, priority: .filter)
        var rules = Self.rules, vmap = Self.vmap, single = Self.single
        rules.elements = [box(7, "10.0.0.0", "10.0.255.255", 80, 80)]
        single.elements = [SetElement(prefix: CIDR("10.9.0.0/24")!)]
        vmap.elements = [dispatch("10.0.0.1", .jump("group"))]
        return Ruleset(tables: [t], chains: [forward, Chain(t, "group")], sets: [rules, vmap, single], rules: [
            Rule(forward, [.vmap("dispatch", key: [.ipv4.saddr])]),
            Rule(t, chain: "group", [.lookup(in: "rules", key: [.mark, .ipv4.daddr, .l4proto, .th.dport]), .return]),
        ])
    }

    static var cases: [(String, Transaction)] {
        func tx(_ build: (inout Transaction) -> Void) -> Transaction { var t = Transaction(); build(&t); return t }
        return [
            ("box with a corner inside another", tx { $0.add(elements: [box(7, "10.0.1.7", "10.0.1.7", 80, 90)], to: rules) }),
            ("box around another, no corner inside", tx { $0.add(elements: [box(7, "10.0.1.7", "10.0.1.7", 0, 65535)], to: rules) }),
            ("single-field range inside another", tx { $0.add(elements: [SetElement(prefix: CIDR("10.9.0.128/25")!)], to: single) }),
            ("single-field range across another", tx { $0.add(elements: [SetElement(prefix: CIDR("10.9.0.0/23")!)], to: single) }),
            ("overlapping box", tx { $0.add(elements: [box(7, "10.0.1.7", "10.0.1.7", 0, 65535)], to: rules) }),
            ("same addresses, other id", tx { $0.add(elements: [box(8, "10.0.1.7", "10.0.1.7", 80, 80)], to: rules) }),
            ("adjacent box", tx { $0.add(elements: [box(7, "10.1.0.0", "10.1.0.255", 80, 80)], to: rules) }),
            ("identical element again", tx { $0.add(elements: [box(7, "10.0.0.0", "10.0.255.255", 80, 80)], to: rules) }),
            ("vmap key with another verdict", tx { $0.add(elements: [dispatch("10.0.0.1", .drop)], to: vmap) }),
            ("delete an absent element", tx { $0.delete(elements: [dispatch("10.0.0.9", .drop)], from: vmap) }),
            ("jump to a missing chain", tx { $0.add(elements: [dispatch("10.0.0.2", .jump("nowhere"))], to: vmap) }),
            ("delete a chain the vmap jumps to", tx { $0.flush(chain: "group", in: t); $0.delete(chain: "group", in: t) }),
            ("delete a set a rule uses", tx { $0.delete(set: "rules", in: t) }),
            ("rule with a missing set", tx { $0.add(Rule(t, chain: "group", [.lookup(in: "missing", key: [.ipv4.daddr]), .accept])) }),
            ("create the table again", tx { $0.create(t) }),
            ("a fine change", tx { $0.delete(elements: [dispatch("10.0.0.1", .jump("group"))], from: vmap); $0.flush(chain: "group", in: t) }),
        ]
    }

    @Test func refusalsMatchTheKernel() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let node = try lab.namespace("lockstep")
            let nft = try node.run { try NFTablesSocket() }
            var mismatches: [String] = []
            for (name, tx) in Self.cases {
                try nft.apply(transaction(from: nil, to: Self.base))
                var kernel: NFTablesError?
                do { try nft.apply(tx) } catch let error as NFTablesError { kernel = error }
                var memory: NFTablesError?
                let after: Ruleset?
                do { after = try Self.base.applying(tx) } catch let error as NFTablesError { memory = error; after = nil }
                if kernel?.errno != memory?.errno || kernel?.operationIndex != memory?.operationIndex {
                    mismatches.append("\(name): kernel \(kernel.map { "\($0)" } ?? "accepted"), in memory \(memory.map { "\($0)" } ?? "accepted")")
                } else if let after, try nft.table(named: Self.t.name, family: .ip) != after {
                    mismatches.append("\(name): both accepted, but the tables differ")
                }
                try nft.apply(transaction(from: nil, to: Ruleset(tables: [Self.t])))
            }
            #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
        }
    }
}
