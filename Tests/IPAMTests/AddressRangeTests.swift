import Testing
import NetAddress
@testable import IPAM

struct AddressRangeTests {
    struct Defaults: Sendable, CustomStringConvertible {
        var name: String
        var subnet: String
        var start: String?, end: String?, gateway: String?
        var expected: (start: String, end: String, gateway: String)
        var description: String { name }
    }

    @Test(arguments: [
        Defaults(name: "IPv4 /24 defaults", subnet: "10.1.2.0/24", expected: ("10.1.2.1", "10.1.2.254", "10.1.2.1")),
        Defaults(name: "IPv4 /30 defaults", subnet: "10.0.0.0/30", expected: ("10.0.0.1", "10.0.0.2", "10.0.0.1")),
        Defaults(name: "IPv4 explicit", subnet: "10.1.2.0/24", start: "10.1.2.40", end: "10.1.2.50", gateway: "10.1.2.254",
                 expected: ("10.1.2.40", "10.1.2.50", "10.1.2.254")),
        Defaults(name: "IPv6 /64 defaults: end is the last address", subnet: "2001:db8:1::/64",
                 expected: ("2001:db8:1::1", "2001:db8:1::ffff:ffff:ffff:ffff", "2001:db8:1::1")),
        Defaults(name: "IPv6 /120 defaults", subnet: "fd00::/120", expected: ("fd00::1", "fd00::ff", "fd00::1")),
    ])
    func defaults(_ c: Defaults) throws {
        let r = try AddressRange(subnet: cidr(c.subnet), rangeStart: c.start.map(ip), rangeEnd: c.end.map(ip), gateway: c.gateway.map(ip))
        #expect(r.rangeStart == ip(c.expected.start))
        #expect(r.rangeEnd == ip(c.expected.end))
        #expect(r.gateway == ip(c.expected.gateway))
    }

    struct Invalid: Sendable, CustomStringConvertible {
        var name: String
        var subnet: String
        var start: String?, end: String?, gateway: String?
        var field: String
        var description: String { name }
    }

