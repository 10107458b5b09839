import Cluster
import NetAddress
import Testing

/// networking.k8s.io/v1 ServiceCIDR: read from manifests and the API, with Kubernetes' field rules.
@Suite struct ServiceCIDRTests {
    static func yaml(_ cidrs: String, name: String = "kubernetes") -> String {
        "apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata:\n  name: \(name)\n  namespace: ignored\nspec:\n  cidrs: \(cidrs)\n"
    }

    @Test func decodesBothFamiliesClusterScoped() throws {
        let r = ManifestDecoder.decode(Self.yaml(#"["10.96.0.0/16", "fd00:10:96::/108"]"#), file: "cidr.yaml")
        #expect(r.problems.isEmpty, "\(r.problems)")
        guard case .serviceCIDR(let s)? = r.objects.first else { Issue.record("\(r.objects)"); return }
        #expect(s.cidrs == [CIDR("10.96.0.0/16")!, CIDR("fd00:10:96::/108")!])
        #expect(s.key == ObjectKey(kind: .serviceCIDR, name: "kubernetes") && s.metadata.namespace == nil)
    }

    @Test(arguments: [
        ("[]", "spec.cidrs", "missing"),
        (#"["10.96.0.0/16", "10.97.0.0/16"]"#, "spec.cidrs[1]", "at most one per address family"),
        (#"["10.96.0.0/16", "fd00::/108", "10.97.0.0/16"]"#, "spec.cidrs", "at most 2"),
        (#"["10.96.0.300/16"]"#, "spec.cidrs[0]", "not a CIDR"),
        (#"["10.96.0.1"]"#, "spec.cidrs[0]", "not a CIDR"),
    ])
    func badRangesAreProblemsNamingTheField(_ cidrs: String, _ field: String, _ reason: String) {
        let r = ManifestDecoder.decode(Self.yaml(cidrs), file: "cidr.yaml")
        #expect(r.objects.isEmpty)
        #expect(r.problems.contains { $0.field == field && $0.reason.contains(reason) && $0.kind == "ServiceCIDR" }, "\(r.problems)")
    }

    @Test func hostBitsAreCleared() {
        let r = ManifestDecoder.decode(Self.yaml(#"["10.96.7.1/16"]"#), file: "cidr.yaml")
        guard case .serviceCIDR(let s)? = r.objects.first else { Issue.record("\(r.problems)"); return }
        #expect(s.cidrs == [CIDR("10.96.0.0/16")!])
    }
}
