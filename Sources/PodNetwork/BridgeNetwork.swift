import CNI
import Glibc
import NFTables
import NetAddress
import Netlink

/// Attaches pods to a Linux bridge on the node, as the reference `bridge` plugin does: the bridge
/// (shared, ensured), a veth pair per pod with the pod end created directly in the pod's namespace,
/// addresses and routes from IPAM inside the pod, the gateway address on the bridge, forwarding, and
/// masquerade entries. Everything an ADD creates for the pod is undone if a later step fails.
public struct BridgeNetwork {
    /// rtnetlink in the node's namespace (where the plugin runs).
    let host: RouteSocket
    /// The IPAM plugin's own config checks, run in-process before ADD creates anything.
    let ipamCheck: IPAMConfigCheck?

    public init(host: RouteSocket, ipamCheck: IPAMConfigCheck? = nil) {
        self.host = host
        self.ipamCheck = ipamCheck
    }

    // MARK: - ADD

    public func add(_ request: CNIRequest) throws -> CNIResult {
        try add(request, config: BridgeConfig(request))            // bad input throws before anything exists
    }

    /// ADD with a config built by the caller (the overlay plugins derive theirs from the node file).
    public func add(_ request: CNIRequest, config: BridgeConfig) throws -> CNIResult {
        // A config IPAM would refuse (a multicast subnet, a gateway on the broadcast address) is
        // refused here, before the veth that is made while the IPAM plugin runs.
        try ipamCheck?(config.ipamType, request)
        let (podNS, pod) = try openPod(request.netns)
        guard let ifName = InterfaceName(request.ifName) else {
            throw PodNetworkError.invalidConfig(field: "CNI_IFNAME", reason: "\"\(quoted: request.ifName)\" is not a valid interface name")
        }
        if (try? pod.link(.name(ifName))) != nil {                 // lookup failure means "absent", the case we want
            throw PodNetworkError.invalidConfig(field: "CNI_IFNAME", reason: "\(ifName) already exists in \(podNS.path)")
        }
        return try withRollback { rollback in
            // The IPAM plugin (a child process) allocates while this process builds the links.
            let allocation = InBackground { try IPAMDelegate.add(type: config.ipamType, request: request) }
            rollback.onFailure("release addresses (\(config.ipamType) DEL)") {
                if case .success = allocation.wait() { try IPAMDelegate.del(type: config.ipamType, request: request) }
            }
            let hostEnd = try createVeth(config, podName: ifName, podNS: podNS)
            rollback.onFailure("delete \(hostEnd.name)") { try host.deleteLink(.index(hostEnd.index)) }
            var ipam = try allocation.value()
            guard !ipam.ips.isEmpty else { throw PodNetworkError.ipamReturnedNoAddress(ipamType: config.ipamType) }
            // Below 1280 the kernel disables IPv6 on the links, and the pod's address would fail later.
            if let mtu = config.mtu, mtu < 1280, let v6 = ipam.ips.first(where: { $0.address.family == .ipv6 }) {
                throw PodNetworkError.invalidConfig(field: "mtu", reason: "\(mtu) is below 1280, the IPv6 minimum, and IPAM gave \(v6.address)")
            }
            // The bridge is shared and never rolled back, so it is made only once IPAM has accepted
            // the config: a malformed one leaves the node exactly as it was.
            // Finding (or making) the bridge and attaching to it is one step under the bridge's lock,
            // so that an ADD rolling back the bridge it made never deletes it under a pod that found
            // it but is not on it yet.
            let (bridge, createdBridge, attached) = try withFileLock(Self.lockPath(config.bridge)) {
                let (bridge, created) = try ensureBridge(config)
                let attached = Result { () throws(PodNetworkError) in
                    try kernel { () throws(NetlinkError) in
                        try host.setMaster(.index(hostEnd.index), bridge.index)
                        if config.hairpinMode || config.portIsolation {
                            try host.setBridgePort(.index(hostEnd.index), hairpin: config.hairpinMode ? true : nil,
                                                   isolated: config.portIsolation ? true : nil)
                        }
                    }
                }
                return (bridge, created, attached)
            }
            if createdBridge {
                // Made for this ADD: a late failure (a route the pod's kernel refuses) must not leave
                // it, with its gateway address, on a node that had none.
                rollback.onFailure("delete \(config.bridge) (made by this ADD)") {
                    try deleteBridgeIfUnused(config.bridge, index: bridge.index, except: hostEnd.index)
                }
            }
            try attached.get()

            let podLink = try configurePod(pod, ifName: ifName, result: &ipam, config: config)
            if config.isGateway { try setUpGateway(bridge: bridge, ips: ipam.ips, force: config.forceAddress) }
            if config.ipMasq {
                let masq = try Masquerade(socket: nftSocket())
                let owner = Masquerade.Owner(network: request.config.name, containerID: request.containerID, ifName: request.ifName)
                try masq.add(ipam.ips.map(\.address), owner: owner, unmasqueraded: config.unmasqueraded)
                rollback.onFailure("remove masquerade entries") { try masq.remove(owner: owner) }
            }
            let bridgeNow = try kernel { () throws(NetlinkError) in try host.link(.index(bridge.index)) }
            return CNIResult(
                cniVersion: request.config.cniVersion,
                interfaces: [
                    Interface(name: bridgeNow.name, mac: bridgeNow.mac),
                    Interface(name: hostEnd.name, mac: hostEnd.mac),
                    Interface(name: ifName.value, mac: podLink.mac, sandbox: request.netns),
                ],
                ips: ipam.ips.map { IPConfig(address: $0.address, gateway: $0.gateway, interface: 2) },
                routes: ipam.routes,
                dns: ipam.dns.isEmpty ? (request.config.dns ?? DNS()) : ipam.dns)
        }
    }

