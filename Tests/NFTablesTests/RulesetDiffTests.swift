import NetAddress
@testable import NFTables
import Testing

struct RulesetDiffTests {
    static let table = Table(.inet, "keel")
    static let input = Chain(table, "input", type: .filter, hook: .input, priority: .filter)
    static let svcA = Chain(table, "svc-a")
    static func key(_ last: UInt8) -> [DataValue] { [.ipv4(IPv4Address(10, 96, 0, last)), .proto(.tcp), .port(80)] }
    static let map = NFTSet(table, "services", key: [.ipv4Address, .inetProto, .inetService], mapping: .verdict,
                            elements: [SetElement(key(1), verdict: .jump("svc-a")), SetElement(key(2), verdict: .drop)])
    static let base = Ruleset(tables: [table], chains: [input, svcA], sets: [map], rules: [
        Rule(input, [.vmap("services", key: [.ipv4.daddr, .l4proto, .th.dport])]),
        Rule(svcA, [.accept]),
    ])

    private func texts(_ tx: Transaction) -> [String] { tx.operations.map(\.text) }

    @Test func fromNothingReplacesTheTableAtomically() {
        let tx = transaction(from: nil, to: Self.base)
        #expect(Array(texts(tx).prefix(3)) == ["add table inet keel", "delete table inet keel", "add table inet keel"])
        #expect(tx.operations.count == 3 + 2 + 1 + 2)
    }

    @Test func sameRulesetIsEmpty() {
        #expect(transaction(from: Self.base, to: Self.base).isEmpty)
    }

    @Test func elementChangesAreElementOperationsOnly() {
        var next = Self.base
        next.sets[0].elements = [SetElement(Self.key(1), verdict: .accept), SetElement(Self.key(3), verdict: .drop)]
        #expect(texts(transaction(from: Self.base, to: next)) == [
            "delete element inet keel services { 10.96.0.1 . tcp . 80 : jump svc-a, 10.96.0.2 . tcp . 80 : drop }",
            "add element inet keel services { 10.96.0.1 . tcp . 80 : accept, 10.96.0.3 . tcp . 80 : drop }",
        ])
    }

    @Test func changedChainIsFlushedAndRefilled() {
        var next = Self.base
        next.rules[1] = Rule(Self.svcA, [.counter, .accept])
        #expect(texts(transaction(from: Self.base, to: next)) == [
            "flush chain inet keel svc-a",
            "add rule inet keel svc-a [ counter ] [ accept ]",
        ])
    }

    @Test func removedChainGoesAfterWhatJumpedToIt() {
        var next = Self.base
        next.chains.removeAll { $0.name == "svc-a" }
        next.rules.removeAll { $0.chain == "svc-a" }
        next.sets[0].elements = [SetElement(Self.key(2), verdict: .drop)]
        #expect(texts(transaction(from: Self.base, to: next)) == [
            "flush chain inet keel svc-a",
            "delete element inet keel services { 10.96.0.1 . tcp . 80 : jump svc-a }",
            "delete chain inet keel svc-a",
        ])
    }

    @Test func newChainComesBeforeTheElementThatJumpsToIt() {
        var next = Self.base
        next.chains.append(Chain(Self.table, "svc-b"))
        next.rules.append(Rule(Self.table, chain: "svc-b", [.drop]))
        next.sets[0].elements.insert(SetElement(Self.key(9), verdict: .jump("svc-b")))
        #expect(texts(transaction(from: Self.base, to: next)) == [
            "add chain inet keel svc-b",
            "add element inet keel services { 10.96.0.9 . tcp . 80 : jump svc-b }",
            "add rule inet keel svc-b [ drop ]",
        ])
    }

    @Test func policyChangeIsAnUpdateAndRedefinedSetIsReplaced() {
        var next = Self.base
        next.chains[0].base?.policy = .drop
        next.sets[0].timeout = .seconds(5)
        next.sets[0].flags.insert(.timeout)
        #expect(texts(transaction(from: Self.base, to: next)) == [
            "add chain inet keel input { type filter hook input priority 0; policy drop; }",
            "delete set inet keel services",
            "add map inet keel services { type ipv4_addr . inet_proto . inet_service : verdict; flags timeout; timeout 5000ms; }\n"
                + "add element inet keel services { 10.96.0.1 . tcp . 80 : jump svc-a, 10.96.0.2 . tcp . 80 : drop }",
        ])
    }

    @Test func removedTableIsDeleted() {
        #expect(texts(transaction(from: Self.base, to: Ruleset())) == ["delete table inet keel"])
    }

    @Test func equalityIgnoresOrderOfObjectsButNotOfRules() {
        var shuffled = Self.base
        shuffled.chains.reverse()
        shuffled.sets[0].elements = Set(Self.map.elements.reversed())
        #expect(shuffled == Self.base)
        var reordered = Self.base
        reordered.rules.append(Rule(Self.svcA, [.drop]))
        var reordered2 = Self.base
        reordered2.rules.insert(Rule(Self.svcA, [.drop]), at: 1)
        #expect(reordered != reordered2)
    }
}
