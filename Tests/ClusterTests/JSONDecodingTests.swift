import Cluster
import Foundation
import Testing

/// The API source decodes JSON with Foundation's decoder, never through YAML: same objects, same
/// problems (field and reason) as the manifest path gives for the same text.
@Suite struct JSONDecodingTests {
    static let documents: [String] = [
        // A LIST page: items without kind, one good, one with a bad port, one with a wrong shape.
        """
        {"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"12"},"items":[
         {"metadata":{"name":"web","namespace":"shop","labels":{"app":"web"}},"spec":{"type":"NodePort","clusterIP":"10.96.0.10",
          "clusterIPs":["10.96.0.10"],"ports":[{"name":"http","port":80,"targetPort":"http","nodePort":30080,"protocol":"TCP"}]}},
         {"metadata":{"name":"bad-port","namespace":"shop"},"spec":{"clusterIP":"10.96.0.11","ports":[{"port":70000}]}},
         {"metadata":{"name":"bad-shape","namespace":"shop"},"spec":{"clusterIP":"10.96.0.12","ports":"80"}},
         {"metadata":{"name":"bad-type","namespace":"shop"},"spec":{"clusterIP":"10.96.0.13","ports":[{"port":"eighty"}]}}]}
        """,
        """
        {"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{},"items":[
         {"metadata":{"name":"web-1","namespace":"shop","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4",
          "endpoints":[{"addresses":["10.244.1.5"],"conditions":{"ready":true,"serving":true,"terminating":false},"nodeName":"n1",
                        "hints":{"forZones":[{"name":"z1"}]}},
                       {"addresses":["10.244.1.6"],"conditions":{"ready":false}}],
          "ports":[{"name":"http","port":8080,"protocol":"TCP"}]},
         {"metadata":{"name":"web-2","namespace":"shop"},"addressType":"IPv4","endpoints":[{"addresses":["fd00::1"]}]},
         {"metadata":{"name":"web-3","namespace":"shop"},"addressType":"IPv4","endpoints":[{"conditions":{"ready":"maybe"}}]}]}
        """,
        // One object with its own kind, as a watch event carries it.
        """
        {"kind":"Pod","apiVersion":"v1","metadata":{"name":"p1","namespace":"shop","labels":{"app":"web"}},
         "spec":{"nodeName":"n1","containers":[{"name":"c","ports":[{"name":"http","containerPort":8080}]}]},
         "status":{"phase":"Running","podIP":"10.244.1.5","podIPs":[{"ip":"10.244.1.5"}]}}
        """,
        """
        {"kind":"NetworkPolicyList","apiVersion":"networking.k8s.io/v1","items":[
         {"metadata":{"name":"np","namespace":"shop"},"spec":{"podSelector":{"matchLabels":{"app":"web"}},"policyTypes":["Ingress"],
          "ingress":[{"from":[{"podSelector":{"matchExpressions":[{"key":"app","operator":"In","values":["a","b"]}]}},
                              {"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}}],"ports":[{"protocol":"TCP","port":8080}]}]}},
         {"metadata":{"name":"np-bad","namespace":"shop"},"spec":{"podSelector":{},"policyTypes":["Sideways"]}}]}
        """,
        """
        {"kind":"NodeList","apiVersion":"v1","items":[
         {"metadata":{"name":"n1"},"spec":{"podCIDR":"10.244.1.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"}]}},
         {"metadata":{"name":"n2"},"spec":{"podCIDR":"10.244.1.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.2"}]}}]}
        """,
        """
        {"kind":"NamespaceList","apiVersion":"v1","items":[{"metadata":{"name":"shop","labels":{"team":"a"}}},{"metadata":{}}]}
        """,
    ]

    @Test(arguments: 0..<documents.count)
    func sameObjectsAndProblemsAsTheManifestPath(index: Int) {
        let text = Self.documents[index]
        let viaYAML = ManifestDecoder.decode(text, file: "apiserver")
        let viaJSON = ManifestDecoder.combine([ManifestDecoder.decodeJSON(Data(text.utf8), origin: "apiserver")])
        #expect(!viaYAML.objects.isEmpty || !viaYAML.problems.isEmpty, "the fixture holds something")
        #expect(viaJSON.objects == viaYAML.objects)
        #expect(viaJSON.problems.map { "\($0)" } == viaYAML.problems.map { "\($0)" })
    }

    @Test func anObjectWithoutKindIsTheImpliedOne() {
        let object = #"{"metadata":{"name":"web","namespace":"shop"},"spec":{"clusterIP":"10.96.0.10","ports":[{"port":80}]}}"#
        let asService = ManifestDecoder.combine([ManifestDecoder.decodeJSON(Data(object.utf8), origin: "apiserver", impliedKind: .service)])
        #expect(asService.objects.map(\.key) == [ObjectKey(kind: .service, namespace: "shop", name: "web")])
        let unknown = ManifestDecoder.combine([ManifestDecoder.decodeJSON(Data(object.utf8), origin: "apiserver")])
        #expect(unknown.objects.isEmpty && unknown.problems.isEmpty, "without a kind it is nothing Keel reads")
    }

    /// YAML reads `"yes"` as a boolean; the API's JSON never writes one, and the JSON path is strict.
    @Test func aStringWhereTheAPIHasABooleanIsAProblem() {
        let slice = #"{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"s","namespace":"shop"},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":"yes"}}]}"#
        let decoded = ManifestDecoder.combine([ManifestDecoder.decodeJSON(Data(slice.utf8), origin: "apiserver")])
        #expect(decoded.objects.isEmpty)
        #expect(decoded.problems.map(\.field) == ["endpoints[0].conditions.ready"])
    }

    @Test func textThatIsNotJSONIsUnreadableNotAnEmptyList() {
        let truncated = Self.documents[0].prefix(200)
        let part = ManifestDecoder.decodeJSON(Data(truncated.utf8), origin: "apiserver")
        #expect(part.unreadable != nil)
        #expect(ManifestDecoder.decodeJSON(Data(Self.documents[1].utf8), origin: "apiserver").unreadable == nil)
    }
}
