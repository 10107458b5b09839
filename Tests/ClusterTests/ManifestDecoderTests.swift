import Cluster
import Foundation
import NetAddress
import Testing

@Suite struct ManifestDecoderTests {
    @Test func multiDocumentYAMLWithUnknownKinds() {
        let text = """
        # a folder may hold anything
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        ---
        \(nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "192.168.1.11"))
        ---
        apiVersion: example.com/v1
        kind: Node
        metadata: {name: not-a-core-node}
        ---
        just a scalar
        ---
        \(nodeYAML("node2", podCIDR: "10.244.2.0/24", ip: "192.168.1.12"))
        ---
        """
        let r = ManifestDecoder.decode(text, file: "nodes.yaml")
        #expect(r.problems == [])
        #expect(r.objects.compactMap(\.node?.name) == ["node1", "node2"])
        #expect(r.objects.first?.key == ObjectKey(kind: .node, name: "node1"))
    }

    @Test func nodeFields() throws {
        let text = """
        apiVersion: v1
        kind: Node
        metadata:
          name: node1
          uid: 0b7a-11
          resourceVersion: "42"
          labels: {kubernetes.io/hostname: node1}
          annotations: {keel.dev/note: hello}
        spec:
          podCIDR: 10.244.1.0/24
          podCIDRs: [10.244.1.0/24, "fd00:10:244:1::/64"]
          unschedulable: true
        status:
          addresses:
          - {type: Hostname, address: node1}
          - {type: InternalIP, address: 192.168.1.11}
          - {type: ExternalIP, address: 203.0.113.7}
          - {type: InternalIP, address: "fd00::11"}
        """
        let r = ManifestDecoder.decode(text, file: "n.yaml")
        #expect(r.problems == [])
        let node = try #require(r.objects.first?.node)
        #expect(node.name == "node1")
        #expect(node.metadata.uid == "0b7a-11" && node.metadata.resourceVersion == "42")
        #expect(node.metadata.labels == ["kubernetes.io/hostname": "node1"])
        #expect(node.metadata.annotations == ["keel.dev/note": "hello"])
        #expect(node.podCIDRs == [cidr("10.244.1.0/24"), cidr("fd00:10:244:1::/64")])
        #expect(node.internalIPs == [ip("192.168.1.11"), ip("fd00::11")])
        #expect(node.addresses.count == 4 && node.addresses[0] == NodeAddress(type: .hostname, address: "node1"))
        #expect(node.unschedulable)
    }

    @Test(arguments: [
        ("podCIDR only", "podCIDR: 10.244.1.0/24", ["10.244.1.0/24"]),
        ("podCIDRs only", "podCIDRs: [10.244.1.0/24]", ["10.244.1.0/24"]),
        ("dual-stack", "podCIDRs: [\"fd00:1::/64\", 10.244.1.0/24]", ["fd00:1::/64", "10.244.1.0/24"]),
        ("none allocated yet", "unschedulable: false", []),
    ])
    func podCIDRForms(name: String, spec: String, expected: [String]) throws {
        let text = "apiVersion: v1\nkind: Node\nmetadata: {name: n}\nspec:\n  \(spec)\nstatus: {addresses: [{type: InternalIP, address: 10.0.0.1}]}\n"
        let r = ManifestDecoder.decode(text, file: "n.yaml")
        #expect(r.problems == [], "\(name)")
        let node = try #require(r.objects.first?.node)
        #expect(node.podCIDRs == expected.map(cidr), "\(name)")
    }

    struct Malformed: Sendable, CustomTestStringConvertible {
        var name: String
        var yaml: String
        var objectName: String?
        var field: String
        var reasonContains: String
        var testDescription: String { name }
    }

