import Testing
import NetAddress
@testable import IPAM

/// The reference's allocator_test.go cases, on the in-memory store.
struct AllocatorTests {
    struct RoundRobin: Sendable, CustomStringConvertible {
        var name: String
        var subnets: [String]
        var reserved: [String] = []
        var lastIP: String?
        var expected: String
        var description: String { name }
    }

    @Test(arguments: [
        RoundRobin(name: "fresh start", subnets: ["10.0.0.0/29"], expected: "10.0.0.2"),
        RoundRobin(name: "fresh start IPv6", subnets: ["2001:db8:1::0/64"], expected: "2001:db8:1::2"),
        RoundRobin(name: "fresh start /30", subnets: ["10.0.0.0/30"], expected: "10.0.0.2"),
        RoundRobin(name: "skip reserved", subnets: ["10.0.0.0/29"], reserved: ["10.0.0.2"], expected: "10.0.0.3"),
        RoundRobin(name: "after last reserved", subnets: ["10.0.0.0/29"], lastIP: "10.0.0.5", expected: "10.0.0.6"),
        RoundRobin(name: "after last, skipping reserved", subnets: ["10.0.0.0/29"], reserved: ["10.0.0.4", "10.0.0.5"],
                   lastIP: "10.0.0.3", expected: "10.0.0.6"),
        RoundRobin(name: "wrap to the beginning", subnets: ["10.0.0.0/29"], reserved: ["10.0.0.6"], lastIP: "10.0.0.5",
                   expected: "10.0.0.2"),
        RoundRobin(name: "last IP outside the set restarts", subnets: ["10.0.0.0/29"], reserved: ["10.0.0.2"],
                   lastIP: "10.0.0.128", expected: "10.0.0.3"),
        RoundRobin(name: "full except the last IP: wrap around to it", subnets: ["10.0.0.0/29"],
                   reserved: ["10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"], lastIP: "10.0.0.3", expected: "10.0.0.3"),
        RoundRobin(name: "multiple subnets", subnets: ["10.0.0.0/30", "10.0.1.0/30"], expected: "10.0.0.2"),
        RoundRobin(name: "advance to the next subnet", subnets: ["10.0.0.0/30", "10.0.1.0/30"], lastIP: "10.0.0.2",
                   expected: "10.0.1.2"),
        RoundRobin(name: "roll to the first subnet", subnets: ["10.0.0.0/30", "10.0.1.0/30", "10.0.2.0/30"],
                   lastIP: "10.0.2.2", expected: "10.0.0.2"),
    ])
    func roundRobin(_ c: RoundRobin) throws {
        let store = InMemoryReservationStore(
            reservations: c.reserved.map { Reservation(address: ip($0), containerID: "id", ifName: "eth0") },
            lastReserved: c.lastIP.map { [0: ip($0)] } ?? [:])
        let set = try RangeSet(c.subnets.map { try AddressRange(subnet: cidr($0)) })
        let leases = try HostLocalAllocator(rangeSets: [set], store: store).allocate(for: attachment("ID"))
        #expect(leases.map(\.address.address) == [ip(c.expected)])
        #expect(try store.lastReservedAddress(rangeSetIndex: 0) == ip(c.expected))
    }

    @Test(arguments: [
        (nil as String?, ["192.168.1.2", "192.168.1.3", "192.168.1.4", "192.168.1.5", "192.168.1.6"]),
        ("192.168.1.6", ["192.168.1.2", "192.168.1.3", "192.168.1.4", "192.168.1.5", "192.168.1.6"]),
        ("192.168.1.3", ["192.168.1.4", "192.168.1.5", "192.168.1.6", "192.168.1.2", "192.168.1.3"]),
    ])
    func iteratorVisitsEveryAddressOnce(last: String?, expected: [String]) throws {
        let set = try rangeSet("192.168.1.0/29")
        #expect(Array(set.candidates(after: last.map(ip)).map(\.address)) == expected.map(ip))
    }

    @Test func iteratorSkipsAGatewayInsideTheRangeAndCrossesRanges() throws {
        let set = try RangeSet([
            AddressRange(subnet: cidr("10.0.0.0/24"), rangeStart: ip("10.0.0.1"), rangeEnd: ip("10.0.0.3"), gateway: ip("10.0.0.2")),
            AddressRange(subnet: cidr("10.0.1.0/24"), rangeStart: ip("10.0.1.7"), rangeEnd: ip("10.0.1.8")),
        ])
        #expect(Array(set.candidates(after: ip("10.0.0.1")).map(\.address)) == ["10.0.0.3", "10.0.1.7", "10.0.1.8", "10.0.0.1"].map(ip))
    }

