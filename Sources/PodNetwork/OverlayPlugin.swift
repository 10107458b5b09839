import CNI
import NetAddress
import Netlink

/// The `host-gw` and `vxlan` CNI plugins. Both attach pods exactly as `bridge` does (the same
/// `BridgeNetwork` code, host-local IPAM over the node's pod CIDR); `vxlan` also ensures the node's
/// VXLAN device and gives pods its smaller MTU. Peer routes/FDB/neighbours are keeld's job.
///
/// Config fields (all optional; what is missing comes from the node file keeld writes):
/// `subnet` (this node's pod CIDR, or a list for dual stack: `subnets`), `clusterCIDR`, `mtu`,
/// `nodeFile` [/run/keel/node.env], `bridge` [keel0], `ipMasq` [true], `hairpinMode` [true],
/// `dataDir` (host-local's), `ipam` (replaces the generated host-local section); vxlan only:
/// `vni` [1], `port` [8472], `underlayInterface`, `underlayAddress`.
public struct OverlayPlugin: CNIPlugin {
    public let backend: String   // "host-gw" | "vxlan"
    let ipamCheck: IPAMConfigCheck?

    public init(backend: String, ipamCheck: IPAMConfigCheck? = nil) {
        self.backend = backend
        self.ipamCheck = ipamCheck
    }

    struct Raw: Decodable {
        var subnet: String?
        var subnets: [String]?
        var clusterCIDR: String?
        var mtu: Int?
        var nodeFile: String?
        var bridge: String?
        var ipMasq: Bool?
        var hairpinMode: Bool?
        var dataDir: String?
        var vni: UInt32?
        var port: UInt16?
        var underlayInterface: String?
        var underlayAddress: String?
    }

    /// The facts of this node: the config's, completed from the node file.
    struct Settings {
        var subnets: [CIDR]
        var clusterCIDR: CIDR?
        var mtu: UInt32?
        var vxlan: VXLANDevice?
    }

    func settings(_ raw: Raw) throws -> Settings {
        let needsFile = (raw.subnet == nil && raw.subnets == nil) || raw.clusterCIDR == nil
            || (backend == "vxlan" && (raw.underlayInterface == nil || raw.underlayAddress == nil))
        let file = needsFile ? try NodeFile.read(raw.nodeFile ?? NodeFile.defaultPath) : NodeFile()
        func cidr(_ text: String, _ field: String) throws -> CIDR {
            guard let c = CIDR(text), c.masked == c else { throw PodNetworkError.invalidConfig(field: field, reason: "\"\(quoted: text)\" is not a network CIDR") }
            if let problem = SpecialPurposeBlock.problem(with: c) { throw PodNetworkError.invalidConfig(field: field, reason: problem) }
            return c
        }
        var subnets: [CIDR] = file.subnets
        if let s = raw.subnet { subnets = [try cidr(s, "subnet")] }
        if let list = raw.subnets { subnets = try list.enumerated().map { try cidr($1, "subnets[\($0)]") } }
        guard !subnets.isEmpty else { throw PodNetworkError.invalidConfig(field: "subnet", reason: "no pod CIDR in the config or the node file") }
        let cluster = try raw.clusterCIDR.map { try cidr($0, "clusterCIDR") } ?? file.network
        let mtu = raw.mtu.map(UInt32.init) ?? file.mtu
        var vxlan: VXLANDevice?
        if backend == "vxlan" {
            let ifText = raw.underlayInterface ?? file.underlayInterface
            guard let ifText, let underlay = InterfaceName(ifText) else {
                throw PodNetworkError.invalidConfig(field: "underlayInterface", reason: "missing or invalid in the config and the node file")
            }
            guard let address = raw.underlayAddress.flatMap(IPAddress.init) ?? file.underlayAddress, address.isIPv4 else {
                throw PodNetworkError.invalidConfig(field: "underlayAddress", reason: "an IPv4 underlay address is needed")
            }
            vxlan = VXLANDevice(vni: raw.vni ?? file.vni ?? 1, port: raw.port ?? file.port ?? 8472, underlayInterface: underlay,
                                underlayAddress: address, podCIDR: subnets.first { $0.family == .ipv4 })
        }
        return Settings(subnets: subnets, clusterCIDR: cluster, mtu: mtu, vxlan: vxlan)
    }