    /// The bridge named in the config, created (up, with the config's MTU) if missing; `created` says
    /// whether this call made it.
    func ensureBridge(_ config: BridgeConfig) throws -> (bridge: Link, created: Bool) {
        var bridge: Link
        var created = false
        do {
            bridge = try host.link(.name(config.bridge))
        } catch where error.errno == .operationNotSupportedByDevice {
            do {
                bridge = try host.createLink(LinkSpec(name: config.bridge, kind: .bridge, mtu: config.mtu, up: true))
                created = true
            } catch where error.isAlreadyExists {
                // Another ADD created it in the meantime.
                bridge = try kernel { () throws(NetlinkError) in try host.link(.name(config.bridge)) }
            } catch {
                throw PodNetworkError.kernel(error)
            }
        } catch {
            throw PodNetworkError.kernel(error)
        }
        guard bridge.kind == "bridge" else { throw PodNetworkError.notABridge(name: config.bridge.value, kind: bridge.kind ?? "device") }
        if !bridge.isUp { try kernel { () throws(NetlinkError) in try host.setUp(.index(bridge.index)) } }
        if config.promiscMode && !bridge.isPromiscuous {
            try kernel { () throws(NetlinkError) in try host.setPromiscuous(.index(bridge.index), true) }
        }
        return (bridge, created)
    }

    /// Deletes the bridge `index` unless a port other than `except` is on it: a concurrent ADD that
    /// attached its pod meanwhile keeps it. Under the bridge's lock, which every ADD holds from finding
    /// the bridge to attaching to it.
    func deleteBridgeIfUnused(_ name: InterfaceName, index: Int32, except port: Int32) throws {
        try withFileLock(Self.lockPath(name)) {
            let links = try kernel { () throws(NetlinkError) in try host.links() }
            guard !links.contains(where: { $0.masterIndex == index && $0.index != port }) else { return }
            do { try host.deleteLink(.index(index)) } catch let e as NetlinkError where e.isAlreadyGone {} catch let e as NetlinkError {
                throw PodNetworkError.kernel(e)
            }
        }
    }

