import Cluster
import NetAddress
import Testing

@Suite struct NodeValidationTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var nodes: [(String, [String], String)]   // name, pod CIDRs, origin file
        var valid: [String]
        var problems: [(file: String, node: String, field: String, mentions: String)]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "disjoint", nodes: [("n1", ["10.244.1.0/24"], "a.yaml"), ("n2", ["10.244.2.0/24"], "a.yaml")],
             valid: ["n1", "n2"], problems: []),
        Case(name: "same pod CIDR: the later one goes",
             nodes: [("n1", ["10.244.1.0/24"], "a.yaml"), ("n2", ["10.244.1.0/24"], "b.yaml"), ("n3", ["10.244.3.0/24"], "b.yaml")],
             valid: ["n1", "n3"], problems: [("b.yaml", "n2", "spec.podCIDR", "Node \"n1\"")]),
        Case(name: "containing prefix overlaps",
             nodes: [("n1", ["10.244.1.0/24"], "a.yaml"), ("n2", ["10.244.0.0/16"], "a.yaml")],
             valid: ["n1"], problems: [("a.yaml", "n2", "spec.podCIDR", "10.244.0.0/16 overlaps 10.244.1.0/24")]),
        Case(name: "IPv6 half of a dual-stack node overlaps",
             nodes: [("n1", ["10.244.1.0/24", "fd00:1::/64"], "a.yaml"), ("n2", ["10.244.2.0/24", "fd00:1::/64"], "a.yaml")],
             valid: ["n1"], problems: [("a.yaml", "n2", "spec.podCIDRs[1]", "Node \"n1\"")]),
        Case(name: "families never overlap", nodes: [("n1", ["10.244.1.0/24"], "a.yaml"), ("n2", ["::/0"], "a.yaml")],
             valid: ["n1", "n2"], problems: []),
        Case(name: "a rejected node does not block a third",
             nodes: [("n1", ["10.244.1.0/24"], "a.yaml"), ("n2", ["10.244.0.0/16"], "a.yaml"), ("n3", ["10.244.2.0/24"], "a.yaml")],
             valid: ["n1", "n3"], problems: [("a.yaml", "n2", "spec.podCIDR", "n1")]),
        Case(name: "duplicate name", nodes: [("n1", ["10.244.1.0/24"], "a.yaml"), ("n1", ["10.244.2.0/24"], "b.yaml")],
             valid: ["n1"], problems: [("b.yaml", "n1", "metadata.name", "first defined in a.yaml")]),
        Case(name: "nodes without pod CIDRs", nodes: [("n1", [], "a.yaml"), ("n2", [], "a.yaml")],
             valid: ["n1", "n2"], problems: []),
    ]

    @Test(arguments: cases)
    func crossNodeRules(_ c: Case) {
        let input = c.nodes.map { name, cidrs, file in
            (node: Node(name: name, podCIDRs: cidrs.map(cidr), internalIPs: [ip("10.0.0.1")]), origin: file)
        }
        let r = validateNodes(input)
        #expect(r.valid.map(\.name) == c.valid)
        #expect(r.problems.count == c.problems.count, "\(r.problems)")
        for (p, e) in zip(r.problems, c.problems) {
            #expect(p.file == e.file && p.objectName == e.node && p.field == e.field && p.kind == "Node", "\(p)")
            #expect(p.reason.contains(e.mentions), "\(p.reason)")
        }
    }

    /// The stable order is file name, then document order, whatever order the files are given in.
    @Test func firstByFileNameThenDocumentWins() {
        let a = nodeYAML("alpha", podCIDR: "10.244.1.0/24", ip: "10.0.0.1")
        let b = nodeYAML("beta", podCIDR: "10.244.1.0/24", ip: "10.0.0.2") + "---\n"
            + nodeYAML("gamma", podCIDR: "10.244.1.0/24", ip: "10.0.0.3")
        for files in [[("b.yaml", b), ("a.yaml", a)], [("a.yaml", a), ("b.yaml", b)]] {
            let r = ManifestDecoder.decode(files: files)
            #expect(r.objects.compactMap(\.node?.name) == ["alpha"])
            #expect(r.problems.map { "\($0.file) \($0.objectName ?? "")" } == ["b.yaml beta", "b.yaml gamma"])
        }
    }
}