    @Test(arguments: [
        Invalid(name: "/31 too small", subnet: "10.0.0.0/31", field: "r.subnet"),
        Invalid(name: "/32 too small", subnet: "10.0.0.1/32", field: "r.subnet"),
        Invalid(name: "/127 too small", subnet: "fd00::/127", field: "r.subnet"),
        Invalid(name: "host bits set", subnet: "10.0.0.1/24", field: "r.subnet"),
        Invalid(name: "gateway outside", subnet: "10.0.0.0/24", gateway: "10.0.1.1", field: "r.gateway"),
        Invalid(name: "rangeStart outside", subnet: "10.0.0.0/24", start: "10.0.1.5", field: "r.rangeStart"),
        Invalid(name: "rangeEnd outside", subnet: "10.0.0.0/24", end: "10.0.1.5", field: "r.rangeEnd"),
        Invalid(name: "rangeStart > rangeEnd", subnet: "10.0.0.0/24", start: "10.0.0.50", end: "10.0.0.40", field: "r.rangeEnd"),
        Invalid(name: "IPv6 rangeEnd outside", subnet: "fd00::/64", end: "fd00:0:0:1::1", field: "r.rangeEnd"),
        // Not unicast: the kernel refuses these later, in the middle of an ADD.
        Invalid(name: "every IPv4 address", subnet: "0.0.0.0/0", field: "r.subnet"),
        Invalid(name: "every IPv6 address", subnet: "::/0", field: "r.subnet"),
        Invalid(name: "this network", subnet: "0.0.0.0/24", field: "r.subnet"),
        Invalid(name: "loopback", subnet: "127.0.0.0/8", field: "r.subnet"),
        Invalid(name: "multicast", subnet: "224.1.0.0/16", field: "r.subnet"),
        Invalid(name: "covers multicast", subnet: "192.0.0.0/2", field: "r.subnet"),
        Invalid(name: "reserved", subnet: "240.0.0.0/24", field: "r.subnet"),
        Invalid(name: "IPv6 multicast", subnet: "ff02::/64", field: "r.subnet"),
        Invalid(name: "IPv6 covering loopback", subnet: "::/64", field: "r.subnet"),
        Invalid(name: "IPv4-mapped", subnet: "::ffff:10.0.0.0/120", field: "r.subnet"),
        // Network and broadcast addresses are not hosts.
        Invalid(name: "gateway is the network address", subnet: "10.0.0.0/24", gateway: "10.0.0.0", field: "r.gateway"),
        Invalid(name: "gateway is the broadcast address", subnet: "10.0.0.0/24", gateway: "10.0.0.255", field: "r.gateway"),
        Invalid(name: "IPv6 gateway is the subnet-router address", subnet: "fd00::/64", gateway: "fd00::", field: "r.gateway"),
        Invalid(name: "rangeStart is the network address", subnet: "10.0.0.0/24", start: "10.0.0.0", field: "r.rangeStart"),
        Invalid(name: "rangeEnd is the broadcast address", subnet: "10.0.0.0/24", end: "10.0.0.255", field: "r.rangeEnd"),
        Invalid(name: "a range of the gateway alone", subnet: "10.0.0.0/24", start: "10.0.0.1", end: "10.0.0.1", field: "r.rangeStart"),
    ])
    func invalid(_ c: Invalid) throws {
        #expect {
            try AddressRange(subnet: cidr(c.subnet), rangeStart: c.start.map(ip), rangeEnd: c.end.map(ip),
                             gateway: c.gateway.map(ip), field: "r")
        } throws: { error in
            guard case let .invalidConfig(field, _)? = error as? IPAMError else { return false }
            return field == c.field
        }
    }

    /// What the refusals above must not catch: unicast edges that the kernel takes.
    @Test(arguments: [
        ("10.0.0.0/24", nil, "10.0.0.254", "10.0.0.254"),          // gateway on the last host address
        ("fd00::/64", nil, "fd00::ffff:ffff:ffff:ffff", nil),        // IPv6 has no broadcast address
        ("169.254.0.0/16", nil, nil, nil),                            // link-local is unicast
        ("fe80::/64", nil, nil, nil),
        ("223.255.255.0/24", nil, nil, nil),                         // just below multicast
        ("1.0.0.0/8", nil, nil, nil),                                 // just above 0.0.0.0/8
    ] as [(String, String?, String?, String?)])
    func unicastEdgesAreAccepted(subnet: String, start: String?, end: String?, gateway: String?) throws {
        let r = try AddressRange(subnet: cidr(subnet), rangeStart: start.map(ip), rangeEnd: end.map(ip), gateway: gateway.map(ip))
        #expect(r.allocatableCount > 0)
    }

    @Test func refusalsSayWhatIsWrong() {
        func reason(_ subnet: String, gateway: String? = nil) -> String {
            do { _ = try AddressRange(subnet: cidr(subnet), gateway: gateway.map(ip), field: "r"); return "" } catch {
                guard case let .invalidConfig(_, reason)? = error as? IPAMError else { return "\(error)" }
                return reason
            }
        }
        #expect(reason("0.0.0.0/0") == "0.0.0.0/0 is every IPv4 address, not a network of hosts")
        #expect(reason("224.0.0.0/24") == "224.0.0.0/24 overlaps the multicast block 224.0.0.0/4, which holds no unicast host addresses")
        #expect(reason("ff00::/64") == "ff00::/64 overlaps the multicast block ff00::/8, which holds no unicast host addresses")
        #expect(reason("10.0.0.0/24", gateway: "10.0.0.255") == "gateway 10.0.0.255 is the broadcast address of 10.0.0.0/24")
    }

    @Test func rangeSetRejectsOverlapsAndMixedFamilies() throws {
        let a = try AddressRange(subnet: cidr("10.0.0.0/24"), rangeStart: ip("10.0.0.10"), rangeEnd: ip("10.0.0.20"))
        let b = try AddressRange(subnet: cidr("10.0.0.0/24"), rangeStart: ip("10.0.0.20"), rangeEnd: ip("10.0.0.30"))
        let c = try AddressRange(subnet: cidr("10.0.0.0/24"), rangeStart: ip("10.0.0.21"), rangeEnd: ip("10.0.0.30"))
        let v6 = try AddressRange(subnet: cidr("fd00::/64"))
        #expect(throws: IPAMError.self) { try RangeSet([a, b]) }
        #expect(throws: IPAMError.self) { try RangeSet([a, v6]) }
        #expect(throws: IPAMError.self) { try RangeSet([]) }
        let ok = try RangeSet([a, c])      // same subnet, disjoint ranges: allowed as in the reference
        #expect(ok.contains(ip("10.0.0.25")) && !ok.contains(ip("10.0.0.5")))
    }

    @Test(arguments: [
        ("10.0.0.0/29", UInt64(5)),        // .1-.6 minus gateway .1
        ("10.0.0.0/24", UInt64(253)),
        ("fd00::/120", UInt64(254)),       // ::1-::ff minus gateway
        ("fd00::/64", UInt64.max),
    ])
    func allocatableCount(subnet: String, expected: UInt64) throws {
        #expect(try AddressRange(subnet: cidr(subnet)).allocatableCount == expected)
    }

    @Test(arguments: [
        ("2001:db8::1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("::1", "::1"),
        ("::", "::"),
        ("::1.2.3.4", "::102:304"),        // glibc's inet_ntop writes ::1.2.3.4; Go (and the reference) do not
        ("fd00::ffff:ffff:ffff:ffff", "fd00::ffff:ffff:ffff:ffff"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
    ])
    func fileNameMatchesGo(address: String, expected: String) {
        #expect(DiskReservationStore.fileName(for: ip(address)) == expected)
    }
}