    /// One lock per bridge name (across the node namespaces of a test lab, too: that only serialises).
    static func lockPath(_ bridge: InterfaceName) -> String { "/run/keel/cni-bridge-\(bridge.value).lock" }

    /// A veth pair in one request: the host end `vethXXXXXXXX` here, the pod end created directly in
    /// the pod's namespace under its final name. Retries on a host-name collision.
    func createVeth(_ config: BridgeConfig, podName: InterfaceName, podNS: NetworkNamespace) throws -> Link {
        for attempt in 0..<8 {
            let hostName = InterfaceName("veth" + String(UInt32.random(in: .min ... .max), radix: 16))!
            do {
                return try host.createLink(LinkSpec(name: hostName, kind: .veth(peerName: podName.value, peerNamespace: podNS, peerMAC: config.mac),
                                                    mtu: config.mtu, up: true))
            } catch where error.isAlreadyExists && attempt < 7 {
                continue   // the random host name was taken (the pod name was checked before)
            } catch {
                throw PodNetworkError.kernel(error)
            }
        }
        preconditionFailure("unreachable")
    }

    /// Addresses, link state and routes inside the pod. Adds the default routes of `isDefaultGateway`
    /// to `result.routes`, as the reference does.
    func configurePod(_ pod: RouteSocket, ifName: InterfaceName, result: inout CNIResult, config: BridgeConfig) throws -> Link {
        let link = try kernel { () throws(NetlinkError) in try pod.link(.name(ifName)) }
        for ip in result.ips {
            // DAD would leave IPv6 addresses "tentative" for a second; the reference disables it
            // unless enabledad is set.
            let address = InterfaceAddress(linkIndex: link.index, cidr: ip.address,
                                           broadcast: ip.address.family == .ipv4 && ip.address.prefixLength < 31 ? ip.address.last : nil,
                                           skipDuplicateDetection: ip.address.family == .ipv6 && !config.enableDAD)
            try kernel { () throws(NetlinkError) in try pod.addAddress(address) }
        }
        if !config.disableContainerInterface {
            try kernel { () throws(NetlinkError) in try pod.setUp(.index(link.index)) }
        }
        if config.isDefaultGateway {
            for family in [AddressFamily.ipv4, .ipv6] {
                let hasDefault = result.routes.contains { $0.dst.prefixLength == 0 && $0.dst.family == family }
                if !hasDefault, let gw = result.ips.first(where: { $0.address.family == family })?.gateway {
                    result.routes.append(RouteConfig(dst: CIDR(family == .ipv4 ? IPAddress("0.0.0.0")! : IPAddress("::")!, prefixLength: 0)!, gw: gw))
                }
            }
        }
        guard !config.disableContainerInterface else { return link }
        for r in result.routes {
            let gateway = r.gw ?? result.ips.first { $0.address.family == r.dst.family }?.gateway
            let route = Route(destination: r.dst, gateway: gateway, device: link.index, metric: r.priority.map(UInt32.init))
            try kernel { () throws(NetlinkError) in try pod.addRoute(route) }
        }
        return try kernel { () throws(NetlinkError) in try pod.link(.index(link.index)) }
    }

    /// The gateway addresses on the bridge and forwarding on the node (shared state, not rolled back).
    func setUpGateway(bridge: Link, ips: [IPConfig], force: Bool) throws {
        for ip in ips {
            guard let gw = ip.gateway, let cidr = CIDR(gw, prefixLength: ip.address.prefixLength) else { continue }
            let existing = try kernel { () throws(NetlinkError) in try host.addresses(link: bridge.index, family: cidr.family) }
            if existing.contains(where: { $0.cidr == cidr }) { continue }
            for other in existing where other.cidr.masked == cidr.masked {
                guard force else {
                    throw PodNetworkError.bridgeAddressConflict(bridge: bridge.name, existing: other.cidr.description, wanted: cidr.description)
                }
                try kernel { () throws(NetlinkError) in try host.deleteAddress(other) }
            }
            do {
                try host.addAddress(InterfaceAddress(linkIndex: bridge.index, cidr: cidr,
                                                     broadcast: cidr.family == .ipv4 && cidr.prefixLength < 31 ? cidr.last : nil,
                                                     skipDuplicateDetection: cidr.family == .ipv6))
            } catch where error.isAlreadyExists {
                // A concurrent ADD put it there first.
            } catch {
                throw PodNetworkError.kernel(error)
            }
            let forwarding = cidr.family == .ipv4 ? "net.ipv4.ip_forward" : "net.ipv6.conf.all.forwarding"
            if (try? Sysctl.read(forwarding)) != "1" {                  // unreadable: write anyway below
                try kernel { () throws(NetlinkError) in try Sysctl.write(forwarding, "1") }
            }
        }
    }

