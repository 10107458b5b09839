import Foundation
import NFTables
import NetAddress
@testable import PolicyEnforcer
import Testing

func expectPolicyGolden(_ text: String, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/\(name)")
    if ProcessInfo.processInfo.environment["KEEL_UPDATE_GOLDEN"] == "1" {
        try text.write(to: url, atomically: true, encoding: .utf8)
        return
    }
    #expect(text == (try String(contentsOf: url, encoding: .utf8)),
            "ruleset differs from Golden/\(name); rerun with KEEL_UPDATE_GOLDEN=1 and read the diff", sourceLocation: sourceLocation)
}

@Suite struct PolicyRulesetTests {
    let web = CompiledPod(name: "shop/web", address: IPv4Address(10, 244, 1, 10),
                          ingress: [CompiledRule(label: "shop/web-from-client ingress[0]",
                                                 peers: [AddressRange(IPv4Address(10, 244, 1, 12), IPv4Address(10, 244, 1, 12))],
                                                 ports: [PortRange(proto: 6, 8080, 8080)]),
                                    CompiledRule(label: "shop/web-from-office ingress[0]",
                                                 peers: AddressRange.ranges(of: CIDR("192.0.2.0/24")!, except: [CIDR("192.0.2.128/25")!]),
                                                 ports: [PortRange(proto: 6, 8000, 8100)])],
                          egress: nil)
    let db = CompiledPod(name: "shop/db", address: IPv4Address(10, 244, 1, 11), ingress: [], egress: [
        CompiledRule(label: "shop/db-egress egress[0]", peers: [.all], ports: [PortRange(proto: 17, 53, 53)])])

    @Test func golden() throws {
        try expectPolicyGolden(transaction(from: nil, to: PolicyRuleset.ruleset([web, db])).description + "\n", "two-pods.nft")
    }

    @Test func setsDoNotGrowWithPodsOrPolicies() {
        var many: [CompiledPod] = []
        for i in 0..<500 {
            let port = UInt16(8000 + i % 50)
            let rule = CompiledRule(label: "ns/pol\(i % 50) ingress[0]", peers: [AddressRange.all], ports: [PortRange(proto: 6, port, port)])
            many.append(CompiledPod(name: "p\(i)", address: IPv4Address(0x0AF4_0000 + UInt32(i)), ingress: [rule], egress: nil))
        }
        let r = PolicyRuleset.ruleset(many)
        #expect(r.sets.count == PolicyRuleset.ruleset([web]).sets.count)
        // 50 distinct rule sets → 50 group chains shared by 10 pods each, one allow element per rule.
        #expect(r.chains.count == 1 + 50)
        #expect(r.set("ingress-rules", in: PolicyRuleset.table)?.elements.count == 50)
        #expect(r.set("ingress-pods", in: PolicyRuleset.table)?.elements.count == 500)
    }

    @Test func defaultDenyIsAChainThatOnlyDrops() {
        let r = PolicyRuleset.ruleset([db])
        let group = r.chains.first { $0.name.hasPrefix("ingress-") }!
        #expect(r.rules(of: group.name, in: PolicyRuleset.table).count == 1)
    }
}
