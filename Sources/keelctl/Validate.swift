import ArgumentParser
import Cluster

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a manifest folder as keeld reads it: every problem with its file, object and field.",
        discussion: "Exits 1 when there are problems (the objects at fault would be skipped by keeld; the rest served).")

    @Option(help: "Folder of Kubernetes manifests (YAML/JSON).")
    var manifests: String

    @Option(help: "Output format: text or json.")
    var output: OutputFormat = .text

    func run() throws {
        let (snapshot, problems) = loadManifests(manifests)
        switch output {
        case .text:
            print("nodes: \(snapshot.nodes.count), services: \(snapshot.services.count), endpoint slices: \(snapshot.endpointSlices.count)")
            for p in problems { print("problem: \(p)") }
            if problems.isEmpty { print("no problems") }
            for w in policyProgrammingWarnings(snapshot) { print("warning: \(w)") }
        case .json:
            let items = problems.map { p in
                "{\"file\":\(jsonString(p.file)),\"kind\":\(jsonString(p.kind ?? "")),\"object\":\(jsonString(p.objectName ?? "")),"
                    + "\"field\":\(jsonString(p.field)),\"reason\":\(jsonString(p.reason))}"
            }
            print("{\"problems\":[\(items.joined(separator: ","))]}")
        }
        if !problems.isEmpty { throw ExitCode(1) }
    }
}
