import ArgumentParser
import Cluster
import Dispatch
import Glibc
import Logging
import NetAddress
import Netlink
import PodNetwork
import Routes

/// keeld: Keel's node agent. This version runs the route controller (host-gw or VXLAN peers) over
/// the Node objects of a manifest folder; the service proxy, the policy enforcer and the Kubernetes
/// API source come with later issues.
@main
struct Keeld: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keeld",
        abstract: "Keel's node agent.",
        discussion: "SIGTERM or SIGINT stops it and leaves the datapath as it is.")

    @Option(help: "Folder of Kubernetes manifests (YAML/JSON) to read and watch: the cluster state.")
    var manifests: String

    @Option(help: "This node's name, as in its Node object (default: the host name).")
    var nodeName: String?

    @Flag(help: "Run the route controller: program routes (host-gw) or FDB + neighbour + onlink route (vxlan) for every peer node.")
    var routes = false

    @Option(help: "Cross-node backend: host-gw or vxlan.")
    var backend: OverlayBackend = .vxlan

    @Option(help: "Underlay interface (default: the one holding the node's InternalIP).")
    var underlayInterface: String?

    @Option(help: "VXLAN network identifier.")
    var vxlanVni: UInt32 = 1

    @Option(help: "VXLAN UDP port.")
    var vxlanPort: UInt16 = 8472

    @Option(help: "Cluster CIDR: pod traffic to it is not masqueraded (written to the node file).")
    var clusterCIDR: String = "10.244.0.0/16"

    @Option(help: "Node file for the host-gw/vxlan plugins (pod CIDR, MTU, backend…).")
    var nodeFile: String = NodeFile.defaultPath

    @Option(help: "Seconds between full resyncs that repair entries removed by hand.")
    var resyncSeconds: Int = 30

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard CIDR(clusterCIDR) != nil else { throw ValidationError("--cluster-cidr \(clusterCIDR) is not a CIDR") }
        if let u = underlayInterface, InterfaceName(u) == nil { throw ValidationError("--underlay-interface \(u) is not an interface name") }
        guard resyncSeconds > 0 else { throw ValidationError("--resync-seconds must be positive") }
        guard routes else { throw ValidationError("nothing to run: enable a controller (--routes)") }
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "keeld")
        let name = nodeName ?? hostName()
        let store = ClusterStore()
        let source = ManifestDirectorySource(directory: manifests, logger: Logger(label: "keeld.manifests"), kinds: [.node])
        let node = NodeSetup(nodeName: name, backend: backend, vni: vxlanVni, port: vxlanPort,
                             underlayInterface: underlayInterface.flatMap(InterfaceName.init), clusterCIDR: CIDR(clusterCIDR)!,
                             nodeFile: nodeFile, manifests: manifests, socket: try RouteSocket(), logger: Logger(label: "keeld.node"))
        let controller = RouteController(store: store, socket: node.socket, nodeName: name,
                                         logger: Logger(label: "keeld.routes"), prepare: { try node.prepare($0) })
        logger.info("keeld starting", metadata: ["node": "\(name)", "backend": "\(backend.rawValue)", "manifests": "\(manifests)"])

        let tasks = [
            Task { do { try await source.run(into: store) } catch { logger.error("manifest source stopped", metadata: ["error": "\(error)"]) } },
            Task { await controller.run(resync: .seconds(resyncSeconds)) },
        ]
        await waitForTermination()
        logger.info("keeld stopping; the datapath stays as it is")
        for t in tasks { t.cancel() }
    }
}

extension OverlayBackend: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Suspends until SIGTERM or SIGINT.
func waitForTermination() async {
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    let queue = DispatchQueue(label: "keeld.signals")
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        let once = Once()
        let sources = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: queue) }
        for s in sources {
            s.setEventHandler { if once.first() { done.resume() } }
            s.resume()
        }
        once.keep(sources)
    }
}

final class Once: @unchecked Sendable {
    private var fired = false
    private var kept: [any DispatchSourceSignal] = []
    func first() -> Bool { defer { fired = true }; return !fired }   // called on one serial queue only
    func keep(_ sources: [any DispatchSourceSignal]) { kept = sources }
}

func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