    /// The request as the bridge attachment sees it: bridge fields and a host-local section over
    /// the node's pod CIDR added to the config that came on stdin.
    func bridgeRequest(_ request: CNIRequest, _ raw: Raw, _ s: Settings, mtu: UInt32?) throws -> (CNIRequest, BridgeConfig) {
        guard var object = try JSONValue(parsing: request.rawConfig).objectValue else {
            throw PodNetworkError.invalidConfig(field: "(root)", reason: "not a JSON object")
        }
        object["bridge"] = .string(raw.bridge ?? "keel0")
        object["isGateway"] = .bool(true)
        object["isDefaultGateway"] = .bool(true)
        object["ipMasq"] = .bool(raw.ipMasq ?? true)
        object["hairpinMode"] = .bool(raw.hairpinMode ?? true)
        if let mtu { object["mtu"] = .number(Double(mtu)) }
        if object["ipam"] == nil {
            var ipam: [String: JSONValue] = [
                "type": .string("host-local"),
                "ranges": .array(s.subnets.map { .array([.object(["subnet": .string($0.description)])]) }),
            ]
            if let dir = raw.dataDir { ipam["dataDir"] = .string(dir) }
            object["ipam"] = .object(ipam)
        }
        let bytes = JSONValue.object(object).jsonBytes
        var rewritten = request
        rewritten.rawConfig = bytes
        rewritten.config = try NetworkConfig.decode(bytes)
        var config = try BridgeConfig(rewritten)
        config.unmasqueraded = s.clusterCIDR.map { [$0] } ?? []
        return (rewritten, config)
    }

    func prepared(_ request: CNIRequest, ensureDevice: Bool) throws -> (BridgeNetwork, CNIRequest, BridgeConfig) {
        let raw = try request.decodeConfig(Raw.self)
        let s = try settings(raw)
        // Every config check (the bridge's, IPAM's) before the VXLAN device is made.
        var (r, c) = try bridgeRequest(request, raw, s, mtu: s.mtu)
        if ensureDevice { try ipamCheck?(c.ipamType, r) }
        let host: RouteSocket
        do { host = try RouteSocket() } catch { throw PodNetworkError.kernel(error) }
        if ensureDevice, let vxlan = s.vxlan {
            let (_, podMTU) = try vxlan.ensure(host)
            let mtu = min(s.mtu ?? podMTU, podMTU)   // never above what the tunnel carries
            if mtu != s.mtu { (r, c) = try bridgeRequest(request, raw, s, mtu: mtu) }
        }
        return (BridgeNetwork(host: host, ipamCheck: ipamCheck), r, c)
    }

    public func add(_ request: CNIRequest) throws -> CNIResult {
        let (network, r, c) = try prepared(request, ensureDevice: true)
        return try network.add(r, config: c)
    }
    public func del(_ request: CNIRequest) throws {
        let (network, r, c) = try prepared(request, ensureDevice: false)
        try network.delete(r, config: c)
    }
    public func check(_ request: CNIRequest) throws {
        let (network, r, c) = try prepared(request, ensureDevice: false)
        try network.check(r, config: c)
    }
    public func gc(_ request: CNIGCRequest) throws {
        let raw = try request.decodeConfig(Raw.self)
        let s = try settings(raw)
        let asAdd = CNIRequest(command: .add, containerID: "gc", netns: nil, ifName: "eth0", path: request.path,
                               config: request.config, rawConfig: request.rawConfig, environment: request.environment)
        let (r, c) = try bridgeRequest(asAdd, raw, s, mtu: s.mtu)
        var gc = request
        gc.rawConfig = r.rawConfig
        gc.config = r.config
        let host: RouteSocket
        do { host = try RouteSocket() } catch { throw PodNetworkError.kernel(error) }
        try BridgeNetwork(host: host).collectGarbage(gc, config: c)
    }

    public func status(_ request: CNIStatusRequest) throws {
        let raw = try request.decodeConfig(Raw.self)
        _ = try settings(raw)   // unavailable until the node file (or config) gives a pod CIDR
    }
}