    @Test func roundRobinAcrossReleases() throws {
        let store = InMemoryReservationStore()
        let alloc = HostLocalAllocator(rangeSets: [try rangeSet("192.168.1.0/29")], store: store)
        #expect(try alloc.allocate(for: attachment("ID")).map(\.address) == [cidr("192.168.1.2/29")])
        #expect(try alloc.release(attachment("ID")) == [ip("192.168.1.2")])
        // A crash-looping container does not get its old address back.
        #expect(try alloc.allocate(for: attachment("ID")).map(\.address) == [cidr("192.168.1.3/29")])
    }

    @Test func exhaustionNeverHandsOutBroadcastOrGateway() throws {
        let store = InMemoryReservationStore()
        let alloc = HostLocalAllocator(rangeSets: [try rangeSet("192.168.1.0/29")], store: store)
        for i in 2...6 {
            let leases = try alloc.allocate(for: attachment("ID\(i)"))
            #expect(leases == [Lease(rangeSetIndex: 0, address: cidr("192.168.1.\(i)/29"), gateway: ip("192.168.1.1"))])
        }
        #expect(throws: IPAMError.rangeExhausted(rangeSet: 0, ranges: "192.168.1.1-192.168.1.6")) {
            try alloc.allocate(for: attachment("ID7"))
        }
        #expect(try alloc.freeAddressCounts() == [0])
        #expect(throws: IPAMError.self) { try alloc.checkAvailability() }
        try alloc.release(attachment("ID4"))
        #expect(try alloc.freeAddressCounts() == [1])
        try alloc.checkAvailability()
    }

    struct Requested: Sendable, CustomStringConvertible {
        var name: String
        var requested: [String]
        var result: Result<[String], IPAMError>
        var description: String { name }
    }

    // Range sets: 10.0.0.0/29 (gateway .1, .3 held by "other") and fd00::/120.
    @Test(arguments: [
        Requested(name: "in range", requested: ["10.0.0.5"], result: .success(["10.0.0.5/29", "fd00::2/120"])),
        Requested(name: "dual stack", requested: ["fd00::42", "10.0.0.6"], result: .success(["10.0.0.6/29", "fd00::42/120"])),
        Requested(name: "out of range", requested: ["10.0.1.5"], result: .failure(.requestedAddressesNotAllocated([ip("10.0.1.5")]))),
        Requested(name: "broadcast is out of range", requested: ["10.0.0.7"],
                  result: .failure(.requestedAddressesNotAllocated([ip("10.0.0.7")]))),
        Requested(name: "two in one range set", requested: ["10.0.0.5", "10.0.0.6"],
                  result: .failure(.requestedAddressesNotAllocated([ip("10.0.0.6")]))),
        Requested(name: "taken", requested: ["10.0.0.3"],
                  result: .failure(.requestedAddressUnavailable(ip("10.0.0.3"), owner: "other/eth0"))),
        Requested(name: "gateway", requested: ["10.0.0.1"], result: .failure(.requestedAddressIsGateway(ip("10.0.0.1")))),
    ])
    func requestedAddresses(_ c: Requested) throws {
        let store = InMemoryReservationStore(reservations: [Reservation(address: ip("10.0.0.3"), containerID: "other", ifName: "eth0")])
        let alloc = HostLocalAllocator(rangeSets: [try rangeSet("10.0.0.0/29"), try rangeSet("fd00::/120")], store: store)
        let before = try store.reservations()
        switch c.result {
        case .success(let expected):
            let leases = try alloc.allocate(for: attachment("c1"), requesting: c.requested.map(ip))
            #expect(leases.map(\.address) == expected.map(cidr))
            #expect(leases.map(\.rangeSetIndex) == [0, 1])
        case .failure(let expected):
            #expect(throws: expected) { try alloc.allocate(for: attachment("c1"), requesting: c.requested.map(ip)) }
            #expect(try store.reservations() == before, "a failed ADD reserves nothing")
        }
    }

    @Test func dualStackGivesOneAddressPerRangeSet() throws {
        let store = InMemoryReservationStore()
        let alloc = HostLocalAllocator(rangeSets: [try rangeSet("10.1.0.0/24"), try rangeSet("2001:db8:1::/64")], store: store)
        let a = try alloc.allocate(for: attachment("a"))
        let b = try alloc.allocate(for: attachment("b"))
        #expect(a == [Lease(rangeSetIndex: 0, address: cidr("10.1.0.2/24"), gateway: ip("10.1.0.1")),
                      Lease(rangeSetIndex: 1, address: cidr("2001:db8:1::2/64"), gateway: ip("2001:db8:1::1"))])
        #expect(b.map(\.address) == [cidr("10.1.0.3/24"), cidr("2001:db8:1::3/64")])
        #expect(try store.lastReservedAddress(rangeSetIndex: 0) == ip("10.1.0.3"))
        #expect(try store.lastReservedAddress(rangeSetIndex: 1) == ip("2001:db8:1::3"))
        #expect(try alloc.release(attachment("a")) == [ip("10.1.0.2"), ip("2001:db8:1::2")])
        #expect(try alloc.release(attachment("a")) == [], "DEL is idempotent")
    }

    @Test func failureInTheSecondRangeSetReleasesTheFirst() throws {
        let store = InMemoryReservationStore(reservations: [Reservation(address: ip("fd00::2"), containerID: "x", ifName: "eth0")])
        let v6 = try RangeSet([AddressRange(subnet: cidr("fd00::/120"), rangeStart: ip("fd00::2"), rangeEnd: ip("fd00::2"))])
        let alloc = HostLocalAllocator(rangeSets: [try rangeSet("10.0.0.0/29"), v6], store: store)
        #expect(throws: IPAMError.rangeExhausted(rangeSet: 1, ranges: "fd00::2-fd00::2")) { try alloc.allocate(for: attachment("c")) }
        #expect(try store.reservations().map(\.address) == [ip("fd00::2")])
    }

    @Test func secondAddForTheSameAttachmentIsRefused() throws {
        let store = InMemoryReservationStore()
        let alloc = HostLocalAllocator(rangeSets: [try rangeSet("10.0.0.0/29")], store: store)
        _ = try alloc.allocate(for: attachment("c", "eth0"))
        #expect(throws: IPAMError.alreadyAllocated(ip("10.0.0.2"), rangeSet: 0, containerID: "c", ifName: "eth0")) {
            try alloc.allocate(for: attachment("c", "eth0"))
        }
        // Another interface of the same container is another attachment.
        #expect(try alloc.allocate(for: attachment("c", "net1")).map(\.address) == [cidr("10.0.0.3/29")])
    }

    @Test func oldFormatReservationsMatchTheContainerID() throws {
        let store = InMemoryReservationStore(reservations: [
            Reservation(address: ip("10.0.0.2"), containerID: "old", ifName: nil),
            Reservation(address: ip("10.0.0.3"), containerID: "new", ifName: "eth0"),
        ])
        let alloc = HostLocalAllocator(rangeSets: [try rangeSet("10.0.0.0/29")], store: store)
        #expect(throws: IPAMError.self) { try alloc.allocate(for: attachment("old", "eth0")) }
        #expect(try alloc.addresses(of: attachment("old", "eth1")) == [ip("10.0.0.2")])
        #expect(try alloc.release(attachment("new", "eth1")) == [])
        #expect(try alloc.release(attachment("old", "eth0")) == [ip("10.0.0.2")])
    }

    @Test func garbageCollectionKeepsOnlyValidAttachments() throws {
        let store = InMemoryReservationStore(reservations: [
            Reservation(address: ip("10.0.0.2"), containerID: "a", ifName: "eth0"),
            Reservation(address: ip("10.0.0.3"), containerID: "a", ifName: "net1"),
            Reservation(address: ip("10.0.0.4"), containerID: "b", ifName: "eth0"),
            Reservation(address: ip("10.0.0.5"), containerID: "old", ifName: nil),
            Reservation(address: ip("10.0.0.6"), containerID: "gone", ifName: nil),
        ])
        let alloc = HostLocalAllocator(rangeSets: [try rangeSet("10.0.0.0/29")], store: store)
        let released = try alloc.collectGarbage(keeping: [attachment("a", "eth0"), attachment("old", "eth0")])
        #expect(released == ["10.0.0.3", "10.0.0.4", "10.0.0.6"].map(ip))
        #expect(try store.reservations().map(\.address) == ["10.0.0.2", "10.0.0.5"].map(ip))
        #expect(try alloc.collectGarbage(keeping: []) == ["10.0.0.2", "10.0.0.5"].map(ip))
        #expect(try store.reservations().isEmpty)
    }

    @Test func lockErrorsReachTheCaller() throws {
        let store = InMemoryReservationStore()
        let alloc = HostLocalAllocator(rangeSets: [try rangeSet("10.0.0.0/29")], store: store)
        let failure = IPAMError.io(operation: "flock", path: "/x/lock", errno: 5)
        store.failLocking(with: failure)
        #expect(throws: failure) { try alloc.allocate(for: attachment("c")) }
        #expect(throws: failure) { try alloc.release(attachment("c")) }
        #expect(throws: failure) { try alloc.collectGarbage(keeping: []) }
        #expect(throws: failure) { try alloc.checkAvailability() }
        #expect(try store.reservations().isEmpty)
    }
}
