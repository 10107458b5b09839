import Testing
import CNI
import NetAddress
@testable import IPAM

/// The plugin's commands on a temporary data directory, through the CNI request types.
@Suite struct HostLocalPluginTests {
    func config(_ dir: String, extra: String = "") -> [UInt8] {
        Array("""
        {"cniVersion": "1.0.0", "name": "podnet", "type": "bridge", \(extra)
         "ipam": {"type": "host-local", "dataDir": "\(dir)", "resolvConf": "\(dir)/resolv.conf",
                  "ranges": [[{"subnet": "10.9.0.0/29"}], [{"subnet": "fd09::/120"}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}}
        """.utf8)
    }
    func request(_ command: CNICommand, _ raw: [UInt8], id: String, args: CNIArgs = CNIArgs()) throws -> CNIRequest {
        CNIRequest(command: command, containerID: id, netns: "/var/run/netns/x", ifName: "eth0", args: args,
                   path: [], config: try NetworkConfig.decode(raw), rawConfig: raw)
    }

    @Test func addDelGcStatus() throws {
        try withTemporaryDirectory { dir in
            writeFile(dir + "/resolv.conf", "nameserver 10.96.0.10\nsearch default.svc.cluster.local\n")
            let raw = config(dir)
            let plugin = HostLocalPlugin()
            let result = try plugin.add(request(.add, raw, id: "c1"))
            #expect(result.ips == [IPConfig(address: cidr("10.9.0.2/29"), gateway: ip("10.9.0.1")),
                                   IPConfig(address: cidr("fd09::2/120"), gateway: ip("fd09::1"))])
            #expect(result.routes == [RouteConfig(dst: cidr("0.0.0.0/0"))])
            #expect(result.dns == DNS(nameservers: ["10.96.0.10"], search: ["default.svc.cluster.local"]))
            try plugin.check(request(.check, raw, id: "c1"))

            #expect {
                try plugin.add(request(.add, raw, id: "c1"))
            } throws: { CNIError(mapping: $0).code == 999 }   // as the entry point maps it

            let requested = try plugin.add(request(.add, raw, id: "c2", args: CNIArgs(pairs: ["IP": "10.9.0.6,fd09::66"])))
            #expect(requested.ips.map(\.address) == [cidr("10.9.0.6/29"), cidr("fd09::66/120")])

            #expect {
                try plugin.add(request(.add, raw, id: "c3", args: CNIArgs(pairs: ["IP": "10.9.0.6"])))
            } throws: { CNIError(mapping: $0).code == 999 }   // as the entry point maps it

            for id in ["c3", "c4", "c5"] { _ = try plugin.add(request(.add, raw, id: id)) }
            // .2 .3 .4 .5 .6 taken: the IPv4 set is exhausted.
            #expect {
                try plugin.status(CNIStatusRequest(config: NetworkConfig.decode(raw), rawConfig: raw, path: []))
            } throws: { CNIError(mapping: $0).code == 50 }   // as the entry point maps it

            try plugin.del(request(.del, raw, id: "c1"))
            try plugin.del(request(.del, raw, id: "c1"))
            #expect {
                try plugin.check(request(.check, raw, id: "c1"))
            } throws: { CNIError(mapping: $0).code == 999 }   // as the entry point maps it
            try plugin.status(CNIStatusRequest(config: NetworkConfig.decode(raw), rawConfig: raw, path: []))

            try plugin.gc(CNIGCRequest(config: NetworkConfig.decode(raw), rawConfig: raw,
                                       validAttachments: [Attachment(containerID: "c2", ifname: "eth0")], path: []))
            #expect(try directoryListing(dir + "/podnet").filter { IPAddress($0) != nil } == ["10.9.0.6", "fd09::66"])
            try plugin.gc(CNIGCRequest(config: NetworkConfig.decode(raw), rawConfig: raw, validAttachments: [], path: []))
            #expect(try directoryListing(dir + "/podnet") == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"])
        }
    }

    @Test func errorCodes() throws {
        try withTemporaryDirectory { dir in
            let plugin = HostLocalPlugin()
            let overlapping = Array("""
            {"cniVersion": "1.0.0", "name": "n", "type": "bridge",
             "ipam": {"dataDir": "\(dir)", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]}}
            """.utf8)
            #expect {
                try plugin.add(request(.add, overlapping, id: "c"))
            } throws: { CNIError(mapping: $0).code == 7 }   // as the entry point maps it
            #expect {
                try plugin.add(request(.add, config(dir), id: "c"))      // resolv.conf missing
            } throws: { CNIError(mapping: $0).code == 5 }   // as the entry point maps it
            #expect {
                try plugin.add(request(.add, config(dir), id: "c", args: CNIArgs(pairs: ["FOO": "1"])))
            } throws: { CNIError(mapping: $0).code == 2 }   // as the entry point maps it
        }
    }

    @Test(arguments: [
        (IPAMError.invalidConfig(field: "ipam.ranges", reason: "x"), 7),
        (.io(operation: "open", path: "/p", errno: 13), 5),
        (.unavailable(reason: "x"), 50),
        (.rangeExhausted(rangeSet: 0, ranges: "r"), 999),
        (.requestedAddressUnavailable(IPAddress("10.0.0.1")!, owner: "o"), 999),
        (.alreadyAllocated(IPAddress("10.0.0.1")!, rangeSet: 0, containerID: "c", ifName: "e"), 999),
    ])
    func cniCodes(error: IPAMError, code: Int) {
        #expect(CNIError(ipam: error).code == code)
    }
}
