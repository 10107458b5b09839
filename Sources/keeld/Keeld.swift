import ArgumentParser
import Cluster
import Dispatch
import Glibc
import KubeAPI
import Logging
import NFTables
import NetAddress
import Netlink
import PodNetwork
import PolicyEnforcer
import Routes
import ServiceProxy

/// keeld: Keel's node agent. It runs the route controller (host-gw or VXLAN peers), the service proxy
/// (Services → nftables) and the policy enforcer over the objects of the Kubernetes API (kubeconfig or
/// in-cluster service account) or of a manifest folder.
@main
struct Keeld: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keeld",
        abstract: "Keel's node agent.",
        discussion: "SIGTERM or SIGINT stops it and leaves the datapath as it is.")

    @Option(help: "Folder of Kubernetes manifests (YAML/JSON) to read and watch: the cluster state.")
    var manifests: String?

    @Option(help: "Kubeconfig file: list and watch the Kubernetes API server of its current context.")
    var kubeconfig: String?

    @Flag(help: "List and watch the Kubernetes API with the pod's service account (KUBERNETES_SERVICE_HOST/PORT, token, ca.crt).")
    var inCluster = false

    @Option(help: "This node's name, as in its Node object (default: the host name).")
    var nodeName: String?

    @Flag(help: "Run the route controller: program routes (host-gw) or FDB + neighbour + onlink route (vxlan) for every peer node.")
    var routes = false

    @Flag(help: "Run the service proxy: program Services and EndpointSlices into the nftables table ip keel-proxy (or IPVS, with --proxy-mode ipvs).")
    var proxy = false

    @Option(help: "Service proxy data plane: nftables (table ip keel-proxy) or ipvs (IPVS virtual services, their addresses on the dummy keel-ipvs0, and table ip keel-ipvs; needs the kernel module ip_vs).")
    var proxyMode: ProxyMode = .nftables

    @Option(help: "IPVS scheduler with --proxy-mode ipvs: \(IPVSScheduler.known.joined(separator: ", ")).")
    var ipvsScheduler: String = IPVSScheduler.roundRobin.rawValue

    @Flag(help: "Run the NetworkPolicy enforcer: program the policies selecting this node's pods into the nftables table ip keel-policy.")
    var policy = false

    @Option(help: "Comma-separated CIDRs: NodePorts answer only on node addresses inside them (default: every node address; never 127.0.0.0/8).")
    var nodeportAddresses: String = ""

    @Option(help: "Comma-separated CIDRs of the Service cluster IP ranges (the API server's --service-cluster-ip-range), added to the ServiceCIDR objects: the proxy drops traffic to their addresses that no Service holds.")
    var serviceCidr: String = ""

    @Option(help: "Port of /healthz (200 while proxy syncs succeed).")
    var healthzPort: UInt16 = 10256

    @Option(help: "Port of the Prometheus /metrics endpoint.")
    var metricsPort: UInt16 = 10249

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
        let sources = [manifests.map { _ in "--manifests" }, kubeconfig.map { _ in "--kubeconfig" }, inCluster ? "--in-cluster" : nil]
            .compactMap { $0 }
        guard sources.count == 1 else {
            throw ValidationError(sources.isEmpty
                ? "no cluster state source: give one of --manifests DIR, --kubeconfig PATH, --in-cluster"
                : "\(sources.joined(separator: " and ")) are mutually exclusive: give exactly one cluster state source")
        }
        guard CIDR(clusterCIDR) != nil else { throw ValidationError("--cluster-cidr \(clusterCIDR) is not a CIDR") }
        if let u = underlayInterface, InterfaceName(u) == nil { throw ValidationError("--underlay-interface \(u) is not an interface name") }
        guard resyncSeconds > 0 else { throw ValidationError("--resync-seconds must be positive") }
        guard routes || proxy || policy else { throw ValidationError("nothing to run: enable a controller (--routes, --proxy, --policy)") }
        guard IPVSScheduler(rawValue: ipvsScheduler) != nil else {
            throw ValidationError("--ipvs-scheduler \(ipvsScheduler) is not an IPVS scheduler (\(IPVSScheduler.known.joined(separator: ", ")))")
        }
        for part in nodeportAddresses.split(separator: ",") where CIDR(part) == nil {
            throw ValidationError("--nodeport-addresses: \(part) is not a CIDR")
        }
        for part in serviceCidr.split(separator: ",") where !part.contains("/") || CIDR(part) == nil {   // a range, not an address
            throw ValidationError("--service-cidr: \(part) is not a CIDR")
        }
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "keeld")
        // IPVS first: on a kernel without it keeld stops here, before any table, link or sysctl exists.
        var ipvsTable: (any IPVSTable)?
        if proxy && proxyMode == .ipvs {
            do { ipvsTable = try IPVSSocket() } catch {
                logger.critical("--proxy-mode ipvs needs the kernel's IPVS (module ip_vs); nothing was changed",
                                metadata: ["error": "\(error)"])
                throw ExitCode.failure
            }
        }
        let name = nodeName ?? hostName()
        let store = ClusterStore()
        var kinds: Set<ObjectKind> = []
        if routes { kinds.insert(.node) }
        if proxy { kinds.formUnion(ServiceProxyController.kinds) }
        if policy { kinds.formUnion(PolicyController.kinds) }
        let socket = try RouteSocket()
        let apiMetrics = KubeAPIMetrics()
        let source: any ClusterSource
        let publisher: NodePublisher
        if let manifests {
            source = ManifestDirectorySource(directory: manifests, logger: Logger(label: "keeld.manifests"), kinds: kinds)
            publisher = .manifests(manifests)
        } else {
            let config = try kubeconfig.map { try KubeconfigFile.load(path: $0) } ?? KubeAPIConfig.inCluster()
            source = KubeAPISource(config: config, logger: Logger(label: "keeld.api"), kinds: kinds, metrics: apiMetrics)
            publisher = .api(NodeStatusPublisher(client: KubeAPINodeClient(config: config), nodeName: name,
                                                 logger: Logger(label: "keeld.node")))
        }
        var tasks = [
            Task { do { try await source.run(into: store) } catch { logger.error("cluster source stopped", metadata: ["error": "\(error)"]) } },
        ]
        logger.info("keeld starting", metadata: ["node": "\(name)", "routes": "\(routes)", "proxy": "\(proxy)", "policy": "\(policy)",
                                                 "source": "\(manifests.map { "manifests \($0)" } ?? kubeconfig.map { "kubeconfig \($0)" } ?? "in-cluster")"])
        if routes {
            let node = NodeSetup(nodeName: name, backend: backend, vni: vxlanVni, port: vxlanPort,
                                 underlayInterface: underlayInterface.flatMap(InterfaceName.init), clusterCIDR: CIDR(clusterCIDR)!,
                                 nodeFile: nodeFile, publisher: publisher, socket: socket, logger: Logger(label: "keeld.node"))
            let controller = RouteController(store: store, socket: socket, nodeName: name,
                                             logger: Logger(label: "keeld.routes"), prepare: { try node.prepare($0) })
            tasks.append(Task { await controller.run(resync: .seconds(resyncSeconds)) })
        }
        var policyMetrics: PolicyMetrics?
        if policy {
            // Pods on one bridge talk without routing: br_netfilter hands their packets to the ip
            // family's forward hook, where the policy chains are. Set in this (the node's) namespace.
            do { try Sysctl.write("net.bridge.bridge-nf-call-iptables", "1") } catch {
                logger.warning("br_netfilter unavailable: traffic between pods on the same bridge is not policed",
                               metadata: ["error": "\(error)"])
            }
            let metrics = PolicyMetrics()
            policyMetrics = metrics
            let controller = PolicyController(store: store, sync: PolicySync(nft: try NFTablesSocket(), logger: Logger(label: "keeld.policy")),
                                              nodeName: name, logger: Logger(label: "keeld.policy"),
                                              compile: { compiledPods($0, nodeName: $1) }, report: { metrics.record($0) })
            tasks.append(Task { await controller.run(resync: .seconds(resyncSeconds)) })
        }
        var servers: [StatusServer] = []
        var proxyMetrics: ProxyMetrics?
        if proxy {
            let metrics = ProxyMetrics()
            proxyMetrics = metrics
            let dataplane: any ServiceDataplane
            if let ipvsTable {
                dataplane = IPVSServiceDataplane(ipvs: ipvsTable, node: KernelIPVSNodeDevices(route: socket, nft: try NFTablesSocket()),
                                                 scheduler: IPVSScheduler(rawValue: ipvsScheduler)!, logger: Logger(label: "keeld.proxy"))
            } else {
                dataplane = NFTablesServiceDataplane(nft: try NFTablesSocket(), conntrack: try ConntrackSocket(),
                                                     logger: Logger(label: "keeld.proxy"))
            }
            let ipvsMode = ipvsTable != nil
            let filter = nodeportAddresses.split(separator: ",").compactMap { CIDR($0) }
            let cluster = CIDR(clusterCIDR)
            let serviceRanges = serviceCidr.split(separator: ",").compactMap { CIDR($0)?.masked }
            let controller = ServiceProxyController(
                store: store, dataplane: dataplane,
                node: {
                    // The node's addresses, read here so the state computation stays pure.
                    // In IPVS mode the service addresses on keel-ipvs0 are local too, but never node-port addresses.
                    // (try?: no dummy yet means no service address to leave out.)
                    let dummy = ipvsMode ? (try? socket.link(.name(KernelIPVSNodeDevices.dummyName)))?.index : nil
                    let addresses = try socket.addresses(family: .ipv4).filter { $0.linkIndex != dummy }.map(\.cidr.address)
                    return ProxyNodeConfig(nodeName: name, nodeAddresses: addresses, nodePortAddresses: filter, clusterCIDR: cluster,
                                           serviceCIDRs: serviceRanges)
                },
                logger: Logger(label: "keeld.proxy"), report: { metrics.record($0) })
            tasks.append(Task { await controller.run(resync: .seconds(resyncSeconds)) })
            servers.append(try StatusServer(port: healthzPort) { path in
                guard path.hasPrefix("/healthz") || path.hasPrefix("/livez") else { return (404, "text/plain", "not found\n") }
                let (status, body) = metrics.healthz()
                return (status, "application/json", body)
            })
        }
        // /metrics runs with any controller: the proxy's and the policy enforcer's series, and the API source's when it is the source.
        let exportsAPI = manifests == nil, apiKinds = kinds
        servers.append(try StatusServer(port: metricsPort) { [proxyMetrics, policyMetrics] path in
            guard path.hasPrefix("/metrics") else { return (404, "text/plain", "not found\n") }
            let text = (proxyMetrics?.text() ?? "") + (policyMetrics?.text() ?? "") + (exportsAPI ? apiMetricsText(apiMetrics, kinds: apiKinds) : "")
            return (200, "text/plain; version=0.0.4", text)
        })
        await waitForTermination()
        logger.info("keeld stopping; the datapath stays as it is")
        for t in tasks { t.cancel() }
        _ = servers   // the listeners live until the process exits
    }
}

/// `--proxy-mode`: which `ServiceDataplane` the service proxy programs.
enum ProxyMode: String, ExpressibleByArgument, CaseIterable {
    case nftables, ipvs
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
