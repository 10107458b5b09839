/// A packet or connection field that statements match on or use as a lookup key: where it is
/// loaded from, its data type, and what must be true of the packet for the load to make sense
/// (an IPv4 address only exists in an IPv4 packet; a TCP port only in a TCP one).
///
/// Named the way nft names them: `.ipv4.daddr`, `.tcp.dport`, `.th.dport`, `.l4proto`, `.ctMark`.
public struct Field: Hashable, Sendable {
    public enum Source: Hashable, Sendable {
        case payload(PayloadBase, offset: UInt32, length: UInt32)
        case meta(MetaKey)
        case ct(CtKey, direction: CtDirection?)
        case numgen(NumgenMode, modulus: UInt32, offset: UInt32)
        case fib(FibLookup.Flags, FibLookup.Result)
    }

    public var source: Source
    public var type: DataType
    public var requirement: Requirement?

    public init(_ source: Source, type: DataType, requirement: Requirement? = nil) {
        self.source = source
        self.type = type
        self.requirement = requirement
    }

    /// A protocol match that must come before a field's load, added once per rule by the builder.
    public enum Requirement: Hashable, Sendable {
        case ipv4
        case ipv6
        case transport(IPProtocol)
    }

    public struct IPv4Fields: Sendable {
        public let saddr = Field(.payload(.network, offset: 12, length: 4), type: .ipv4Address, requirement: .ipv4)
        public let daddr = Field(.payload(.network, offset: 16, length: 4), type: .ipv4Address, requirement: .ipv4)
        public let `protocol` = Field(.payload(.network, offset: 9, length: 1), type: .inetProto, requirement: .ipv4)
    }
    public struct IPv6Fields: Sendable {
        public let saddr = Field(.payload(.network, offset: 8, length: 16), type: .ipv6Address, requirement: .ipv6)
        public let daddr = Field(.payload(.network, offset: 24, length: 16), type: .ipv6Address, requirement: .ipv6)
        public let nexthdr = Field(.payload(.network, offset: 6, length: 1), type: .inetProto, requirement: .ipv6)
    }
    /// Ports at the start of a TCP/UDP/SCTP header.
    public struct PortFields: Sendable {
        public let sport: Field
        public let dport: Field
        init(_ requirement: Requirement?) {
            sport = Field(.payload(.transport, offset: 0, length: 2), type: .inetService, requirement: requirement)
            dport = Field(.payload(.transport, offset: 2, length: 2), type: .inetService, requirement: requirement)
        }
    }

    public static let ipv4 = IPv4Fields()
    public static let ipv6 = IPv6Fields()
    public static let tcp = PortFields(.transport(.tcp))
    public static let udp = PortFields(.transport(.udp))
    public static let sctp = PortFields(.transport(.sctp))
    /// Ports of whatever transport header follows (nft's `th`): no protocol match is added, so put
    /// `.l4proto` next to it, as a lookup key `[.ipv4.daddr, .l4proto, .th.dport]` does.
    public static let th = PortFields(nil)

    public static let l4proto = Field(.meta(.l4proto), type: .inetProto)
    public static let nfproto = Field(.meta(.nfproto), type: DataType(id: 2, byteLength: 1))
    public static let iifname = Field(.meta(.iifname), type: .ifname)
    public static let oifname = Field(.meta(.oifname), type: .ifname)
    public static let mark = Field(.meta(.mark), type: .mark)
    public static let ctMark = Field(.ct(.mark, direction: nil), type: .mark)
    /// `fib daddr type`: the routing type of the destination (2 = RTN_LOCAL), host byte order.
    public static let fibDestinationType = Field(.fib(.daddr, .addressType), type: .integer32)
    /// `fib saddr type`: the routing type of the source (2 = RTN_LOCAL: the node's own address).
    public static let fibSourceType = Field(.fib(.saddr, .addressType), type: .integer32)

    /// `numgen random|inc mod <modulus> offset <offset>`, as a key for a map lookup.
    public static func numgen(_ mode: NumgenMode, modulus: UInt32, offset: UInt32 = 0) -> Field {
        Field(.numgen(mode, modulus: modulus, offset: offset), type: .integer32)
    }

    /// The expression that loads this field into `register`.
    func load(into register: Register) -> Expression {
        switch source {
        case let .payload(base, offset, length): .payload(base, offset: offset, length: length, into: register)
        case let .meta(key): .meta(key, into: register)
        case let .ct(key, direction): .ct(key, direction: direction, into: register)
        case let .numgen(mode, modulus, offset): .numgen(mode, modulus: modulus, offset: offset, into: register)
        case let .fib(flags, result): .fib(FibLookup(flags: flags, result: result, into: register))
        }
    }
}
