import NetAddress
@testable import NFTables
import SystemPackage
import Testing

struct TransactionTests {
    static let table = Table(.inet, "keel")
    static let vmap = NFTSet(table, "service-ips", key: [.ipv4Address, .inetProto, .inetService], mapping: .verdict)
    static let blocked = NFTSet(table, "blocked", key: [.ipv4Address], flags: .interval)

    @Test func rendersAsNftLikeText() {
        var tx = Transaction()
        tx.add(Self.table)
        tx.add(Chain(Self.table, "prerouting", type: .nat, hook: .prerouting, priority: .dstnat))
        tx.add(Chain(Self.table, "svc-web"))
        var map = Self.vmap
        map.elements = [SetElement([.ipv4(IPv4Address(10, 96, 0, 10)), .proto(.tcp), .port(80)], verdict: .goto("svc-web")),
                        SetElement([.ipv4(IPv4Address(10, 96, 0, 11)), .proto(.udp), .port(53)], verdict: .drop)]
        tx.add(map)
        tx.add(NFTSet(Self.table, "recent", key: [.ipv4Address], flags: .dynamic, timeout: .seconds(30), maxElements: 100))
        tx.add(Rule(Self.table, chain: "prerouting", comment: "services", [.vmap("service-ips", key: [.ipv4.daddr, .l4proto, .th.dport])]))
        tx.delete(elements: [SetElement(prefix: CIDR("10.0.0.0/8")!)], from: Self.blocked)
        tx.flush(chain: "svc-web", in: Self.table)
        tx.delete(chain: "svc-old", in: Self.table)
        #expect(tx.description == """
        add table inet keel
        add chain inet keel prerouting { type nat hook prerouting priority -100; policy accept; }
        add chain inet keel svc-web
        add map inet keel service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
        add element inet keel service-ips { 10.96.0.10 . tcp . 80 : goto svc-web, 10.96.0.11 . udp . 53 : drop }
        add set inet keel recent { type ipv4_addr; flags timeout,dynamic; timeout 30000ms; size 100; }
        add rule inet keel prerouting [ meta load nfproto => reg 1 ] [ cmp == reg 1 0x02 ] [ payload load 4b @ network header + 16 => reg 1 ] [ meta load l4proto => reg32 1 ] [ payload load 2b @ transport header + 2 => reg32 2 ] [ lookup reg 1 set service-ips dreg verdict ] comment "services"
        delete element inet keel blocked { 10.0.0.0-10.255.255.255 }
        flush chain inet keel svc-web
        delete chain inet keel svc-old
        """)
    }

    static let invalid: [(String, @Sendable (inout Transaction) -> Void, String)] = [
        ("element of the wrong key type", { $0.add(elements: [SetElement(.port(80))], to: vmap) }, "does not match key type"),
        ("map element without a value", { $0.add(elements: [SetElement([.ipv4(.loopback), .proto(.tcp), .port(1)])], to: vmap) }, "has no value"),
        ("range in a set without interval", {
            $0.add(elements: [SetElement([.ipv4(.any)], to: [.ipv4(.loopback)])], to: NFTSet(table, "s", key: [.ipv4Address]))
        }, "no interval flag"),
        ("backwards range", {
            $0.add(elements: [SetElement([.ipv4(.loopback)], to: [.ipv4(.any)])], to: blocked)
        }, "ends before it starts"),
        ("duplicate key", {
            let k: [DataValue] = [.ipv4(.loopback), .proto(.tcp), .port(1)]
            $0.add(elements: [SetElement(k, verdict: .accept), SetElement(k, verdict: .drop)], to: vmap)
        }, "appears twice"),
        ("element timeout without timeout flag", { $0.add(elements: [SetElement(.ipv4(.loopback), timeout: .seconds(1))], to: blocked) },
         "no timeout flag"),
        ("replace without handle", { $0.replace(Rule(table, chain: "c", [.accept])) }, "by handle"),
        ("delete without handle", { $0.delete(Rule(table, chain: "c", [.accept])) }, "by handle"),
        ("empty rule", { $0.add(Rule(table, chain: "c", expressions: [])) }, "at least one expression"),
        ("over-long chain name", { $0.add(Chain(table, String(repeating: "x", count: 300))) }, "1…255"),
    ]

    @Test(arguments: invalid.indices)
    func validationIsStickyAndNamesTheOperation(_ i: Int) {
        let (name, build, reason) = Self.invalid[i]
        var tx = Transaction()
        tx.add(Self.table)
        build(&tx)
        tx.add(Chain(Self.table, "after"))   // ignored once the transaction is invalid
        let error = tx.validationError
        #expect(error != nil, "\(name)")
        #expect(error?.operationIndex == 1, "\(name)")
        #expect(error?.errno == .invalidArgument)
        #expect(error?.kernelMessage?.contains(reason) == true, "\(name): \(String(describing: error))")
        #expect(tx.operations.count == 1, "\(name)")
        #expect(!tx.isEmpty)
    }

    @Test func emptyElementListsAddNothing() {
        var tx = Transaction()
        tx.add(elements: [SetElement](), to: Self.vmap)
        #expect(tx.isEmpty)
    }

    @Test func bigElementListsAreSplitAndOnlyTheLastCommandAsksForAnAck() {
        var tx = Transaction()
        var map = Self.vmap
        for i in 0..<10_000 {
            map.elements.insert(SetElement([.ipv4(IPv4Address(10, 96, UInt8(i / 256), UInt8(i % 256))), .proto(.tcp), .port(80)],
                                           verdict: .jump("svc-\(i)")))
        }
        tx.add(map)
        tx.add(Rule(Self.table, chain: "c", [.accept]))
        let messages = WireInspection.messages(tx)
        let elementMessages = messages.filter { $0.type & 0xff == 12 }   // NFT_MSG_NEWSETELEM
        #expect(elementMessages.count > 1)
        #expect(elementMessages.allSatisfy { $0.length < 65_535 })
        let ack: UInt16 = 0x4   // NLM_F_ACK
        #expect(messages.last!.flags & ack != 0)
        #expect(messages.dropLast().allSatisfy { $0.flags & ack == 0 })
    }
}

struct ErrorMappingTests {
    static let table = Table(.inet, "keel")

    static var tx: Transaction {
        var tx = Transaction()
        tx.add(table)
        tx.add(Chain(table, "c"))
        tx.add(Rule(table, chain: "c", [.jump("missing")]))
        return tx
    }

    @Test func firstFailingSequenceNamesItsOperation() {
        // Sequence 2 is the table, 3 the chain, 4 the rule (1 is BATCH_BEGIN).
        let owner: [UInt32: Int] = [2: 0, 3: 1, 4: 2]
        let answers: [UInt32: (errno: Int32, message: String?)] = [4: (2, "chain not found"), 5: (1, nil)]
        #expect {
            try NFTablesSocket.check(answers, owner: owner, lastSequence: 4, of: Self.tx)
        } throws: { error in
            guard let e = error as? NFTablesError else { return false }
            return e.operationIndex == 2 && e.errno == .noSuchFileOrDirectory && e.isNotFound
                && e.operation.hasPrefix("add rule inet keel c") && e.kernelMessage == "chain not found"
                && e.description.contains("operation 2 (add rule inet keel c")
        }
    }

    @Test func acknowledgedBatchIsSuccess() throws {
        try NFTablesSocket.check([4: (0, nil)], owner: [2: 0, 3: 1, 4: 2], lastSequence: 4, of: Self.tx)
    }

    @Test func silenceIsNotSuccess() {
        #expect(throws: NFTablesError.self) {
            try NFTablesSocket.check([:], owner: [2: 0, 3: 1, 4: 2], lastSequence: 4, of: Self.tx)
        }
    }
}