    static let malformed: [Malformed] = [
        Malformed(name: "podCIDR not a CIDR", yaml: nodeYAML("node2", podCIDR: "10.244.300.0/24", ip: "10.0.0.2"),
                  objectName: "node2", field: "spec.podCIDR", reasonContains: "\"10.244.300.0/24\" is not a CIDR"),
        Malformed(name: "podCIDR without prefix", yaml: nodeYAML("node2", podCIDR: "10.244.3.0", ip: "10.0.0.2"),
                  objectName: "node2", field: "spec.podCIDR", reasonContains: "is not a CIDR"),
        Malformed(name: "host bits set", yaml: nodeYAML("node2", podCIDR: "10.244.3.1/24", ip: "10.0.0.2"),
                  objectName: "node2", field: "spec.podCIDR", reasonContains: "host bits set (network is 10.244.3.0/24)"),
        Malformed(name: "bad second podCIDRs entry",
                  yaml: "apiVersion: v1\nkind: Node\nmetadata: {name: node2}\nspec: {podCIDRs: [10.244.3.0/24, \"fd00::/129\"]}\nstatus: {addresses: [{type: InternalIP, address: 10.0.0.2}]}",
                  objectName: "node2", field: "spec.podCIDRs[1]", reasonContains: "\"fd00::/129\" is not a CIDR"),
        Malformed(name: "two IPv4 pod CIDRs",
                  yaml: "apiVersion: v1\nkind: Node\nmetadata: {name: node2}\nspec: {podCIDRs: [10.244.3.0/24, 10.244.4.0/24]}\nstatus: {addresses: [{type: InternalIP, address: 10.0.0.2}]}",
                  objectName: "node2", field: "spec.podCIDRs", reasonContains: "more than one IPv4 CIDR"),
        Malformed(name: "podCIDRs[0] differs from podCIDR",
                  yaml: "apiVersion: v1\nkind: Node\nmetadata: {name: node2}\nspec: {podCIDR: 10.244.9.0/24, podCIDRs: [10.244.3.0/24]}\nstatus: {addresses: [{type: InternalIP, address: 10.0.0.2}]}",
                  objectName: "node2", field: "spec.podCIDRs[0]", reasonContains: "does not match spec.podCIDR"),
        Malformed(name: "no addresses", yaml: nodeYAML("node2", podCIDR: "10.244.3.0/24", ip: nil),
                  objectName: "node2", field: "status.addresses", reasonContains: "no InternalIP address"),
        Malformed(name: "InternalIP does not parse", yaml: nodeYAML("node2", podCIDR: "10.244.3.0/24", ip: "10.0.0.256"),
                  objectName: "node2", field: "status.addresses", reasonContains: "\"10.0.0.256\""),
        Malformed(name: "only an ExternalIP",
                  yaml: "apiVersion: v1\nkind: Node\nmetadata: {name: node2}\nstatus: {addresses: [{type: ExternalIP, address: 10.0.0.2}]}",
                  objectName: "node2", field: "status.addresses", reasonContains: "no InternalIP address"),
        Malformed(name: "missing name", yaml: "apiVersion: v1\nkind: Node\nmetadata: {labels: {a: b}}\nstatus: {addresses: [{type: InternalIP, address: 10.0.0.2}]}",
                  objectName: nil, field: "metadata.name", reasonContains: "missing"),
        Malformed(name: "podCIDRs is a string",
                  yaml: "apiVersion: v1\nkind: Node\nmetadata: {name: node2}\nspec: {podCIDRs: 10.244.3.0/24}\nstatus: {addresses: [{type: InternalIP, address: 10.0.0.2}]}",
                  objectName: "node2", field: "spec.podCIDRs", reasonContains: "expected a list"),
        Malformed(name: "address entry without type",
                  yaml: "apiVersion: v1\nkind: Node\nmetadata: {name: node2}\nstatus: {addresses: [{address: 10.0.0.2}]}",
                  objectName: "node2", field: "status.addresses[0].type", reasonContains: "missing"),
        Malformed(name: "unschedulable not a boolean",
                  yaml: "apiVersion: v1\nkind: Node\nmetadata: {name: node2}\nspec: {unschedulable: maybe}\nstatus: {addresses: [{type: InternalIP, address: 10.0.0.2}]}",
                  objectName: "node2", field: "spec.unschedulable", reasonContains: "expected a boolean"),
        Malformed(name: "labels not a map",
                  yaml: "apiVersion: v1\nkind: Node\nmetadata: {name: node2, labels: [a]}\nstatus: {addresses: [{type: InternalIP, address: 10.0.0.2}]}",
                  objectName: "node2", field: "metadata.labels", reasonContains: "expected a map"),
        Malformed(name: "no apiVersion", yaml: "kind: Node\nmetadata: {name: node2}",
                  objectName: "node2", field: "apiVersion", reasonContains: "missing"),
    ]

