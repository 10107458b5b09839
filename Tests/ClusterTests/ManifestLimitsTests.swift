import Cluster
import Foundation
import Testing

/// Input that would overflow the recursive decoders' stack, or blow up in size, is a problem naming
/// the file (or object) and the limit, found before the recursive parser runs.
@Suite struct ManifestLimitsTests {
    static let deep = 5_000
    let service = serviceYAML("web", spec: "clusterIP: 10.96.0.10\nports:\n- port: 80")

    static let deepDocuments = [
        "flow sequences": "kind: ConfigMap\ndata: " + String(repeating: "[", count: deep) + "\n",
        "flow mappings": "kind: ConfigMap\ndata: " + String(repeating: "{a: ", count: deep) + "\n",
        "compact block sequences": "kind: ConfigMap\ndata:\n" + String(repeating: "- ", count: deep) + "x\n",
        "brackets closed": "kind: ConfigMap\ndata: " + String(repeating: "[", count: deep) + String(repeating: "]", count: deep) + "\n",
    ]

    @Test(arguments: ["flow sequences", "flow mappings", "compact block sequences", "brackets closed"])
    func deepYAMLDocumentIsSkippedAndTheOthersKept(shape: String) throws {
        let deepDocument = try #require(Self.deepDocuments[shape])
        let text = service + "---\n" + deepDocument + "---\n" + serviceYAML("db", spec: "clusterIP: 10.96.0.11\nports:\n- port: 5432")
        let decoded = ManifestDecoder.decode(files: [(name: "deep.yaml", text: text)])
        #expect(decoded.objects.map(\.metadata.name) == ["web", "db"], "\(shape)")
        #expect(decoded.problems.count == 1)
        let problem = decoded.problems.first
        #expect(problem?.file == "deep.yaml" && problem?.document == 2)
        #expect(problem?.description == "deep.yaml: document 2: nested more than 100 levels deep (limit 100)")
    }

    @Test func deepJSONFileIsSkipped() {
        let json = #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":"# + String(repeating: "[", count: Self.deep)
        let decoded = ManifestDecoder.decode(files: [(name: "x.json", text: json), (name: "y.yaml", text: service)])
        #expect(decoded.objects.map(\.metadata.name) == ["web"])
        #expect(decoded.problems.map(\.description) == ["x.json: document 1: nested more than 100 levels deep (limit 100)"])
    }

