import NetAddress
import NFTables
import SystemPackage
import Testing

/// `Ruleset.applying`: the kernel's all-or-nothing batch, and what it refuses, without root.
/// (`InMemoryKernelLockstepTests` checks the same refusals against the real kernel.)
struct InMemoryKernelTests {
    static let t = Table(.ip, "keel-test")
    static let ranges = NFTSet(t, "ranges", key: [.ipv4Address, .inetService], flags: .interval)
    static let vmap = NFTSet(t, "dispatch", key: [.ipv4Address], mapping: .verdict)

    static func range(_ lo: String, _ hi: String, _ port: UInt16) -> SetElement {
        SetElement([.ipv4(IPv4Address(lo)!), .port(port)], to: [.ipv4(IPv4Address(hi)!), .port(port)])
    }

    /// A table with a base chain, a group chain, a vmap jumping to it and an interval set a rule uses.
    static var base: Ruleset {
        let forward = Chain(t, "forward", type: .filter, hook: .forward, priority: .filter)
        var ranges = Self.ranges, vmap = Self.vmap
        ranges.elements = [range("10.0.0.0", "10.0.0.255", 80)]
        vmap.elements = [SetElement([.ipv4(IPv4Address(10, 0, 0, 1))], verdict: .jump("group"))]
        return Ruleset(tables: [t], chains: [forward, Chain(t, "group")], sets: [ranges, vmap], rules: [
            Rule(forward, [.vmap("dispatch", key: [.ipv4.saddr])]),
            Rule(t, chain: "group", [.lookup(in: "ranges", key: [.ipv4.daddr, .th.dport]), .accept]),
        ])
    }

    static func refusal(_ tx: Transaction, on ruleset: Ruleset = base) -> NFTablesError? {
        do { _ = try ruleset.applying(tx); return nil } catch { return error }
    }

    @Test func aFullRenderFromNothingIsTheRuleset() throws {
        let applied = try Ruleset().applying(transaction(from: nil, to: Self.base))
        #expect(applied == Self.base)
        // And a diff brings it to another state.
        var changed = Self.base
        changed.sets[0].elements = [Self.range("10.0.0.0", "10.0.0.127", 80), Self.range("10.0.1.0", "10.0.1.255", 443)]
        changed.rules.removeLast()
        #expect(try applied.applying(transaction(from: Self.base, to: changed)) == changed)
    }

    @Test func overlappingIntervalsAreRefusedAndNothingChanges() throws {
        var tx = Transaction()
        tx.add(elements: [Self.range("10.0.1.0", "10.0.1.255", 80)], to: Self.ranges)   // fine on its own
        tx.add(elements: [Self.range("10.0.0.128", "10.0.0.128", 80)], to: Self.ranges) // inside the base's range
        let error = try #require(Self.refusal(tx))
        #expect(error.isAlreadyExists && error.operationIndex == 1, "\(error)")
        // Same addresses, another port: no overlap.
        var other = Transaction()
        other.add(elements: [Self.range("10.0.0.128", "10.0.0.128", 81)], to: Self.ranges)
        #expect(Self.refusal(other) == nil)
    }

    @Test func elementsAreAddedOnceAndDeletedOnlyWhenPresent() {
        var same = Transaction()
        same.add(elements: [SetElement([.ipv4(IPv4Address(10, 0, 0, 1))], verdict: .jump("group"))], to: Self.vmap)
        #expect(Self.refusal(same) == nil, "an identical element again is no error")
        var other = Transaction()
        other.add(elements: [SetElement([.ipv4(IPv4Address(10, 0, 0, 1))], verdict: .drop)], to: Self.vmap)
        #expect(Self.refusal(other)?.isAlreadyExists == true, "the key with another value")
        var absent = Transaction()
        absent.delete(elements: [SetElement([.ipv4(IPv4Address(10, 0, 0, 2))], verdict: .drop)], from: Self.vmap)
        #expect(Self.refusal(absent)?.isNotFound == true)
        var missingChain = Transaction()
        missingChain.add(elements: [SetElement([.ipv4(IPv4Address(10, 0, 0, 3))], verdict: .jump("nowhere"))], to: Self.vmap)
        #expect(Self.refusal(missingChain)?.isNotFound == true)
    }

    @Test func referencesMustExistAndKeepWhatTheyUse() {
        var rule = Transaction()
        rule.add(Rule(Self.t, chain: "group", [.lookup(in: "missing", key: [.ipv4.daddr]), .accept]))
        #expect(Self.refusal(rule)?.isNotFound == true, "a rule using a missing set")
        var jump = Transaction()
        jump.add(Rule(Self.t, chain: "forward", [.jump("missing")]))
        #expect(Self.refusal(jump)?.isNotFound == true, "a rule jumping to a missing chain")
        var busyChain = Transaction()
        busyChain.flush(chain: "group", in: Self.t)
        busyChain.delete(chain: "group", in: Self.t)
        #expect(Self.refusal(busyChain)?.errno == .resourceBusy, "the vmap still jumps to it")
        var busySet = Transaction()
        busySet.delete(set: "ranges", in: Self.t)
        #expect(Self.refusal(busySet)?.errno == .resourceBusy, "a rule still uses it")
        var create = Transaction()
        create.create(Self.t)
        #expect(Self.refusal(create)?.isAlreadyExists == true)
        var gone = Transaction()
        gone.delete(Table(.ip, "absent"))
        #expect(Self.refusal(gone)?.isNotFound == true)
    }

    @Test func theKernelSeamHoldsWhatWasApplied() throws {
        let kernel = InMemoryNFTablesKernel()
        try kernel.check(transaction(from: nil, to: Self.base))
        #expect(try kernel.table(named: "keel-test", family: .ip) == nil, "a check changes nothing")
        try kernel.apply(transaction(from: nil, to: Self.base))
        #expect(try kernel.table(named: "keel-test", family: .ip) == Self.base)
        var bad = Transaction()
        bad.add(elements: [Self.range("10.0.0.5", "10.0.0.6", 80)], to: Self.ranges)
        #expect(throws: NFTablesError.self) { try kernel.apply(bad) }
        #expect(kernel.ruleset == Self.base && kernel.applied.count == 1)
    }
}
