import CNI
import Foundation
import NetAddress
import Testing

struct CNIResultTests {
    static let v1 = #"{"cniVersion":"VERSION","dns":{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]},"interfaces":[{"mac":"0a:58:0a:f4:01:01","name":"cni0"},{"mac":"0a:58:0a:f4:01:05","mtu":1450,"name":"eth0","sandbox":"/var/run/netns/pod1"}],"ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":1},{"address":"fd00:1::5/64","gateway":"fd00:1::1","interface":1}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"},{"dst":"fd00::/8","mtu":1400,"table":100}]}"#
    // 0.3.x/0.4.0: "version" on each IP; interfaces keep name, mac and sandbox only.
    static let v04 = #"{"cniVersion":"VERSION","dns":{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]},"interfaces":[{"mac":"0a:58:0a:f4:01:01","name":"cni0"},{"mac":"0a:58:0a:f4:01:05","name":"eth0","sandbox":"/var/run/netns/pod1"}],"ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":1,"version":"4"},{"address":"fd00:1::5/64","gateway":"fd00:1::1","interface":1,"version":"6"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"},{"dst":"fd00::/8","mtu":1400,"table":100}]}"#

    @Test(arguments: [("1.1.0", v1), ("1.0.0", v1), ("0.4.0", v04), ("0.3.1", v04), ("0.3.0", v04)])
    func encodesAs(_ version: String, _ template: String) throws {
        let expected = template.replacingOccurrences(of: "VERSION", with: version)
        #expect(text(try sampleResult.encoded(as: version)) == expected)
    }

    @Test(arguments: ["0.2.0", "0.1.0", "2.0.0", "", "latest"])
    func unknownVersionIsIncompatible(_ version: String) {
        #expect(throws: CNIError.self) { try sampleResult.encoded(as: version) }
        do { _ = try sampleResult.encoded(as: version) } catch {
            #expect((error as? CNIError)?.knownCode == .incompatibleCNIVersion)
        }
    }

    /// Reading any version back gives the model again, except what the old versions cannot carry.
    @Test(arguments: ["1.1.0", "1.0.0", "0.4.0", "0.3.1"])
    func roundTrips(_ version: String) throws {
        let decoded = try CNIResult.decode(try sampleResult.encoded(as: version))
        var expected = sampleResult
        expected.cniVersion = version
        if version.hasPrefix("0.") { expected.interfaces[1].mtu = nil }
        #expect(decoded == expected)
    }

    @Test func minimalResultOmitsEmptySections() throws {
        let r = CNIResult(ips: [IPConfig(address: "10.0.0.2/8")])
        #expect(text(try r.encoded(as: "1.0.0")) == #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/8"}]}"#)
        #expect(text(try r.encoded(as: "0.3.1")) == #"{"cniVersion":"0.3.1","ips":[{"address":"10.0.0.2/8","version":"4"}]}"#)
        #expect(text(try CNIResult().encoded(as: "1.1.0")) == #"{"cniVersion":"1.1.0"}"#)
    }

    @Test func v11FieldsAndRouteAttributes() throws {
        let r = CNIResult(
            interfaces: [Interface(name: "net1", socketPath: "/run/vhost/sock1", pciID: "0000:00:1f.6")],
            routes: [RouteConfig(dst: "10.0.0.0/8", gw: "10.1.0.1", mtu: 9000, advmss: 8960, priority: 10, table: 0, scope: 0)])
        #expect(text(try r.encoded(as: "1.1.0")) == #"{"cniVersion":"1.1.0","interfaces":[{"name":"net1","pciID":"0000:00:1f.6","socketPath":"/run/vhost/sock1"}],"routes":[{"advmss":8960,"dst":"10.0.0.0/8","gw":"10.1.0.1","mtu":9000,"priority":10,"scope":0,"table":0}]}"#)
        #expect(try CNIResult.decode(try r.encoded(as: "1.1.0")).routes == r.routes)
    }

    @Test func reads020Shape() throws {
        let old = #"{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/16","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0"}]},"ip6":{"ip":"fd00::5/64"},"dns":{"nameservers":["1.1.1.1"]}}"#
        let r = try CNIResult.decode(bytes(old))
        #expect(r.ips == [IPConfig(address: "10.1.0.5/16", gateway: "10.1.0.1"), IPConfig(address: "fd00::5/64")])
        #expect(r.routes == [RouteConfig(dst: "0.0.0.0/0")])
        #expect(r.dns.nameservers == ["1.1.1.1"])
    }

    @Test(arguments: [
        (#"{"ips":[{"address":"10.0.0.5"}]}"#, "ips[0].address"),             // no prefix
        (#"{"ips":[{"address":"10.0.0.5/24","gateway":"x"}]}"#, "ips[0].gateway"),
        (#"{"routes":[{"dst":"10.0.0.0/33"}]}"#, "routes[0].dst"),
        (#"{"interfaces":[{"name":"eth0","mac":"zz"}]}"#, "interfaces[0].mac"),
        (#"{"interfaces":[{"mac":"0a:58:0a:f4:01:05"}]}"#, "interfaces[0].name"),
    ])
    func malformedResultNamesTheField(_ json: String, _ field: String) {
        do {
            _ = try CNIResult.decode(bytes(json))
            Issue.record("decoded \(json)")
        } catch {
            let e = CNIError(mapping: error)
            #expect(e.knownCode == .invalidNetworkConfig)
            #expect(e.msg.contains(field), "\(e)")
        }
    }
}