    @Test func depthAtTheLimitIsDecodedAndOneMoreIsNot() {
        let limits = ManifestLimits(maxDepth: 6)
        // metadata.annotations is depth 2; a list in a ConfigMap's data adds the rest.
        func doc(_ depth: Int) -> String {
            "apiVersion: v1\nkind: ConfigMap\ndata: " + String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1) + "\n"
        }
        #expect(limits.yamlProblem(doc(6)) == nil)
        #expect(limits.yamlProblem(doc(7)) == "nested more than 6 levels deep (limit 6)")
        #expect(limits.jsonProblem(Array("[[[[[[\"]]]]]]]]\"]]]]]]".utf8)) == nil, "brackets in strings do not count")
        #expect(limits.jsonProblem(Array("[[[[[[[]]]]]]]".utf8)) == "nested more than 6 levels deep (limit 6)")
        // A decode at the default limit runs (on this test's thread) without trouble.
        let atLimit = "apiVersion: v1\nkind: ConfigMap\ndata: " + String(repeating: "[", count: 99) + String(repeating: "]", count: 99) + "\n"
        #expect(ManifestDecoder.decode(atLimit, file: "ok.yaml").problems.isEmpty)
    }

    @Test func aDecodeAtTheDepthLimitFitsAConcurrencyThreadsStack() async {
        // keeld decodes manifests on Swift concurrency threads: the default limit must fit their stack.
        // The document's mapping and metadata are 2 levels: 98 more is the limit of 100.
        let nested = String(repeating: "{metadata: ", count: 98) + "x" + String(repeating: "}", count: 98)
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  annotations: " + nested + "\n"
        let result = await Task.detached { ManifestDecoder.decode(text, file: "x.yaml") }.value
        #expect(result.objects.isEmpty && result.problems.count == 1)
        #expect(result.problems.first?.field.hasPrefix("metadata.annotations") == true, "reached the decoder, which refused the shape")
    }

    @Test func aliasesThatExpandTooFarAreSkipped() {
        var lines = ["kind: ConfigMap", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for i in 1...8 { lines.append("a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]") }
        let decoded = ManifestDecoder.decode(lines.joined(separator: "\n") + "\n", file: "laughs.yaml")
        #expect(decoded.problems.map(\.description) == ["laughs.yaml: document 1: aliases expand to more than 100000 nodes (limit 100000)"])
        // A few aliases are fine.
        let few = service + "  labels: &l {app: web}\n"
        #expect(ManifestLimits.default.yamlProblem(few) == nil)
    }

    @Test func fileOverTheSizeLimitIsSkipped() {
        let limits = ManifestLimits(maxBytes: 100)
        let decoded = ManifestDecoder.decode(files: [(name: "big.yaml", text: service + String(repeating: "#", count: 200))], limits: limits)
        #expect(decoded.objects.isEmpty)
        #expect(decoded.problems.map(\.description).first?.hasPrefix("big.yaml: file is ") == true)
        #expect(decoded.problems.first?.reason.hasSuffix("larger than the limit of 100 bytes") == true)
    }

    @Test func deepJSONObjectIsAProblemWithItsKindAndName() {
        let json = #"{"metadata":{"name":"web","namespace":"prod"},"spec":{"x":"# + String(repeating: "[", count: Self.deep) + "}}"
        let decoded = ManifestDecoder.combine([ManifestDecoder.decodeJSON(Data(json.utf8), origin: "apiserver", impliedKind: .service)])
        #expect(decoded.objects.isEmpty)
        #expect(decoded.problems.map(\.description) == ["apiserver: Service \"web\": nested more than 100 levels deep (limit 100)"])
    }

    @Test func deepItemOfAListPageIsSkippedAndTheOthersKept() {
        func item(_ name: String, _ ip: String, extra: String = "") -> String {
            #"{"metadata":{"name":"\#(name)","namespace":"default"\#(extra)},"spec":{"clusterIP":"\#(ip)","ports":[{"port":80}]}}"#
        }
        let deepItem = item("deep", "10.96.0.2", extra: #","annotations":{"a":"# + String(repeating: "[", count: Self.deep)
            + String(repeating: "]", count: Self.deep) + "}")
        let page = #"{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":["#
            + [item("a", "10.96.0.1"), deepItem, item("b", "10.96.0.3")].joined(separator: ",") + "]}"
        let part = ManifestDecoder.decodeJSON(Data(page.utf8), origin: "apiserver")
        #expect(part.unreadable == nil, "the rest of the page is a list")
        let decoded = ManifestDecoder.combine([part])
        #expect(decoded.objects.map(\.metadata.name) == ["a", "b"])
        #expect(decoded.problems.map(\.description) == ["apiserver: Service \"deep\": nested more than 100 levels deep (limit 100)"])
    }

    @Test func deepWatchEventKeepsItsTypeAndName() throws {
        let line = #"{"type":"MODIFIED","object":{"metadata":{"name":"web","resourceVersion":"9"},"spec":"#
            + String(repeating: "[", count: Self.deep) + String(repeating: "]", count: Self.deep) + "}}"
        let event = try #require(WatchEvent(line: Array(line.utf8)[...]))
        #expect(event.type == "MODIFIED")
        #expect(event.head.metadata?.name == "web" && event.head.metadata?.resourceVersion == "9")
        let decoded = ManifestDecoder.combine([ManifestDecoder.decodeJSON(Data(event.object), origin: "apiserver", impliedKind: .service)])
        #expect(decoded.objects.isEmpty)
        #expect(decoded.problems.map(\.description) == ["apiserver: Service \"web\": nested more than 100 levels deep (limit 100)"])
        // Deep metadata: no name is read from it, and still no crash.
        let deepMeta = #"{"type":"ADDED","object":{"metadata":"# + String(repeating: "[", count: Self.deep) + "}}"
        #expect(WatchEvent(line: Array(deepMeta.utf8)[...])?.head.metadata == nil)
        #expect(WatchEvent.ObjectHead(json: Array(("{\"reason\":" + String(repeating: "[", count: Self.deep)).utf8)) == nil)
    }

    @Test func keeldsFolderReadSkipsADeepFileAndServesTheRest() async throws {
        try await withTemporaryFolder { dir in
            try write("apiVersion: v1\nkind: Service\nmetadata: {name: evil}\nspec: " + String(repeating: "[", count: Self.deep) + "\n",
                      to: dir + "/evil.yaml")
            try write(service, to: dir + "/web.yaml")
            let (logger, log) = capturingLogger()
            let store = ClusterStore()
            // On a concurrency thread, as keeld's source runs.
            let problems = await Task.detached { ManifestDirectorySource(directory: dir, logger: logger).loadOnce(into: store) }.value
            #expect(store.snapshot().services.keys.map(\.name) == ["web"])
            #expect(problems.map(\.description) == ["evil.yaml: document 1: nested more than 100 levels deep (limit 100)"])
            #expect(log.all.contains { $0.level == .warning && $0.metadata["manifest.file"] == "evil.yaml" && $0.message.contains("limit 100") })
        }
    }
}
