import NetAddress

/// The kernel's IPVS table of one network namespace, through generic netlink (family "IPVS"): what
/// `ipvsadm` does. Open it inside `NetworkNamespace.run { }` (or with `inside(_:)`) to manage another
/// namespace; it stays bound to that namespace for good.
///
/// Every command needs CAP_NET_ADMIN, reads included.
public final class IPVSSocket: IPVSTable {
    public let socket: NetlinkSocket
    /// The IPVS family as nlctrl resolved it (its id is the type of every message).
    public let family: GenericNetlinkFamily

    /// Opens a socket in the current network namespace and resolves the IPVS family. Throws
    /// `.familyNotFound(family: "IPVS", module: "ip_vs")` on a kernel without IPVS, whose description
    /// says which module to load.
    public init() throws(GenericNetlinkError) {
        let genl: GenericNetlinkSocket
        do { genl = try GenericNetlinkSocket() } catch { throw .netlink(error) }
        family = try genl.family(named: IPVSMessage.familyName, module: IPVSMessage.module)
        socket = genl.socket
    }

    /// Opens a socket bound to `namespace`.
    public static func inside(_ namespace: NetworkNamespace) throws(GenericNetlinkError) -> IPVSSocket {
        do {
            return try namespace.run { () throws -> IPVSSocket in try IPVSSocket() }
        } catch let e as GenericNetlinkError {
            throw e
        } catch let e as NetlinkError {
            throw .netlink(e)
        } catch {
            throw .netlink(NetlinkError(.enterNamespace, "\(namespace.path): \(error)", errno: .ioError))
        }
    }

    // MARK: - Reading

    /// The IPVS version and connection-table size. Kernel: IPVS_CMD_GET_INFO. Same as the first line of `ipvsadm -Ln`.
    public func info() throws(NetlinkError) -> IPVSInfo {
        let replies = try socket.get(IPVSMessage.infoRequest(family: family.id), .getIPVSInfo, "IPVS")
        guard let info = replies.lazy.compactMap(IPVSMessage.parseInfo).first else {
            throw NetlinkError(.getIPVSInfo, "IPVS: no IPVS_CMD_SET_INFO in the answer", errno: .ioError)
        }
        return info
    }

    /// Every virtual service (firewall-mark services, which Keel does not use, are left out).
    /// Kernel: IPVS_CMD_GET_SERVICE, NLM_F_DUMP. Same as `ipvsadm -Ln` without the real servers.
    public func services() throws(NetlinkError) -> [IPVSService] {
        try socket.dump(IPVSMessage.servicesDumpRequest(family: family.id), "IPVS services").compactMap(IPVSMessage.parseService)
    }

    /// One virtual service, nil if the kernel has none with that key (ESRCH).
    /// Kernel: IPVS_CMD_GET_SERVICE with the service key. Same as `ipvsadm -Ln -t ADDR:PORT`.
    public func service(_ key: IPVSServiceKey) throws(NetlinkError) -> IPVSService? {
        do {
            return try socket.get(IPVSMessage.serviceRequest(family: family.id, key: key), .getIPVSService, key.description)
                .lazy.compactMap(IPVSMessage.parseService).first
        } catch where error.errno == .noSuchProcess {
            return nil
        }
    }

    /// The real servers of `service`. Throws ESRCH if the service does not exist.
    /// Kernel: IPVS_CMD_GET_DEST, NLM_F_DUMP. Same as `ipvsadm -Ln -t ADDR:PORT`.
    public func destinations(of service: IPVSServiceKey) throws(NetlinkError) -> [IPVSDestination] {
        try destinationsWithStatistics(of: service).map(\.destination)
    }