    // MARK: - DEL

    /// Releases the addresses, deletes the pod's interface (its veth peer goes with it) and the
    /// masquerade entries. Missing netns, interface or reservation count as done; other failures are
    /// collected and reported together after every step was tried.
    public func delete(_ request: CNIRequest) throws {
        try delete(request, config: BridgeConfig(request))
    }

    public func delete(_ request: CNIRequest, config: BridgeConfig) throws {
        var failures: [any Error] = []
        // The IPAM plugin (a process) releases the addresses while this one talks to the kernel.
        let ipamRelease = InBackground { try IPAMDelegate.del(type: config.ipamType, request: request) }
        if config.ipMasq {
            // Before the link: deleted set elements are freed after an RCU grace period, and closing
            // the nftables socket waits for that (~20 ms); the veth deletion below covers the wait.
            do {
                let owner = Masquerade.Owner(network: request.config.name, containerID: request.containerID, ifName: request.ifName)
                try Masquerade(socket: nftSocket()).remove(owner: owner)
            } catch { failures.append(error) }
        }
        if let path = request.netns, !path.isEmpty {
            do {
                let ns = try NetworkNamespace(path: path)
                let pod = try RouteSocket.inside(ns)
                do {
                    try pod.deleteLink(.name(InterfaceName(request.ifName) ?? "eth0"))
                } catch where error.isAlreadyGone {
                    // Already gone: DEL is idempotent.
                }
            } catch let e as NetlinkError where e.errno == .noSuchFileOrDirectory || e.operation == .enterNamespace {
                // The namespace is gone, and the veth with it.
            } catch {
                failures.append(error)
            }
        }
        if case let .failure(error) = ipamRelease.wait() { failures.insert(error, at: 0) }
        if !failures.isEmpty { throw PodNetworkError.many(failures) }
    }

    // MARK: - CHECK

    /// Verifies the pod against `prevResult`: the interface, its addresses and routes, the host end
    /// on the bridge, the masquerade entries; and asks IPAM to check its side.
    public func check(_ request: CNIRequest) throws {
        try check(request, config: BridgeConfig(request))
    }

