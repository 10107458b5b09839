import NetAddress
import Testing

@Suite struct IPv4AddressTests {
    @Test(arguments: [
        ("10.244.1.5", UInt32(0x0AF4_0105)),
        ("0.0.0.0", UInt32(0)),
        ("255.255.255.255", UInt32.max),
    ])
    func parses(text: String, value: UInt32) {
        #expect(IPv4Address(text)?.value == value)
        #expect(IPv4Address(text)?.description == text)
    }

    @Test(arguments: ["", "10.0.0", "10.0.0.0.1", "256.1.1.1", "01.2.3.4", "1.2.3.a", "1..2.3", " 1.2.3.4", "-1.2.3.4"])
    func rejects(text: String) { #expect(IPv4Address(text) == nil) }

    @Test func bytesRoundTrip() {
        let a = IPv4Address("192.168.50.12")!
        #expect(a.bytes == [192, 168, 50, 12])
        #expect(IPv4Address(bytes: a.bytes) == a)
        #expect(IPv4Address(bytes: [1, 2, 3]) == nil)
    }

    @Test func advancing() {
        #expect(IPv4Address("10.0.0.255")!.advanced(by: 1) == IPv4Address("10.0.1.0"))
        #expect(IPv4Address("255.255.255.255")!.advanced(by: 1) == nil)
        #expect(IPv4Address("0.0.0.0")!.advanced(by: -1) == nil)
    }
}

@Suite struct IPv6AddressTests {
    @Test(arguments: [
        ("fd00::1", "fd00::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::", "::"),
        ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
    ])
    func parsesAndPrintsCanonical(text: String, canonical: String) {
        #expect(IPv6Address(text)?.description == canonical)
    }

    @Test(arguments: ["", "fd00:::1", "1:2:3:4:5:6:7:8:9", "g::1", "10.0.0.1"])
    func rejects(text: String) { #expect(IPv6Address(text) == nil) }

    @Test func carryAcrossHalves() {
        let a = IPv6Address("fd00::ffff:ffff:ffff:ffff")!
        #expect(a.advanced(by: 1) == IPv6Address("fd00:0:0:1::"))
        #expect(IPv6Address("fd00:0:0:1::")!.advanced(by: -1) == a)
        #expect(IPv6Address(high: .max, low: .max).advanced(by: 1) == nil)
    }

    @Test func ordering() {
        #expect(IPv6Address("fd00::1")! < IPv6Address("fd00::2")!)
        #expect(IPAddress("10.0.0.1")! < IPAddress("::1")!)
    }
}

@Suite struct CIDRTests {
    @Test(arguments: [
        ("10.244.1.7/24", "10.244.1.0", "10.244.1.255", "255.255.255.0", Int64(256)),
        ("10.0.0.0/8", "10.0.0.0", "10.255.255.255", "255.0.0.0", Int64(16_777_216)),
        ("192.168.1.1/32", "192.168.1.1", "192.168.1.1", "255.255.255.255", Int64(1)),
        ("0.0.0.0/0", "0.0.0.0", "255.255.255.255", "0.0.0.0", Int64(4_294_967_296)),
        ("fd00:1:2:3::9/64", "fd00:1:2:3::", "fd00:1:2:3:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff::", Int64.max),
        ("fd00::/120", "fd00::", "fd00::ff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00", Int64(256)),
    ])
    func networkLastMaskSize(text: String, network: String, last: String, mask: String, size: Int64) throws {
        let c = try #require(CIDR(text))
        #expect(c.network == IPAddress(network))
        #expect(c.last == IPAddress(last))
        #expect(c.netmask == IPAddress(mask))
        #expect(c.size == size)
        #expect(c.description == text)
    }

    @Test(arguments: ["10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/a", "x/24", "10.0.0.0/24/1"])
    func rejects(text: String) { #expect(CIDR(text) == nil) }

    @Test func bareAddressIsHostPrefix() {
        #expect(CIDR("10.1.2.3")?.prefixLength == 32)
        #expect(CIDR("fd00::1")?.prefixLength == 128)
    }

    @Test func containment() {
        let c = CIDR("10.244.0.0/16")!
        #expect(c.contains(IPAddress("10.244.255.1")!))
        #expect(!c.contains(IPAddress("10.245.0.0")!))
        #expect(!c.contains(IPAddress("fd00::1")!))
        #expect(c.contains(CIDR("10.244.3.0/24")!))
        #expect(!c.contains(CIDR("10.0.0.0/8")!))
        #expect(c.overlaps(CIDR("10.0.0.0/8")!))
        #expect(!c.overlaps(CIDR("10.245.0.0/16")!))
        #expect(CIDR("fd00::/48")!.contains(IPAddress("fd00:0:0:ffff::1")!))
    }

    @Test func iterationIsLazyAndComplete() {
        #expect(Array(CIDR("10.0.0.4/30")!.addresses).map(\.description) == ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"])
        #expect(Array(CIDR("fd00::/126")!.addresses).count == 4)
        // A /64 is never materialised: taking three is instant.
        #expect(Array(CIDR("fd00::/64")!.addresses.prefix(3)).last == IPAddress("fd00::2"))
    }

    @Test func subnets() {
        let cluster = CIDR("10.244.0.0/16")!
        #expect(cluster.subnet(3, prefixLength: 24) == CIDR("10.244.3.0/24"))
        #expect(cluster.subnet(255, prefixLength: 24) == CIDR("10.244.255.0/24"))
        #expect(cluster.subnet(256, prefixLength: 24) == nil)
        #expect(cluster.subnet(0, prefixLength: 8) == nil)
        #expect(CIDR("fd00::/48")!.subnet(2, prefixLength: 64) == CIDR("fd00:0:0:2::/64"))
        #expect(CIDR("fd00::/56")!.subnet(1, prefixLength: 120) == CIDR("fd00::100/120"))
    }
}

@Suite struct MACAddressTests {
    @Test func parsesAndPrints() {
        #expect(MACAddress("02:AB:cd:00:01:ff")?.description == "02:ab:cd:00:01:ff")
        #expect(MACAddress("02-ab-cd-00-01-ff")?.bytes == [2, 0xab, 0xcd, 0, 1, 0xff])
        #expect(MACAddress("02:ab:cd:00:01") == nil)
        #expect(MACAddress("02:ab:cd:00:01:fff") == nil)
    }

    @Test func locallyAdministeredIsUnicastAndStable() {
        let m = MACAddress.locallyAdministered([0xff, 1, 2, 3, 4, 5, 6])
        #expect(m.bytes[0] & 0x01 == 0)  // unicast
        #expect(m.bytes[0] & 0x02 == 0x02)  // locally administered
        #expect(m == MACAddress.locallyAdministered([0xff, 1, 2, 3, 4, 5, 6]))
    }
}