    /// Each malformed node is reported with file, name and field, and skipped; its neighbours stay.
    @Test(arguments: malformed)
    func malformedNodeIsReportedAndSkipped(_ c: Malformed) throws {
        let text = [nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "10.0.0.1"), c.yaml,
                    nodeYAML("node3", podCIDR: "10.244.5.0/24", ip: "10.0.0.3")].joined(separator: "\n---\n")
        let r = ManifestDecoder.decode(text, file: "nodes.yaml")
        #expect(r.objects.compactMap(\.node?.name) == ["node1", "node3"])
        let p = try #require(r.problems.first)
        #expect(r.problems.count == 1, "\(r.problems)")
        #expect(p.file == "nodes.yaml")
        #expect(p.kind == "Node")
        #expect(p.objectName == c.objectName)
        #expect(p.field == c.field)
        #expect(p.reason.contains(c.reasonContains), "\(p.reason)")
        if c.objectName == nil { #expect(p.document == 2) }
    }

    @Test func problemDescription() {
        let r = ManifestDecoder.decode(nodeYAML("node2", podCIDR: "10.244.300.0/24", ip: "10.0.0.2"), file: "nodes.yaml")
        #expect(r.problems.map(\.description) == [#"nodes.yaml: Node "node2": spec.podCIDR: "10.244.300.0/24" is not a CIDR"#])
    }

    @Test func allBadFieldsOfOneNodeAreReported() {
        let r = ManifestDecoder.decode(nodeYAML("node2", podCIDR: "nope", ip: nil), file: "nodes.yaml")
        #expect(r.objects.isEmpty)
        #expect(r.problems.map(\.field) == ["spec.podCIDR", "status.addresses"])
    }

