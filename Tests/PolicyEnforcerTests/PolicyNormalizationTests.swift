import Cluster
import NFTables
import NetAddress
import PolicyEnforcer
import Testing

private func v4(_ s: String) -> IPv4Address { IPv4Address(s)! }
private func range(_ a: String, _ b: String) -> AddressRange { AddressRange(v4(a), v4(b)) }
private let policyKey = ObjectKey(kind: .networkPolicy, namespace: "shop", name: "web")

/// What goes into the kernel's interval sets is normalized: the kernel refuses overlapping
/// elements with EEXIST and with them the whole transaction.
@Suite struct PolicyNormalizationTests {
    @Test func overlappingAndAdjacentPeersMerge() {
        let merged = AddressRange.union([
            range("10.0.0.0", "10.0.255.255"), range("10.0.1.7", "10.0.1.7"),    // a pod inside a block
            range("10.1.0.0", "10.1.0.9"), range("10.1.0.10", "10.1.0.20"),      // adjacent
            range("10.2.0.5", "10.2.0.9"), range("10.2.0.0", "10.2.0.6"),        // partial overlap, out of order
            range("255.255.255.0", "255.255.255.255"), range("255.255.255.255", "255.255.255.255"),
        ])
        #expect(merged.map(\.description) == ["10.0.0.0-10.1.0.20", "10.2.0.0-10.2.0.9",
                                              "255.255.255.0-255.255.255.255"])
    }

    @Test func portsMergePerProtocolAndAnyProtocolWins() {
        let tcp80 = PortRange(proto: 6, 80, 80), tcp70to90 = PortRange(proto: 6, 70, 90), tcpAll = PortRange(proto: 6, 0, 65535)
        let udp53 = PortRange(proto: 17, 53, 53), udp54 = PortRange(proto: 17, 54, 54)
        #expect(PortRange.union([tcp80, tcp70to90, udp54, udp53]) == [tcp70to90, PortRange(proto: 17, 53, 54)])
        #expect(PortRange.union([tcp80, tcpAll]) == [tcpAll])
        #expect(PortRange.union([tcp80, .all, udp53]) == [.all])
    }

    /// The outside checks' case: a namespace selector whose pod lies inside an ipBlock of the same
    /// rule, a second overlapping block, and `port: 80` next to a range holding 80.
    @Test func aRuleWithOverlappingPeersCompilesToDisjointElements() {
        let rule = CompiledRule(label: "shop/web ingress[0]", policy: policyKey,
                                peers: [range("10.244.1.12", "10.244.1.12")]
                                    + AddressRange.ranges(of: CIDR("10.244.0.0/16")!, except: [CIDR("10.244.1.0/24")!])
                                    + AddressRange.ranges(of: CIDR("10.244.1.0/25")!, except: []),
                                ports: [PortRange(proto: 6, 80, 80), PortRange(proto: 6, 79, 81)])
        #expect(rule.peers.map(\.description) == ["10.244.0.0-10.244.1.127", "10.244.2.0-10.244.255.255"])
        let pod = CompiledPod(name: "shop/web", address: v4("10.244.1.10"), ingress: [rule], egress: nil)
        let set = PolicyRuleset.ruleset([pod]).set("ingress-rules", in: PolicyRuleset.table)!
        #expect(set.elements.count == 2)
        #expect(set.overlappingElements().isEmpty)
        #expect(PolicyRuleset.problems([pod]).isEmpty)
        #expect(rule.admits(v4("10.244.1.12"), proto: 6, port: 80) && !rule.admits(v4("10.244.1.200"), proto: 6, port: 80))
    }

    /// The check itself finds what the kernel would refuse (elements built by hand, as no compiled
    /// rule can produce them any more).
    @Test func overlapCheckFindsOverlappingBoxes() {
        func element(_ mark: UInt32, _ lo: String, _ hi: String, _ plo: UInt16, _ phi: UInt16) -> SetElement {
            SetElement([.mark(mark), .ipv4(v4(lo)), .proto(IPProtocol(rawValue: 6)), .port(plo)],
                       to: [.mark(mark), .ipv4(v4(hi)), .proto(IPProtocol(rawValue: 6)), .port(phi)])
        }
        let key: [DataType] = [.mark, .ipv4Address, .inetProto, .inetService]
        let overlapping = NFTSet(PolicyRuleset.table, "ingress-rules", key: key, flags: .interval, elements: [
            element(7, "10.0.0.0", "10.0.255.255", 80, 80), element(7, "10.0.1.7", "10.0.1.7", 0, 65535),
            element(8, "10.0.1.7", "10.0.1.7", 80, 80),               // another rule id: no overlap
            element(7, "10.0.1.7", "10.0.1.7", 81, 90),               // same id and address, other ports: overlaps the second
        ])
        let pairs = overlapping.overlappingElements()
        #expect(pairs.count == 2, "\(pairs)")
        let disjoint = NFTSet(PolicyRuleset.table, "ingress-rules", key: key, flags: .interval, elements: [
            element(7, "10.0.0.0", "10.0.1.6", 80, 80), element(7, "10.0.1.7", "10.0.1.7", 80, 80), element(8, "10.0.0.0", "10.0.1.6", 80, 80),
        ])
        #expect(disjoint.overlappingElements().isEmpty)
    }

    /// Two different rules whose 32-bit ids collide get two marks: otherwise each rule's chain
    /// would match the other's elements (and the kernel could refuse their overlap).
    @Test func collidingRuleIdsAreToldApart() {
        // Found by hashing "ns/p<i> ingress[0]" rules for i up to 400K (a birthday search, ~8 s in a debug build).
        let a = CompiledRule(label: "ns/p170692 ingress[0]", peers: [range("10.0.0.1", "10.0.0.1")], ports: [PortRange(proto: 6, 80, 80)])
        let b = CompiledRule(label: "ns/p277825 ingress[0]", peers: [range("10.0.0.2", "10.0.0.2")], ports: [PortRange(proto: 6, 80, 80)])
        #expect(a.id == b.id && a != b)
        let pods = [CompiledPod(name: "a", address: v4("10.244.1.10"), ingress: [a], egress: nil),
                    CompiledPod(name: "b", address: v4("10.244.1.11"), ingress: [b], egress: nil)]
        let r = PolicyRuleset.ruleset(pods)
        let marks = Set(r.set("ingress-rules", in: PolicyRuleset.table)!.elements.map { $0.key[0] })
        #expect(marks.count == 2, "each rule has its own mark")
        let groups = r.chains.filter { $0.name.hasPrefix("ingress-") }
        #expect(groups.count == 2, "two group chains, one per rule")
    }

    /// Two pods of the node with one address (one finished but still listed, say): one map key,
    /// and where their rules differ the address allows nothing on that side.
    @Test func podsSharingAnAddressFailClosed() {
        let allowAll = CompiledRule(label: "shop/open ingress[0]", policy: policyKey, peers: [.all], ports: [.all])
        let a = CompiledPod(name: "shop/a", address: v4("10.244.1.10"), ingress: [allowAll], egress: nil)
        let b = CompiledPod(name: "shop/b", address: v4("10.244.1.10"), ingress: [], egress: [])
        let r = PolicyRuleset.ruleset([a, b])
        #expect(transaction(from: nil, to: r).validationError == nil)
        let dispatch = r.set("ingress-pods", in: PolicyRuleset.table)!.elements
        #expect(dispatch.count == 1)
        #expect(r.set("ingress-rules", in: PolicyRuleset.table)!.elements.isEmpty, "the open rule is not programmed for the shared address")
        #expect(r.set("egress-pods", in: PolicyRuleset.table)!.elements.isEmpty == false)
        let problems = PolicyRuleset.problems([a, b])
        #expect(problems.count == 1 && problems[0].reason.contains("share address 10.244.1.10"), "\(problems)")
        // The same rules on both: nothing lost, nothing to report.
        let twin = CompiledPod(name: "shop/c", address: v4("10.244.1.10"), ingress: [allowAll], egress: nil)
        #expect(PolicyRuleset.ruleset([a, twin]) == PolicyRuleset.ruleset([a]))
        #expect(PolicyRuleset.problems([a, twin]).isEmpty)
    }

    @Test func failingClosedDeniesOnlyTheSidesTheExcludedPolicyTouches() {
        let other = ObjectKey(kind: .networkPolicy, namespace: "shop", name: "other")
        let fromBad = CompiledRule(label: "shop/web ingress[0]", policy: policyKey, peers: [.all], ports: [PortRange(proto: 6, 80, 80)])
        let fromOther = CompiledRule(label: "shop/other egress[0]", policy: other, peers: [.all], ports: [.all])
        let pod = CompiledPod(name: "shop/a", address: v4("10.244.1.10"), ingress: [fromBad], egress: [fromOther],
                              ingressPolicies: [policyKey], egressPolicies: [other])
        let closed = pod.failingClosed(excluding: [policyKey])
        #expect(closed.ingress == [] && closed.egress == [fromOther])
        // A default deny of the excluded policy (no rule of its own) still closes the side it isolates.
        let deny = CompiledPod(name: "shop/b", address: v4("10.244.1.11"), ingress: [fromOther], egress: nil,
                               ingressPolicies: [policyKey, other])
        #expect(deny.failingClosed(excluding: [policyKey]).ingress == [])
        #expect(deny.failingClosed(excluding: []).ingress == [fromOther])
    }
}