    public func check(_ request: CNIRequest, config: BridgeConfig) throws {
        guard let prev = request.config.prevResult else {
            throw PodNetworkError.invalidConfig(field: "prevResult", reason: "CHECK needs the result of the ADD")
        }
        let ipamCheck = InBackground { try IPAMDelegate.check(type: config.ipamType, request: request) }
        defer { _ = ipamCheck.wait() }
        let (_, pod) = try openPod(request.netns)
        let bridge = try kernel { () throws(NetlinkError) in try host.link(.name(config.bridge)) }
        guard bridge.kind == "bridge" else { throw PodNetworkError.notABridge(name: config.bridge.value, kind: bridge.kind ?? "device") }

        guard let podIndex = prev.interfaces.firstIndex(where: { $0.name == request.ifName && $0.sandbox != nil }) else {
            throw PodNetworkError.checkFailed("prevResult has no interface \(request.ifName) in a sandbox")
        }
        let link: Link
        do { link = try pod.link(.name(InterfaceName(request.ifName) ?? "eth0")) } catch {
            throw PodNetworkError.checkFailed("interface \(request.ifName) is missing in \(request.netns ?? "-")")
        }
        if let mac = prev.interfaces[podIndex].mac, link.mac != mac {
            throw PodNetworkError.checkFailed("\(request.ifName) has MAC \(link.mac?.description ?? "-"), expected \(mac)")
        }
        let addresses = try kernel { () throws(NetlinkError) in try pod.addresses(link: link.index) }
        for ip in prev.ips where ip.interface == nil || ip.interface == podIndex {
            guard addresses.contains(where: { $0.cidr == ip.address }) else {
                throw PodNetworkError.checkFailed("\(request.ifName) lacks address \(ip.address)")
            }
        }
        let routes = try kernel { () throws(NetlinkError) in try pod.routes(table: .main) }
        for r in prev.routes {
            let gw = r.gw ?? prev.ips.first { $0.address.family == r.dst.family }?.gateway
            guard routes.contains(where: { $0.destination == r.dst.masked && $0.gateway == gw }) else {
                throw PodNetworkError.checkFailed("route \(r.dst)\(gw.map { " via \($0)" } ?? "") is missing in the pod")
            }
        }
        for hostIf in prev.interfaces where hostIf.sandbox == nil && hostIf.name != config.bridge.value {
            let hostLink: Link
            do { hostLink = try host.link(.name(InterfaceName(hostIf.name) ?? "-")) } catch {
                throw PodNetworkError.checkFailed("host interface \(hostIf.name) is missing")
            }
            guard hostLink.masterIndex == bridge.index else {
                throw PodNetworkError.checkFailed("host interface \(hostIf.name) is not on bridge \(config.bridge)")
            }
        }
        if config.ipMasq {
            let owner = Masquerade.Owner(network: request.config.name, containerID: request.containerID, ifName: request.ifName)
            let masqueraded = Set(try Masquerade(socket: nftSocket()).addresses(of: owner))
            for ip in prev.ips where !masqueraded.contains(ip.address.address) {
                throw PodNetworkError.checkFailed("no masquerade entry for \(ip.address.address)")
            }
        }
        try ipamCheck.value()
    }

    // MARK: - GC and STATUS

    /// Lets IPAM release what no valid attachment holds, then drops their masquerade entries.
    public func collectGarbage(_ request: CNIGCRequest) throws {
        let raw = try request.decodeConfig(BridgeConfig.Raw.self)
        try collectGarbage(request, config: BridgeConfig(raw, config: request.config))
    }

    public func collectGarbage(_ request: CNIGCRequest, config: BridgeConfig) throws {
        var failures: [any Error] = []
        do { try IPAMDelegate.gc(type: config.ipamType, request: request) } catch { failures.append(error) }
        do {
            try Masquerade(socket: nftSocket()).collectGarbage(
                network: request.config.name, valid: request.validAttachments.map { ($0.containerID, $0.ifname) })
        } catch { failures.append(error) }
        if !failures.isEmpty { throw PodNetworkError.many(failures) }
    }

    public func status(_ request: CNIStatusRequest) throws {
        guard let type = request.config.ipam?.type, !type.isEmpty else {
            throw PodNetworkError.invalidConfig(field: "ipam.type", reason: "the bridge plugin needs an IPAM plugin")
        }
        try IPAMDelegate.status(type: type, request: request)
    }

    // MARK: - Helpers

    func openPod(_ path: String?) throws -> (NetworkNamespace, RouteSocket) {
        guard let path, !path.isEmpty else {
            throw PodNetworkError.invalidConfig(field: "CNI_NETNS", reason: "a network namespace path is required")
        }
        do {
            let ns = try NetworkNamespace(path: path)
            return (ns, try RouteSocket.inside(ns))
        } catch {
            throw PodNetworkError.netnsUnavailable(path: path, error)
        }
    }

    func nftSocket() throws -> NFTablesSocket {
        do { return try NFTablesSocket() } catch { throw PodNetworkError.nftables(error) }
    }
}