    /// The real servers of `service` with their connection counters (active, inactive, persistent).
    /// Kernel: IPVS_CMD_GET_DEST, NLM_F_DUMP. Same as `ipvsadm -Ln --persistent-conn -t ADDR:PORT`.
    public func destinationsWithStatistics(of service: IPVSServiceKey) throws(NetlinkError)
        -> [(destination: IPVSDestination, statistics: IPVSDestinationStatistics)] {
        let family = service.address.family
        return try socket.dump(IPVSMessage.destinationsDumpRequest(family: self.family.id, service: service),
                               "IPVS destinations of \(service)")
            .compactMap { IPVSMessage.parseDestination($0, serviceFamily: family) }
    }

    // MARK: - Changing

    /// Adds a virtual service; EEXIST if it exists, ENOENT if the scheduler module is missing.
    /// Kernel: IPVS_CMD_NEW_SERVICE. Same as `ipvsadm -A -t ADDR:PORT -s SCHED [-p TIMEOUT]`.
    public func add(_ service: IPVSService) throws(NetlinkError) { try perform(.addService(service)) }

    /// Changes the scheduler, flags, timeout and netmask of an existing service (ESRCH if missing).
    /// Kernel: IPVS_CMD_SET_SERVICE. Same as `ipvsadm -E`.
    public func update(_ service: IPVSService) throws(NetlinkError) { try perform(.updateService(service)) }

    /// Deletes a service and its destinations; ESRCH (`isAlreadyGone`) if missing.
    /// Kernel: IPVS_CMD_DEL_SERVICE. Same as `ipvsadm -D`.
    public func delete(_ service: IPVSServiceKey) throws(NetlinkError) { try perform(.deleteService(service)) }

    /// Adds a real server to `service`; EEXIST if it is there, ESRCH if the service is missing.
    /// Kernel: IPVS_CMD_NEW_DEST. Same as `ipvsadm -a -t VIP:PORT -r ADDR:PORT -m -w WEIGHT`.
    public func add(_ destination: IPVSDestination, to service: IPVSServiceKey) throws(NetlinkError) {
        try perform(.addDestination(service, destination))
    }

    /// Changes weight, forwarding and thresholds of a real server (ENOENT if missing).
    /// Kernel: IPVS_CMD_SET_DEST. Same as `ipvsadm -e`.
    public func update(_ destination: IPVSDestination, of service: IPVSServiceKey) throws(NetlinkError) {
        try perform(.updateDestination(service, destination))
    }

    /// Removes a real server; ENOENT (`isAlreadyGone`) if missing, ESRCH if the service is.
    /// Kernel: IPVS_CMD_DEL_DEST. Same as `ipvsadm -d`.
    public func deleteDestination(_ address: IPAddress, port: UInt16, of service: IPVSServiceKey) throws(NetlinkError) {
        try perform(.deleteDestination(service, address: address, port: port))
    }

    /// Removes every service of the namespace. Kernel: IPVS_CMD_FLUSH. Same as `ipvsadm -C`.
    public func flush() throws(NetlinkError) {
        try socket.request(IPVSMessage.flushRequest(family: family.id), .flushIPVS, "all IPVS services")
    }

    /// Sends `operations` in order, pipelined (many per sendmsg; the kernel runs them in order).
    /// Every one is attempted; the first failure in list order is thrown, naming its command and
    /// object ("IPVS_CMD_NEW_DEST TCP 10.96.0.1:80 → 10.0.0.5:8080: File exists"). Unlike an nftables
    /// batch this is not atomic: what succeeded stays, so a caller that fails re-reads the table.
    public func apply(_ operations: [IPVSOperation]) throws(NetlinkError) {
        guard !operations.isEmpty else { return }
        try socket.requestAll(operations.map { op in
            (IPVSMessage.request(op, family: family.id), IPVSMessage.netlinkOperation(op), IPVSMessage.subject(op))
        })
    }

    private func perform(_ operation: IPVSOperation) throws(NetlinkError) {
        try socket.request(IPVSMessage.request(operation, family: family.id), IPVSMessage.netlinkOperation(operation),
                           IPVSMessage.subject(operation))
    }
}
