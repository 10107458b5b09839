import NetAddress

/// A route: `10.244.2.0/24 via 192.168.50.12 dev eth0 proto keel metric 100 table main onlink`.
public struct Route: Sendable, Hashable, CustomStringConvertible {
    public var destination: CIDR
    public var gateway: IPAddress?
    /// Output device index (RTA_OIF).
    public var device: Int32?
    /// RTNH_F_ONLINK: the gateway is on the link even if no address of ours covers it (host-gw and
    /// VXLAN peers whose addresses are outside every local prefix).
    public var onlink: Bool
    public var scope: Scope
    public var table: RouteTable
    /// RTA_PRIORITY. nil lets the kernel choose (0 for IPv4, 1024 for IPv6).
    public var metric: UInt32?
    public var proto: RouteProtocol
    public var type: RouteType
    /// RTA_PREFSRC: the source address for locally generated traffic.
    public var preferredSource: IPAddress?

    public init(destination: CIDR, gateway: IPAddress? = nil, device: Int32? = nil, onlink: Bool = false,
                scope: Scope? = nil, table: RouteTable = .main, metric: UInt32? = nil, proto: RouteProtocol = .boot,
                type: RouteType = .unicast, preferredSource: IPAddress? = nil) {
        self.destination = destination.masked
        self.gateway = gateway
        self.device = device
        self.onlink = onlink
        // As `ip route` does: link scope for a directly connected prefix, universe via a gateway.
        self.scope = scope ?? (gateway == nil && type == .unicast ? .link : .universe)
        self.table = table
        self.metric = metric
        self.proto = proto
        self.type = type
        self.preferredSource = preferredSource
    }

    public var description: String {
        var s = "\(type == .unicast ? "" : "\(type) ")\(destination)"
        if let gateway { s += " via \(gateway)" }
        if let device { s += " dev #\(device)" }
        s += " proto \(proto)"
        if let metric { s += " metric \(metric)" }
        if table != .main { s += " table \(table.rawValue)" }
        if onlink { s += " onlink" }
        return s
    }
}

/// A routing table id (RTA_TABLE; the 8-bit rtm_table field cannot hold ids above 255).
public struct RouteTable: RawRepresentable, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let main = RouteTable(rawValue: 254)
    public static let local = RouteTable(rawValue: 255)
}

/// Who installed a route (rtm_protocol). Keel marks its own routes so that a sync loop can find
/// exactly what it owns and never deletes an administrator's routes.
public struct RouteProtocol: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let kernel = RouteProtocol(rawValue: 2)
    public static let boot = RouteProtocol(rawValue: 3)
    public static let `static` = RouteProtocol(rawValue: 4)
    /// Keel's own number: not taken in iproute2's rt_protos list.
    public static let keel = RouteProtocol(rawValue: 75)

    public var description: String {
        switch rawValue {
        case 2: "kernel"
        case 3: "boot"
        case 4: "static"
        case 75: "keel"
        default: String(rawValue)
        }
    }
}

public enum RouteType: UInt8, Sendable, Hashable {
    case unicast = 1, local = 2, broadcast = 3, anycast = 4, multicast = 5, blackhole = 6, unreachable = 7, prohibit = 8
}
