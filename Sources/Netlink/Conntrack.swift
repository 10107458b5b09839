import NetAddress

/// The layer-4 protocol of a conntrack entry (CTA_PROTO_NUM): an IANA protocol number.
public struct ConntrackProtocol: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let icmp = ConntrackProtocol(rawValue: 1)
    public static let tcp = ConntrackProtocol(rawValue: 6)
    public static let udp = ConntrackProtocol(rawValue: 17)
    public static let icmpv6 = ConntrackProtocol(rawValue: 58)
    public static let sctp = ConntrackProtocol(rawValue: 132)

    /// Whether the tuple carries ports (CTA_PROTO_SRC_PORT/DST_PORT) rather than an ICMP id/type/code.
    public var hasPorts: Bool { self != .icmp && self != .icmpv6 }

    /// The name `conntrack -p` takes.
    public var description: String {
        switch self {
        case .icmp: "icmp"
        case .tcp: "tcp"
        case .udp: "udp"
        case .icmpv6: "icmpv6"
        case .sctp: "sctp"
        default: "\(rawValue)"
        }
    }
}

/// One direction of a connection as conntrack keys it (CTA_TUPLE_ORIG or CTA_TUPLE_REPLY).
///
/// For a DNATed service connection the original tuple is client → service VIP:port and the reply
/// tuple is backend:port → client, so the backend a connection was sent to is `reply.source`.
public struct ConntrackTuple: Hashable, Sendable, CustomStringConvertible {
    public var source: IPAddress
    public var destination: IPAddress
    /// TCP/UDP/SCTP ports (host byte order here; big endian on the wire). Nil for ICMP.
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    /// ICMP echo id, type and code, which key ICMP entries instead of ports. Nil for port protocols.
    public var icmp: ICMPKey?

    public struct ICMPKey: Hashable, Sendable {
        public var id: UInt16
        public var type: UInt8
        public var code: UInt8
        public init(id: UInt16, type: UInt8, code: UInt8) {
            self.id = id
            self.type = type
            self.code = code
        }
    }

    public init(source: IPAddress, destination: IPAddress, sourcePort: UInt16? = nil, destinationPort: UInt16? = nil,
                icmp: ICMPKey? = nil) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.icmp = icmp
    }

    public var description: String {
        func endpoint(_ a: IPAddress, _ p: UInt16?) -> String {
            guard let p else { return a.description }
            return a.isIPv4 ? "\(a):\(p)" : "[\(a)]:\(p)"
        }
        var text = "\(endpoint(source, sourcePort)) -> \(endpoint(destination, destinationPort))"
        if let icmp { text += " (icmp id \(icmp.id) type \(icmp.type) code \(icmp.code))" }
        return text
    }
}

/// IPS_* bits of CTA_STATUS (`linux/netfilter/nf_conntrack_common.h`).
public struct ConntrackStatus: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let expected = ConntrackStatus(rawValue: 1 << 0)
    public static let seenReply = ConntrackStatus(rawValue: 1 << 1)
    public static let assured = ConntrackStatus(rawValue: 1 << 2)
    public static let confirmed = ConntrackStatus(rawValue: 1 << 3)
    public static let sourceNAT = ConntrackStatus(rawValue: 1 << 4)
    public static let destinationNAT = ConntrackStatus(rawValue: 1 << 5)
    public static let dying = ConntrackStatus(rawValue: 1 << 9)
    public static let offload = ConntrackStatus(rawValue: 1 << 14)
}

/// One connection-tracking entry of a network namespace, as a ctnetlink dump returns it
/// (IPCTNL_MSG_CT_NEW messages), or what `conntrack -L` prints as one line.
public struct ConntrackEntry: Hashable, Sendable, CustomStringConvertible {
    public var family: AddressFamily
    public var proto: ConntrackProtocol
    /// As the first packet was seen: client → service VIP:port for a service connection.
    public var original: ConntrackTuple
    /// As answers are expected, after NAT: backend:port → client for a DNATed connection.
    public var reply: ConntrackTuple
    public var mark: UInt32
    public var status: ConntrackStatus
    /// Seconds until the entry expires (CTA_TIMEOUT), as of the dump.
    public var timeout: UInt32?
    /// The conntrack zone (CTA_ZONE); 0 is the default zone. A delete names the zone it looks in.
    public var zone: UInt16
    /// The kernel's id for this entry (CTA_ID). A delete carries it, and the kernel refuses (ENOENT)
    /// when the entry under that tuple has another id. Best effort only: the kernel derives the id
    /// from the entry's address and original tuple, so an entry re-created for the same tuple in the
    /// slot just freed gets the same id (seen on these machines about half the time).
    public var id: UInt32?

    public init(family: AddressFamily, proto: ConntrackProtocol, original: ConntrackTuple, reply: ConntrackTuple,
                mark: UInt32 = 0, status: ConntrackStatus = [], timeout: UInt32? = nil, zone: UInt16 = 0, id: UInt32? = nil) {
        self.family = family
        self.proto = proto
        self.original = original
        self.reply = reply
        self.mark = mark
        self.status = status
        self.timeout = timeout
        self.zone = zone
        self.id = id
    }

    public var description: String {
        var text = "\(proto) \(original) reply \(reply)"
        if mark != 0 { text += " mark \(mark)" }
        if zone != 0 { text += " zone \(zone)" }
        return text
    }
}
