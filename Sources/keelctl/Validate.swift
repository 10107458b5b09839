import ArgumentParser
import Cluster

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a manifest folder as keeld reads it: every problem with its file, object and field.",
        discussion: """
            The same checks keeld applies, by Kubernetes' validation rules. An error means keeld skips the object \
            (the rest is served); a warning means keeld serves it but ignores a part of it (an IPv6 address while \
            the data path is IPv4-only, a node port on a ClusterIP Service) or Kubernetes would refuse it. \
            Exits 1 when there are errors (with --strict, warnings too).
            """)

    @Option(help: "Folder of Kubernetes manifests (YAML/JSON).")
    var manifests: String

    @Option(help: "Output format: text or json.")
    var output: OutputFormat = .text

    @Flag(help: "Exit 1 on warnings too.")
    var strict = false

    func run() throws {
        let (snapshot, problems) = loadManifests(manifests)
        let errors = problems.filter(\.isError), warnings = problems.filter { !$0.isError }
        // What the policy enforcer would not program as asked (PolicyRuleset.problems), per node.
        let policyWarnings = policyProgrammingWarnings(snapshot)
        switch output {
        case .text:
            print("nodes: \(snapshot.nodes.count), services: \(snapshot.services.count), endpoint slices: \(snapshot.endpointSlices.count), "
                + "pods: \(snapshot.pods.count), namespaces: \(snapshot.namespaces.count), network policies: \(snapshot.networkPolicies.count)")
            for p in errors { print("error: \(p)") }
            for p in warnings { print("warning: \(p)") }
            for w in policyWarnings { print("warning: \(w)") }
            print(problems.isEmpty ? "no problems" : "\(errors.count) error(s) (objects skipped), \(warnings.count) warning(s) (objects kept)")
        case .json:
            let items = problems.map { p in
                "{\"severity\":\(jsonString(p.severity.rawValue)),\"file\":\(jsonString(p.file)),\"kind\":\(jsonString(p.kind ?? "")),"
                    + "\"object\":\(jsonString(p.objectName ?? "")),\"field\":\(jsonString(p.field)),\"reason\":\(jsonString(p.reason))}"
            }
            print("{\"problems\":[\(items.joined(separator: ","))],\"policyWarnings\":[\(policyWarnings.map(jsonString).joined(separator: ","))]}")
        }
        if !errors.isEmpty || (strict && !(warnings.isEmpty && policyWarnings.isEmpty)) { throw ExitCode(1) }
    }
}
