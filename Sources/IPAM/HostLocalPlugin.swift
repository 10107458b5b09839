import CNI
import NetAddress

/// The host-local IPAM plugin: the reference's configuration and on-disk layout, with GC and STATUS.
public struct HostLocalPlugin: CNIPlugin {
    public init() {}

    /// ADD: one address per range set, with the configured routes and the DNS of `ipam.resolvConf`.
    public func add(_ request: CNIRequest) throws -> CNIResult {
        let config = try Self.addConfig(request)
        let dns = try config.resolvConf.map { try DNSSettings(contentsOfResolvConf: $0) } ?? DNSSettings()
        let allocator = try Self.allocator(config)
        let leases = try allocator.allocate(for: AttachmentID(containerID: request.containerID, ifName: request.ifName),
                                            requesting: config.requestedAddresses)
        return CNIResult(
            ips: leases.map { IPConfig(address: $0.address, gateway: $0.gateway) },
            routes: config.routes.map { RouteConfig(dst: $0.destination, gw: $0.gateway) },
            dns: DNS(nameservers: dns.nameservers, domain: dns.domain, search: dns.search, options: dns.options))
    }

    /// DEL: releases the attachment's addresses; nothing to release is success.
    public func del(_ request: CNIRequest) throws {
        // A release needs only where the store is: the pods of a network whose ranges a newer Keel
        // refuses (a gateway on the network address) must still be deletable.
        let (network, dataDirectory) = try HostLocalConfig.storeLocation(json: request.rawConfig)
        let store = try DiskReservationStore(network: network, dataDirectory: dataDirectory)
        try HostLocalAllocator(rangeSets: [], store: store).release(AttachmentID(containerID: request.containerID, ifName: request.ifName))
    }

    /// CHECK: the attachment holds at least one address, whatever it is (as the reference).
    public func check(_ request: CNIRequest) throws {
        let config = try HostLocalConfig(json: request.rawConfig, ipArgument: nil)
        let attachment = AttachmentID(containerID: request.containerID, ifName: request.ifName)
        guard try !Self.allocator(config).addresses(of: attachment).isEmpty else {
            throw IPAMError.noReservation(containerID: attachment.containerID, ifName: attachment.ifName)
        }
    }

    /// GC: releases every reservation of this network whose attachment is not in
    /// `cni.dev/valid-attachments`.
    public func gc(_ request: CNIGCRequest) throws {
        let config = try HostLocalConfig(json: request.rawConfig, ipArgument: nil)
        let valid = Set(request.validAttachments.map { AttachmentID(containerID: $0.containerID, ifName: $0.ifname) })
        try Self.allocator(config).collectGarbage(keeping: valid)
    }

    /// STATUS: unavailable (50) when some range set has no free address.
    public func status(_ request: CNIStatusRequest) throws {
        let config = try HostLocalConfig(json: request.rawConfig, ipArgument: nil)
        try Self.allocator(config).checkAvailability()
    }

    /// What ADD checks before it touches the store.
    static func addConfig(_ request: CNIRequest) throws -> HostLocalConfig {
        // The reference reads CNI_ARGS into a struct with `IP` only and refuses other keys
        // unless IgnoreUnknown is set.
        try request.args.checkKnown(["IP"])
        return try HostLocalConfig(json: request.rawConfig, ipArgument: request.args["IP"])
    }

    /// For a plugin that delegates to host-local (`ipam.type` "host-local"): ADD's config checks,
    /// in-process and without touching the store, so the caller can refuse a config before it
    /// creates anything. Throws what host-local's ADD would (as a `CNIError`); other types pass.
    @Sendable public static func checkDelegatedConfig(ipamType: String, request: CNIRequest) throws {
        guard ipamType == "host-local" else { return }
        do { _ = try addConfig(request) } catch { throw CNIError(mapping: error) }
    }

    static func allocator(_ config: HostLocalConfig) throws -> HostLocalAllocator<DiskReservationStore> {
        let store = try DiskReservationStore(network: config.networkName, dataDirectory: config.dataDirectory)
        return HostLocalAllocator(rangeSets: config.rangeSets, store: store)
    }
}
