import NetAddress

// The kernel's IPVS objects as values (include/uapi/linux/ip_vs.h), shared by the generic-netlink
// socket that programs them (`IPVSSocket`) and by the pure desired-state code of the IPVS data plane.

/// The transport protocol of a virtual service (IPPROTO_*).
public enum IPVSProtocol: UInt16, Sendable, Hashable, Comparable, CustomStringConvertible {
    case tcp = 6, udp = 17, sctp = 132
    public var description: String { switch self { case .tcp: "TCP"; case .udp: "UDP"; case .sctp: "SCTP" } }
    public static func < (l: Self, r: Self) -> Bool { l.rawValue < r.rawValue }
}

/// What identifies a virtual service: address, protocol and port (IPVS also allows firewall-mark
/// services; Keel does not use them).
public struct IPVSServiceKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var proto: IPVSProtocol
    public var port: UInt16
    public init(address: IPAddress, proto: IPVSProtocol, port: UInt16) {
        self.address = address
        self.proto = proto
        self.port = port
    }
    public var description: String {
        switch address {
        case .v4: "\(proto) \(address):\(port)"
        case .v6: "\(proto) [\(address)]:\(port)"
        }
    }
    public static func < (l: Self, r: Self) -> Bool { (l.address, l.proto, l.port) < (r.address, r.proto, r.port) }
}

/// Service flags (IP_VS_SVC_F_*).
public struct IPVSServiceFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Persistent connections (ClientIP affinity): `timeout` seconds per client.
    public static let persistent = IPVSServiceFlags(rawValue: 0x0001)
    /// Set by the kernel on every service in its table; never compared.
    public static let hashed = IPVSServiceFlags(rawValue: 0x0002)
    public static let onePacket = IPVSServiceFlags(rawValue: 0x0004)
    /// Scheduler-specific: for `sh`/`mh`, "fallback" (skip unavailable real servers).
    public static let schedulerFlag1 = IPVSServiceFlags(rawValue: 0x0008)
    /// Scheduler-specific: for `sh`/`mh`, "port" (hash the source port too).
    public static let schedulerFlag2 = IPVSServiceFlags(rawValue: 0x0010)
    public static let schedulerFlag3 = IPVSServiceFlags(rawValue: 0x0020)
}

/// A virtual service as Keel wants it, or as the kernel reports it.
public struct IPVSService: Sendable, Hashable, CustomStringConvertible {
    public var key: IPVSServiceKey
    /// The scheduler module's name without its `ip_vs_` prefix: rr, wrr, lc, wlc, sh, mh, …
    public var scheduler: String
    /// Flags Keel sets (never `.hashed`: the kernel's bookkeeping, ignored when comparing).
    public var flags: IPVSServiceFlags
    /// Persistence timeout in seconds (with `.persistent`).
    public var timeout: UInt32
    /// Persistence netmask: 32 for IPv4, 128 for IPv6 (one client per address).
    public var netmask: UInt32

    public init(key: IPVSServiceKey, scheduler: String = "rr", flags: IPVSServiceFlags = [], timeout: UInt32 = 0, netmask: UInt32? = nil) {
        self.key = key
        self.scheduler = scheduler
        self.flags = flags.subtracting(.hashed)
        self.timeout = timeout
        self.netmask = netmask ?? (key.address.isIPv4 ? 32 : 128)
    }

    public var description: String {
        "\(key) \(scheduler)" + (flags.contains(.persistent) ? " persistent \(timeout)" : "")
    }
}

/// How IPVS forwards to a real server (IP_VS_CONN_F_FWD_MASK values).
public enum IPVSForwarding: UInt32, Sendable, Hashable {
    /// NAT: the destination is rewritten (kube-proxy's only method).
    case masquerade = 0
    case local = 1
    case tunnel = 2
    case directRoute = 3
    case bypass = 4
}

/// A real server of a virtual service.
public struct IPVSDestination: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    /// 0 takes no new connections but keeps the established ones (a terminating endpoint).
    public var weight: UInt32
    public var forwarding: IPVSForwarding
    /// Upper/lower connection thresholds (0: none).
    public var upperThreshold: UInt32
    public var lowerThreshold: UInt32

    public init(address: IPAddress, port: UInt16, weight: UInt32 = 1, forwarding: IPVSForwarding = .masquerade,
                upperThreshold: UInt32 = 0, lowerThreshold: UInt32 = 0) {
        self.address = address
        self.port = port
        self.weight = weight
        self.forwarding = forwarding
        self.upperThreshold = upperThreshold
        self.lowerThreshold = lowerThreshold
    }

    public var description: String {
        switch address {
        case .v4: "\(address):\(port) w\(weight)"
        case .v6: "[\(address)]:\(port) w\(weight)"
        }
    }
    public static func < (l: Self, r: Self) -> Bool { (l.address, l.port) < (r.address, r.port) }
}

/// Counters the kernel reports with a destination (read-only; not part of its identity).
public struct IPVSDestinationStatistics: Sendable, Hashable {
    public var activeConnections: UInt32
    public var inactiveConnections: UInt32
    public var persistentConnections: UInt32
    public init(activeConnections: UInt32 = 0, inactiveConnections: UInt32 = 0, persistentConnections: UInt32 = 0) {
        self.activeConnections = activeConnections
        self.inactiveConnections = inactiveConnections
        self.persistentConnections = persistentConnections
    }
}

/// IPVS_CMD_GET_INFO: the kernel's IPVS version and connection-table size.
public struct IPVSInfo: Sendable, Hashable {
    /// As the kernel encodes it: major << 16 | minor << 8 | patch (1.2.1 = 0x010201).
    public var version: UInt32
    public var connectionTableSize: UInt32
    public init(version: UInt32, connectionTableSize: UInt32) {
        self.version = version
        self.connectionTableSize = connectionTableSize
    }
    public var versionString: String { "\(version >> 16).\((version >> 8) & 0xff).\(version & 0xff)" }
}

/// One change to the kernel's IPVS table, in the order a sync sends them.
public enum IPVSOperation: Sendable, Hashable, CustomStringConvertible {
    case addService(IPVSService)
    case updateService(IPVSService)
    case deleteService(IPVSServiceKey)
    case addDestination(IPVSServiceKey, IPVSDestination)
    case updateDestination(IPVSServiceKey, IPVSDestination)
    case deleteDestination(IPVSServiceKey, address: IPAddress, port: UInt16)

    public var description: String {
        switch self {
        case .addService(let s): "add service \(s)"
        case .updateService(let s): "update service \(s)"
        case .deleteService(let k): "delete service \(k)"
        case .addDestination(let k, let d): "add destination \(d) to \(k)"
        case .updateDestination(let k, let d): "update destination \(d) of \(k)"
        case .deleteDestination(let k, let a, let p): "delete destination \(a):\(p) of \(k)"
        }
    }
}

/// The kernel's IPVS table as the data plane sees it: read it, change it. `IPVSSocket` is the real
/// one (generic netlink); tests of the sync logic use an in-memory table.
public protocol IPVSTable: Sendable {
    /// Every virtual service (IPVS_CMD_GET_SERVICE dump).
    func services() throws -> [IPVSService]
    /// The real servers of one virtual service (IPVS_CMD_GET_DEST dump).
    func destinations(of service: IPVSServiceKey) throws -> [IPVSDestination]
    /// Sends the operations in order (pipelined); the first kernel error throws and names the
    /// operation and object it was about.
    func apply(_ operations: [IPVSOperation]) throws
}
