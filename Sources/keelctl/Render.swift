import ArgumentParser
import Cluster
import NFTables
import NetAddress
import PolicyEnforcer
import ServiceProxy

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the nftables rulesets keeld would program on a node for these manifests (service proxy and policy), without touching the kernel.")

    @Option(help: "Folder of Kubernetes manifests (YAML/JSON).")
    var manifests: String

    @Option(help: "The node to render for (its Node object gives its addresses; endpoints on it are local).")
    var node: String

    @Option(help: "Cluster CIDR, as keeld's --cluster-cidr.")
    var clusterCIDR: String = "10.244.0.0/16"

    @Option(help: "As keeld's --nodeport-addresses: comma-separated CIDRs.")
    var nodeportAddresses: String = ""

    @Option(help: "As keeld's --service-cidr: comma-separated service ranges, added to the ServiceCIDR objects of the manifests.")
    var serviceCidr: String = ""

    @Option(help: "Output format: text (nft-like, one operation per line) or json.")
    var output: OutputFormat = .text

    func validate() throws {
        guard CIDR(clusterCIDR) != nil else { throw ValidationError("--cluster-cidr \(clusterCIDR) is not a CIDR") }
        for part in serviceCidr.split(separator: ",") where !part.contains("/") || CIDR(part) == nil {
            throw ValidationError("--service-cidr: \(part) is not a CIDR")
        }
    }

    func run() throws {
        let (snapshot, problems) = loadManifests(manifests)
        for p in problems { FileHandleStderr.write(problemLine(p) + "\n") }
        guard let me = snapshot.nodes[node] else { throw ValidationError("no Node \(node) in \(manifests)") }
        let config = ProxyNodeConfig(nodeName: node, nodeAddresses: me.internalIPs,
                                     nodePortAddresses: nodeportAddresses.split(separator: ",").compactMap { CIDR($0) },
                                     clusterCIDR: CIDR(clusterCIDR),
                                     serviceCIDRs: serviceCidr.split(separator: ",").compactMap { CIDR($0)?.masked })
        let proxy = ServiceRuleset.ruleset(ProxyState(snapshot: snapshot, node: config))
        let pods = compiledPods(snapshot, nodeName: node)
        for p in PolicyRuleset.problems(pods) { FileHandleStderr.write("warning (keeld could not program this as asked): \(p)\n") }
        let policy = PolicyRuleset.ruleset(pods)
        let text = transaction(from: nil, to: proxy).description + "\n" + transaction(from: nil, to: policy).description
        switch output {
        case .text: print(text)
        case .json:
            let lines = text.split(separator: "\n").map { jsonString(String($0)) }
            print("{\"node\":\(jsonString(node)),\"tables\":[\(jsonString(ServiceRuleset.table.description)),\(jsonString(PolicyRuleset.table.description))],\"operations\":[\(lines.joined(separator: ","))]}")
        }
    }
}

enum FileHandleStderr {
    static func write(_ s: String) {
        var bytes = Array(s.utf8)
        bytes.withUnsafeMutableBytes { _ = writeToStderr($0.baseAddress!, $0.count) }
    }
}

#if canImport(Glibc)
import Glibc
private func writeToStderr(_ p: UnsafeMutableRawPointer, _ n: Int) -> Int { Glibc.write(2, p, n) }
#endif
