import Testing
import NetAddress
@testable import IPAM

struct HostLocalConfigTests {
    func parse(_ json: String, ip: String? = nil) throws -> HostLocalConfig {
        try HostLocalConfig(json: Array(json.utf8), ipArgument: ip)
    }

    @Test func referenceStyleDualStackConfig() throws {
        let c = try parse("""
        {"cniVersion": "1.0.0", "name": "mynet", "type": "bridge",
         "ipam": {"type": "host-local", "dataDir": "/tmp/x",
                  "ranges": [[{"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.9", "rangeEnd": "10.1.2.20", "gateway": "10.1.2.30"},
                              {"subnet": "10.1.4.0/24"}],
                             [{"subnet": "2001:db8:1::/64"}]],
                  "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.2.1"}, {"dst": "::/0"}],
                  "resolvConf": "/etc/resolv.conf"}}
        """)
        #expect(c.networkName == "mynet" && c.cniVersion == "1.0.0" && c.dataDirectory == "/tmp/x")
        #expect(c.resolvConf == "/etc/resolv.conf")
        #expect(c.rangeSets.count == 2)
        #expect(c.rangeSets[0].ranges.map(\.description) == ["10.1.2.9-10.1.2.20", "10.1.4.1-10.1.4.254"])
        #expect(c.rangeSets[0].ranges[0].gateway == ip("10.1.2.30"))
        #expect(c.rangeSets[1].ranges[0].rangeEnd == ip("2001:db8:1::ffff:ffff:ffff:ffff"))
        #expect(c.routes == [IPAMRoute(destination: cidr("0.0.0.0/0")),
                             IPAMRoute(destination: cidr("192.168.0.0/16"), gateway: ip("10.1.2.1")),
                             IPAMRoute(destination: cidr("::/0"))])
        #expect(c.requestedAddresses.isEmpty)
    }

    @Test func oldSingleRangeComesAfterRuntimeRangesAndBeforeRanges() throws {
        let c = try parse("""
        {"cniVersion": "0.3.1", "name": "n",
         "ipam": {"subnet": "10.1.2.0/24", "gateway": "10.1.2.254", "ranges": [[{"subnet": "10.2.0.0/16"}]]},
         "runtimeConfig": {"ipRanges": [[{"subnet": "10.3.0.0/24"}]]}}
        """)
        #expect(c.rangeSets.map { $0.ranges[0].subnet } == [cidr("10.3.0.0/24"), cidr("10.1.2.0/24"), cidr("10.2.0.0/16")])
        #expect(c.rangeSets[1].ranges[0].gateway == ip("10.1.2.254"))
        #expect(c.dataDirectory == "/var/lib/cni/networks")
    }

    @Test func requestedAddressesFromArgsConfigArgsAndRuntimeConfig() throws {
        let c = try parse("""
        {"cniVersion": "1.0.0", "name": "n", "ipam": {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]]},
         "args": {"cni": {"ips": ["10.1.2.11"]}},
         "runtimeConfig": {"ips": ["11.11.11.11/24", "2001:db8:1::11"]}}
        """, ip: "10.1.2.10/24,2001:db8:1::10")
        #expect(c.requestedAddresses == ["10.1.2.10", "2001:db8:1::10", "10.1.2.11", "11.11.11.11", "2001:db8:1::11"].map(ip))
    }

    struct Invalid: Sendable, CustomStringConvertible {
        var name: String
        var json: String
        var ip: String? = nil
        var field: String
        var description: String { name }
    }

    @Test(arguments: [
        Invalid(name: "no ipam", json: #"{"name": "n"}"#, field: "ipam"),
        Invalid(name: "no name", json: #"{"ipam": {}}"#, field: "name"),
        Invalid(name: "no ranges", json: #"{"name": "n", "ipam": {}}"#, field: "ipam.ranges"),
        Invalid(name: "bad subnet", json: #"{"name": "n", "ipam": {"ranges": [[{"subnet": "10.1.2.0/33"}]]}}"#,
                field: "ipam.ranges[0][0].subnet"),
        Invalid(name: "wrong type", json: #"{"name": "n", "ipam": {"ranges": [{"subnet": "10.1.2.0/24"}]}}"#,
                field: "ipam.ranges[0]"),
        Invalid(name: "gateway outside", json: #"{"name": "n", "ipam": {"ranges": [[{"subnet": "10.1.2.0/24", "gateway": "10.9.9.9"}]]}}"#,
                field: "ipam.ranges[0][0].gateway"),
        Invalid(name: "gateway of the other family",
                json: #"{"name": "n", "ipam": {"ranges": [[{"subnet": "10.1.2.0/24", "gateway": "fd00::1"}]]}}"#,
                field: "ipam.ranges[0][0].gateway"),
        Invalid(name: "old-style rangeStart > rangeEnd",
                json: #"{"name": "n", "ipam": {"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.9", "rangeEnd": "10.1.2.8"}}"#,
                field: "ipam.rangeEnd"),
        Invalid(name: "overlap inside a set",
                json: #"{"name": "n", "ipam": {"ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "10.1.2.0/25"}]]}}"#,
                field: "ipam.ranges[0][1]"),
        Invalid(name: "overlap between sets",
                json: #"{"cniVersion": "1.0.0", "name": "n", "ipam": {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.0.0/16"}]]}}"#,
                field: "ipam.ranges"),
        Invalid(name: "two IPv4 sets before CNI 0.3.0",
                json: #"{"cniVersion": "0.2.0", "name": "n", "ipam": {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/24"}]]}}"#,
                field: "cniVersion"),
        Invalid(name: "bad IP in CNI_ARGS", json: #"{"name": "n", "ipam": {"subnet": "10.1.2.0/24"}}"#, ip: "10.1.2.x",
                field: "CNI_ARGS IP"),
        Invalid(name: "bad runtime ip", json: #"{"name": "n", "ipam": {"subnet": "10.1.2.0/24"}, "runtimeConfig": {"ips": ["nope"]}}"#,
                field: "runtimeConfig.ips[0]"),
        Invalid(name: "bad route", json: #"{"name": "n", "ipam": {"subnet": "10.1.2.0/24", "routes": [{"dst": "x"}]}}"#,
                field: "ipam.routes[0].dst"),
        Invalid(name: "multicast subnet in ranges",
                json: #"{"name": "n", "ipam": {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "ff02::/64"}]]}}"#,
                field: "ipam.ranges[1][0].subnet"),
        Invalid(name: "0.0.0.0/0 as the old single subnet", json: #"{"name": "n", "ipam": {"subnet": "0.0.0.0/0"}}"#,
                field: "ipam.subnet"),
        Invalid(name: "::/0 in runtimeConfig.ipRanges",
                json: #"{"name": "n", "ipam": {"subnet": "10.1.2.0/24"}, "runtimeConfig": {"ipRanges": [[{"subnet": "::/0"}]]}}"#,
                field: "runtimeConfig.ipRanges[0][0].subnet"),
        Invalid(name: "gateway on the broadcast address",
                json: #"{"name": "n", "ipam": {"ranges": [[{"subnet": "10.1.2.0/24", "gateway": "10.1.2.255"}]]}}"#,
                field: "ipam.ranges[0][0].gateway"),
        Invalid(name: "route gateway of the other family",
                json: #"{"name": "n", "ipam": {"subnet": "10.1.2.0/24", "routes": [{"dst": "10.9.0.0/16", "gw": "fd00::1"}]}}"#,
                field: "ipam.routes[0].gw"),
        Invalid(name: "multicast route gateway",
                json: #"{"name": "n", "ipam": {"subnet": "10.1.2.0/24", "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "224.0.0.1"}]}}"#,
                field: "ipam.routes[1].gw"),
    ])
    func invalid(_ c: Invalid) {
        #expect {
            try parse(c.json, ip: c.ip)
        } throws: { error in
            guard case let .invalidConfig(field, _)? = error as? IPAMError else { return false }
            return field == c.field
        }
    }

    /// Go's net.ParseCIDR masks, and the reference returns the masked route; the kernel refuses host bits.
    @Test func routeDestinationWithHostBitsIsMasked() throws {
        let c = try parse(#"{"name": "n", "ipam": {"subnet": "10.1.2.0/24", "routes": [{"dst": "10.9.8.7/16", "gw": "10.1.2.1"}]}}"#)
        #expect(c.routes == [IPAMRoute(destination: cidr("10.9.0.0/16"), gateway: ip("10.1.2.1"))])
    }

    /// An error repeats at most CNIError.quotedInputLimit characters of what was written.
    @Test func longInputIsClippedInTheMessage() {
        let long = String(repeating: "9", count: 100_000)
        #expect {
            try parse(#"{"name": "n", "ipam": {"ranges": [[{"subnet": "\#(long)"}]]}}"#)
        } throws: { error in
            guard case let .invalidConfig(field, reason)? = error as? IPAMError else { return false }
            return field == "ipam.ranges[0][0].subnet" && reason.count < 300 && reason.contains("(99800 more characters)")
        }
    }

    /// DEL finds the store without judging the ranges: a network whose config a newer Keel refuses
    /// must still release its pods.
    @Test func storeLocationIgnoresTheRanges() throws {
        let json = #"{"name": "n", "ipam": {"dataDir": "/tmp/d", "ranges": [[{"subnet": "224.0.0.0/24"}]]}}"#
        #expect(throws: IPAMError.self) { try parse(json) }
        let location = try HostLocalConfig.storeLocation(json: Array(json.utf8))
        #expect(location.network == "n" && location.dataDirectory == "/tmp/d")
    }

    @Test func resolvConfParsing() {
        let dns = DNSSettings(resolvConf: """
        # comment
        ; other comment
        nameserver 10.0.0.10
        nameserver   2001:db8::53
        domain cluster.local
        search a.svc b.svc
        search c
        options ndots:5 edns0
        sortlist 130.155.160.0
        nameserver
        """)
        #expect(dns == DNSSettings(nameservers: ["10.0.0.10", "2001:db8::53"], domain: "cluster.local",
                                   search: ["a.svc", "b.svc", "c"], options: ["ndots:5", "edns0"]))
    }
}