    @Test func syntaxErrorInOneDocumentKeepsTheOthers() throws {
        let text = nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "10.0.0.1") + "---\nkind: Node\nmetadata: {name: [unclosed\n---\n"
            + nodeYAML("node3", podCIDR: "10.244.3.0/24", ip: "10.0.0.3")
        let r = ManifestDecoder.decode(text, file: "nodes.yaml")
        #expect(r.objects.compactMap(\.node?.name) == ["node1", "node3"])
        let p = try #require(r.problems.first)
        #expect(r.problems.count == 1 && p.document == 2 && p.reason.hasPrefix("not valid YAML"))
    }

    @Test func jsonSingleObjectWithTabs() throws {
        let json = "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"Node\",\n\t\"metadata\": {\"name\": \"node1\", \"labels\": {\"a\": \"b\"}},\n\t\"spec\": {\"podCIDR\": \"10.244.1.0/24\", \"unschedulable\": false},\n\t\"status\": {\"addresses\": [{\"type\": \"InternalIP\", \"address\": \"10.0.0.1\"}]}\n}\n"
        let r = ManifestDecoder.decode(json, file: "node1.json")
        #expect(r.problems == [])
        let node = try #require(r.objects.first?.node)
        #expect(node.name == "node1" && node.podCIDRs == [cidr("10.244.1.0/24")] && node.metadata.labels == ["a": "b"])
    }

    @Test func jsonV1ListWithOneBadItem() {
        let json = """
        {"apiVersion": "v1", "kind": "List", "items": [
          {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"}, "spec": {"podCIDR": "10.244.1.0/24"},
           "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}},
          {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node2"}, "spec": {"podCIDRs": ["10.244.2.0/24", 7]},
           "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
        ]}
        """
        let r = ManifestDecoder.decode(json, file: "list.json")
        #expect(r.objects.compactMap(\.node?.name) == ["node1"])
        #expect(r.problems.map { [$0.objectName, $0.field] } == [["node2", "spec.podCIDRs[1]"]])
    }

    @Test func typedNodeListItemsWithoutKind() {
        let yaml = """
        apiVersion: v1
        kind: NodeList
        metadata: {resourceVersion: "7"}
        items:
        - metadata: {name: node1}
          spec: {podCIDR: 10.244.1.0/24}
          status: {addresses: [{type: InternalIP, address: 10.0.0.1}]}
        - metadata: {name: node2}
          spec: {podCIDR: 10.244.2.0/24}
          status: {addresses: [{type: InternalIP, address: 10.0.0.2}]}
        """
        let r = ManifestDecoder.decode(yaml, file: "nodes.yaml")
        #expect(r.problems == [])
        #expect(r.objects.compactMap(\.node?.name) == ["node1", "node2"])
    }

    @Test func nodeCodableRoundTripsThroughWireShape() throws {
        let node = Node(metadata: ObjectMeta(name: "node1", labels: ["a": "b"]),
                        podCIDRs: [cidr("10.244.1.0/24"), cidr("fd00:1::/64")],
                        addresses: [NodeAddress(type: .internalIP, address: "10.0.0.1")], unschedulable: true)
        let data = try JSONEncoder().encode(node)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["kind"] as? String == "Node")
        #expect((object["spec"] as? [String: Any])?["podCIDR"] as? String == "10.244.1.0/24")
        #expect(try JSONDecoder().decode(Node.self, from: data) == node)
        let bad = Data(#"{"metadata": {"name": "x"}, "spec": {"podCIDR": "10.244.1.1/24"}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Node.self, from: bad) }
    }
}

@Suite struct OverlayTests {
    let base = nodeYAML("node1", podCIDR: "10.244.1.0/24", ip: "10.0.0.1",
                        extra: "  labels: {zone: a}\n  annotations: {keel.dev/a: base, keel.dev/b: base}\n")

    @Test func overlayMergesLabelsAndAnnotationsOverlayWins() throws {
        let overlay = """
        apiVersion: v1
        kind: Node
        metadata:
          name: node1
          labels: {keel.dev/ready: "true"}
          annotations: {keel.dev/b: overlay, keel.dev/vtep-mac: "02:42:0a:00:00:01"}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: ghost, annotations: {x: y}}
        """
        let r = ManifestDecoder.decode(files: [("node1.keel-overlay.yaml", overlay), ("nodes.yaml", base)])
        #expect(r.problems == [])
        let node = try #require(r.objects.first?.node)
        #expect(r.objects.count == 1)
        #expect(node.metadata.labels == ["zone": "a", "keel.dev/ready": "true"])
        #expect(node.metadata.annotations == ["keel.dev/a": "base", "keel.dev/b": "overlay",
                                              "keel.dev/vtep-mac": "02:42:0a:00:00:01"])
    }

    @Test func laterOverlayFileWins() throws {
        let o1 = "apiVersion: v1\nkind: Node\nmetadata: {name: node1, annotations: {k: one}}"
        let o2 = "apiVersion: v1\nkind: Node\nmetadata: {name: node1, annotations: {k: two}}"
        let r = ManifestDecoder.decode(files: [("b.keel-overlay.yaml", o2), ("a.keel-overlay.yaml", o1), ("nodes.yaml", base)])
        let node = try #require(r.objects.first?.node)
        #expect(node.metadata.annotations["k"] == "two")
    }

    @Test func overlayAloneIsNotAnObjectNorAProblem() {
        let r = ManifestDecoder.decode("apiVersion: v1\nkind: Node\nmetadata: {name: node1, annotations: {k: v}}",
                                       file: "node1.keel-overlay.yaml")
        #expect(r.objects.isEmpty && r.problems.isEmpty)
    }
}
