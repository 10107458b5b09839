import NetAddress
@testable import NFTables
import Testing

struct SetTests {
    static let table = Table(.inet, "keel")

    @Test(arguments: [
        ([DataType.ipv4Address, .inetProto, .inetService], 12, UInt32((7 << 12) | (12 << 6) | 13)),
        ([.ipv6Address, .inetService], 20, UInt32((8 << 6) | 13)),
        ([.inetService], 2, UInt32(13)),
        ([.inetProto], 1, UInt32(12)),
        ([.ipv4Address, .ipv4Address], 8, UInt32((7 << 6) | 7)),
        ([.ifname, .mark], 20, UInt32((41 << 6) | 19)),
    ])
    func keyLayoutIsNfts(_ types: [DataType], _ length: Int, _ kernelType: UInt32) {
        #expect(types.kernelLength == length)
        #expect(types.kernelType == kernelType)
        #expect([DataType](kernelType: kernelType, length: length) == types)
    }

    @Test func concatenatedKeyBytesArePaddedPerField() {
        let key: [DataValue] = [.ipv4(IPv4Address(10, 0, 0, 1)), .proto(.tcp), .port(80)]
        #expect(SetCodec.bytes(key) == [10, 0, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0])
        #expect(SetCodec.values(SetCodec.bytes(key), key.map(\.type)) == key)
        #expect(SetCodec.bytes([.port(80)]) == [0, 80])
    }

    static let sets: [NFTSet] = [
        NFTSet(table, "vmap", key: [.ipv4Address, .inetProto, .inetService], mapping: .verdict, elements: [
            SetElement([.ipv4(IPv4Address(10, 96, 0, 1)), .proto(.tcp), .port(80)], verdict: .jump("svc-a")),
            SetElement([.ipv4(IPv4Address(10, 96, 0, 2)), .proto(.udp), .port(53)], verdict: .accept),
        ]),
        NFTSet(table, "dnat", key: [.inetProto, .inetService], mapping: .data([.ipv4Address, .inetService]), elements: [
            SetElement([.proto(.tcp), .port(30080)], data: [.ipv4(IPv4Address(10, 1, 0, 5)), .port(8080)]),
        ]),
        NFTSet(table, "ranges", key: [.ipv4Address], flags: .interval, elements: [
            SetElement(prefix: CIDR("10.0.0.0/8")!),
            SetElement(.ipv4(IPv4Address(192, 168, 1, 1))),
            SetElement([.ipv4(IPv4Address(203, 0, 113, 5))], to: [.ipv4(IPv4Address(255, 255, 255, 255))]),
        ]),
        NFTSet(table, "concat-ranges", key: [.ipv4Address, .inetService], flags: .interval, elements: [
            SetElement([.ipv4(IPv4Address(10, 0, 0, 1)), .port(1000)], to: [.ipv4(IPv4Address(10, 0, 0, 1)), .port(2000)]),
            SetElement([.ipv4(IPv4Address(10, 0, 0, 2)), .port(22)]),
        ]),
        NFTSet(table, "recent", key: [.ipv4Address], flags: .dynamic, timeout: .seconds(60), maxElements: 4096, elements: [
            SetElement(.ipv4(IPv4Address(10, 0, 0, 9)), timeout: .seconds(5)),
            SetElement(.ipv4(IPv4Address(10, 0, 0, 10))),
        ]),
    ]

    @Test(arguments: sets)
    func setDefinitionAndElementsSurviveTheWire(_ set: NFTSet) {
        #expect(WireInspection.roundTrip(definition: set) == set.definition)
        #expect(WireInspection.roundTrip(elements: Array(set.elements), of: set) == set.elements)
    }

    @Test func intervalElementsBecomeStartAndEndMarkers() {
        let set = Self.sets[2]
        let range = SetElement(prefix: CIDR("10.0.0.0/8")!)
        #expect(SetCodec.makeElements(range, in: set).count == 2)
        // A range that reaches the top of the type has no end marker, as nft writes it.
        let top = SetElement([.ipv4(IPv4Address(203, 0, 113, 5))], to: [.ipv4(IPv4Address(255, 255, 255, 255))])
        #expect(SetCodec.makeElements(top, in: set).count == 1)
        // Concatenated intervals carry their end in the same element.
        #expect(SetCodec.makeElements(Self.sets[3].elements.first!, in: Self.sets[3]).count == 1)
    }

    @Test func timeoutFlagFollowsDefaultTimeout() {
        let s = NFTSet(Self.table, "t", key: [.ipv4Address], timeout: .seconds(1))
        #expect(s.flags.contains(.timeout))
    }
}
