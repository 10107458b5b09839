import ArgumentParser
import Cluster
import NetAddress
import PolicyEnforcer

struct Policy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain NetworkPolicy decisions from the manifests keeld reads (no cluster needed).",
        subcommands: [Explain.self, Matrix.self])
}

/// `80/TCP`, `53/udp`, `8080` (TCP).
struct PortSpec: ExpressibleByArgument {
    var port: UInt16
    var proto: PortProtocol
    init?(argument: String) {
        let parts = argument.split(separator: "/")
        guard let first = parts.first, let p = UInt16(first), parts.count <= 2 else { return nil }
        port = p
        if parts.count == 2 {
            guard let pr = PortProtocol(rawValue: parts[1].uppercased()) else { return nil }
            proto = pr
        } else {
            proto = .tcp
        }
    }
}

/// The manifests as keeld reads them, their problems reported on stderr (those objects are skipped).
func loadPolicyInput(_ manifests: String) -> (ClusterSnapshot, PolicyInput) {
    let (snapshot, problems) = loadManifests(manifests)
    for p in problems { FileHandleStderr.write(problemLine(p) + "\n") }
    return (snapshot, PolicyInput(snapshot: snapshot))
}

func findPod(_ spec: String, in input: PolicyInput) throws -> Pod {
    let parts = spec.split(separator: "/", maxSplits: 1).map(String.init)
    let (ns, name) = parts.count == 2 ? (parts[0], parts[1]) : ("default", parts[0])
    guard let pod = input.pod(namespace: ns, name: name) else { throw ValidationError("no Pod \(ns)/\(name) in the manifests") }
    return pod
}

extension Policy {
    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Is a connection allowed? Prints the verdict of each side and the exact policies and rules that decided it.")

        @Option(help: "Folder of Kubernetes manifests (Pods with status.podIP, Namespaces, NetworkPolicies).")
        var manifests: String
        @Option(help: "Source pod as NAMESPACE/NAME (or an IP address for an outside client).")
        var from: String
        @Option(help: "Destination pod as NAMESPACE/NAME (or an IP address).")
        var to: String
        @Option(help: "Destination port and protocol: PORT[/TCP|UDP|SCTP].")
        var port: PortSpec
        @Option(help: "Output format: text or json.")
        var output: OutputFormat = .text

        func run() throws {
            let (_, input) = loadPolicyInput(manifests)
            func endpoint(_ s: String) throws -> Endpoint {
                if let ip = IPAddress(s) { return .external(ip) }
                let pod = try findPod(s, in: input)
                guard let e = Endpoint.pod(pod) else { throw ValidationError("Pod \(s) has no IPv4 address (status.podIP)") }
                return e
            }
            let flow = Flow(from: try endpoint(from), to: try endpoint(to), port.proto, port: port.port)
            let verdict = evaluate(flow, in: input)
            switch output {
            case .text:
                print("\(flow)")
                print("  egress of the source:      \(verdict.egress)")
                print("  ingress of the destination: \(verdict.ingress)")
                print(verdict.allowed ? "ALLOWED" : "DENIED")
            case .json:
                print("{\"flow\":\(jsonString(flow.description)),\"allowed\":\(verdict.allowed),"
                      + "\"egress\":\(jsonString(verdict.egress.description)),\"ingress\":\(jsonString(verdict.ingress.description))}")
            }
        }
    }

    struct Matrix: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The reachability matrix of all pods for one port: rows are sources, columns destinations.")

        @Option(help: "Folder of Kubernetes manifests (Pods with status.podIP, Namespaces, NetworkPolicies).")
        var manifests: String
        @Option(help: "Destination port and protocol: PORT[/TCP|UDP|SCTP].")
        var port: PortSpec
        @Option(help: "Output format: text or json.")
        var output: OutputFormat = .text

        func run() throws {
            let (snapshot, input) = loadPolicyInput(manifests)
            let pods = snapshot.pods.values.filter { PolicyInput.isSelectablePeer($0) && Endpoint.pod($0) != nil }
                .sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
            let names = pods.map { "\($0.namespace)/\($0.name)" }
            let allowed = pods.map { src in pods.map { dst in
                evaluate(Flow(from: Endpoint.pod(src)!, to: Endpoint.pod(dst)!, port.proto, port: port.port), in: input).allowed
            } }
            switch output {
            case .text:
                let width = max(8, (names.enumerated().map { "\($0.offset) \($0.element)".count }.max() ?? 0) + 2)
                func pad(_ s: String) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }
                print("\(port.port)/\(port.proto)  (rows: from, columns: to; X allowed, . denied)")
                print(pad("") + names.enumerated().map { "\($0.offset)" }.joined(separator: " "))
                for (i, row) in allowed.enumerated() {
                    print(pad("\(i) \(names[i])") + row.enumerated().map { j, ok in
                        String(repeating: " ", count: String(j).count - 1) + (ok ? "X" : ".") }.joined(separator: " "))
                }
            case .json:
                let rows = allowed.map { "[" + $0.map { $0 ? "true" : "false" }.joined(separator: ",") + "]" }
                print("{\"port\":\(port.port),\"protocol\":\(jsonString(port.proto.rawValue)),\"pods\":[\(names.map(jsonString).joined(separator: ","))],\"allowed\":[\(rows.joined(separator: ","))]}")
            }
        }
    }
}

/// What keeld's policy enforcer could not program as asked, on each node with pods in `snapshot`
/// (`PolicyRuleset.problems`), as "node N: problem" lines.
func policyProgrammingWarnings(_ snapshot: ClusterSnapshot) -> [String] {
    let nodes = Set(snapshot.pods.values.compactMap(\.nodeName)).sorted()
    return nodes.flatMap { node in PolicyRuleset.problems(compiledPods(snapshot, nodeName: node)).map { "node \(node): \($0)" } }
}
