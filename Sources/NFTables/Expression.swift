/// One kernel expression, as the kernel runs it: loads into registers, comparisons, lookups and
/// statements. A rule is a list of these. Most code builds rules from `Statement`s, which expand
/// into expressions with registers allocated; this level is what is written and read back.
public enum Expression: Hashable, Sendable {
    /// `payload load <length>b @ <base> + <offset> => reg`.
    case payload(PayloadBase, offset: UInt32, length: UInt32, into: Register)
    /// Loads packet metadata (`meta l4proto`, `meta mark`, …).
    case meta(MetaKey, into: Register)
    /// Sets packet metadata from a register (`meta mark set`).
    case setMeta(MetaKey, from: Register)
    /// Loads a conntrack field; `direction` for per-direction keys (original/reply addresses).
    case ct(CtKey, direction: CtDirection?, into: Register)
    /// Compares a register with bytes; a false comparison ends the rule.
    case cmp(Register, CmpOp, [UInt8])
    /// `dest = (source & mask) ^ xor` over `mask.count` bytes.
    case bitwise(source: Register, into: Register, mask: [UInt8], xor: [UInt8])
    /// Looks the key in `source…` up in a named set or map. With `into`, a map's value is loaded
    /// (into `.verdict` for a verdict map); without, a miss (or a hit when `inverted`) ends the rule.
    case lookup(set: String, source: Register, into: Register?, inverted: Bool)
    /// Loads constant bytes into a register.
    case immediate([UInt8], into: Register)
    /// Sets the verdict.
    case verdict(Verdict)
    case nat(NATExpression)
    /// Source NAT to the outgoing interface's address.
    case masquerade(portMin: Register?, portMax: Register?, flags: NATFlags)
    /// A number generator: `(random | counter) % modulus + offset`.
    case numgen(NumgenMode, modulus: UInt32, offset: UInt32, into: Register)
    /// Counts packets and bytes. Counter values are not part of the model: a rule read back
    /// compares equal whatever it has counted.
    case counter
    case reject(RejectKind)
    case limit(Limit)
    /// Adds/updates an element of a dynamic set from the packet path.
    case dynset(DynamicSetUpdate)
    /// A FIB (routing table) lookup (`fib daddr type`).
    case fib(FibLookup)
    /// An expression this module does not model, read back from the kernel by its name.
    /// A rule containing one never compares equal to anything built here.
    case unsupported(String)
}

public enum PayloadBase: UInt32, Hashable, Sendable, CustomStringConvertible {
    case link = 0, network = 1, transport = 2, inner = 3
    public var description: String {
        switch self { case .link: "link"; case .network: "network"; case .transport: "transport"; case .inner: "inner" }
    }
}

/// NFT_CMP_* operators.
public enum CmpOp: UInt32, Hashable, Sendable, CustomStringConvertible {
    case eq = 0, neq, lt, lte, gt, gte
    public var description: String {
        switch self { case .eq: "=="; case .neq: "!="; case .lt: "<"; case .lte: "<="; case .gt: ">"; case .gte: ">=" }
    }
}

/// An NFT_META_* key.
public struct MetaKey: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let length = MetaKey(rawValue: 0)
    /// The link-layer protocol (ethertype), network byte order.
    public static let `protocol` = MetaKey(rawValue: 1)
    public static let priority = MetaKey(rawValue: 2)
    public static let mark = MetaKey(rawValue: 3)
    public static let iif = MetaKey(rawValue: 4)
    public static let oif = MetaKey(rawValue: 5)
    public static let iifname = MetaKey(rawValue: 6)
    public static let oifname = MetaKey(rawValue: 7)
    public static let skuid = MetaKey(rawValue: 10)
    public static let skgid = MetaKey(rawValue: 11)
    /// The netfilter family of the hook (`ipv4`, `ipv6`) — what tells IPv4 from IPv6 in an inet table.
    public static let nfproto = MetaKey(rawValue: 15)
    public static let l4proto = MetaKey(rawValue: 16)
    public static let pkttype = MetaKey(rawValue: 19)
    public static let cgroup = MetaKey(rawValue: 23)

    public var description: String {
        switch rawValue {
        case 0: "length"; case 1: "protocol"; case 2: "priority"; case 3: "mark"; case 4: "iif"; case 5: "oif"
        case 6: "iifname"; case 7: "oifname"; case 10: "skuid"; case 11: "skgid"; case 15: "nfproto"
        case 16: "l4proto"; case 19: "pkttype"; case 23: "cgroup"
        default: "meta\(rawValue)"
        }
    }
}

/// An NFT_CT_* key.
public struct CtKey: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let state = CtKey(rawValue: 0)
    public static let direction = CtKey(rawValue: 1)
    public static let status = CtKey(rawValue: 2)
    public static let mark = CtKey(rawValue: 3)
    public static let expiration = CtKey(rawValue: 5)
    public static let l3protocol = CtKey(rawValue: 7)
    public static let source = CtKey(rawValue: 8)
    public static let destination = CtKey(rawValue: 9)
    public static let `protocol` = CtKey(rawValue: 10)
    public static let protoSource = CtKey(rawValue: 11)
    public static let protoDestination = CtKey(rawValue: 12)

    public var description: String {
        switch rawValue {
        case 0: "state"; case 1: "direction"; case 2: "status"; case 3: "mark"; case 5: "expiration"
        case 7: "l3protocol"; case 8: "saddr"; case 9: "daddr"; case 10: "protocol"; case 11: "proto-src"
        case 12: "proto-dst"
        default: "ct\(rawValue)"
        }
    }
}

public enum CtDirection: UInt8, Hashable, Sendable {
    case original = 0, reply = 1
}

/// Conntrack states as bits of `ct state` (NF_CT_STATE_BIT and IP_CT_* in the kernel).
public struct CtState: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let invalid = CtState(rawValue: 1)
    public static let established = CtState(rawValue: 2)
    public static let related = CtState(rawValue: 4)
    public static let new = CtState(rawValue: 8)
    public static let untracked = CtState(rawValue: 64)
}

public enum NATType: UInt32, Hashable, Sendable {
    case snat = 0, dnat = 1
}

/// NF_NAT_RANGE_* flags a rule chooses. MAP_IPS and PROTO_SPECIFIED are implied by the address and
/// port registers (the kernel adds them itself), so they are not part of the model.
public struct NATFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let random = NATFlags(rawValue: 0x4)
    public static let persistent = NATFlags(rawValue: 0x8)
    public static let fullyRandom = NATFlags(rawValue: 0x10)
    public static let netmap = NATFlags(rawValue: 0x40)
    static let modelled: NATFlags = [.random, .persistent, .fullyRandom, .netmap]
}

/// The `nat` expression: snat/dnat to the address (and port) held in registers.
/// A maximum equal to its minimum is dropped: the kernel fills in max = min when none is given,
/// so the two spellings are the same rule.
public struct NATExpression: Hashable, Sendable {
    public var type: NATType
    /// The address family of the addresses in the registers (`.ip` or `.ip6`).
    public var family: TableFamily
    public var addressMin: Register?
    public var addressMax: Register?
    public var portMin: Register?
    public var portMax: Register?
    public var flags: NATFlags

    public init(_ type: NATType, family: TableFamily, addressMin: Register?, addressMax: Register? = nil,
                portMin: Register? = nil, portMax: Register? = nil, flags: NATFlags = []) {
        self.type = type
        self.family = family
        self.addressMin = addressMin
        self.addressMax = addressMax == addressMin ? nil : addressMax
        self.portMin = portMin
        self.portMax = portMax == portMin ? nil : portMax
        self.flags = flags
    }
}

public enum NumgenMode: UInt32, Hashable, Sendable {
    case incremental = 0, random = 1
}

/// How to reject: an ICMP unreachable with a code, the family-neutral ICMPX code, or a TCP RST.
public enum RejectKind: Hashable, Sendable {
    /// An ICMP destination-unreachable with `code`, in the packet's own family (ICMPv6 for IPv6
    /// packets): the kernel's NFT_REJECT_ICMP_UNREACH does not record which, so neither does this.
    case icmp(code: UInt8)
    case icmpx(ICMPXCode)
    case tcpReset

    /// NFT_REJECT_ICMP_UNREACH 0, NFT_REJECT_TCP_RST 1, NFT_REJECT_ICMPX_UNREACH 2.
    var kernelType: UInt32 {
        switch self { case .icmp: 0; case .tcpReset: 1; case .icmpx: 2 }
    }
}

/// NFT_REJECT_ICMPX_* codes, translated by the kernel into ICMP or ICMPv6.
public enum ICMPXCode: UInt8, Hashable, Sendable {
    case noRoute = 0, portUnreachable = 1, hostUnreachable = 2, adminProhibited = 3
}

/// A token-bucket rate limit: matches while under `rate` per `unit` (or over it when `inverted`).
public struct Limit: Hashable, Sendable {
    public enum Unit: UInt64, Hashable, Sendable { case second = 1, minute = 60, hour = 3600, day = 86400, week = 604800 }
    public enum Kind: UInt32, Hashable, Sendable { case packets = 0, bytes = 1 }
    public var rate: UInt64
    public var unit: Unit
    public var burst: UInt32
    public var kind: Kind
    public var inverted: Bool

    /// nft's default burst is 5 packets (and 0 bytes); the kernel dumps what it uses, so it is explicit here.
    public init(rate: UInt64, per unit: Unit, burst: UInt32? = nil, kind: Kind = .packets, inverted: Bool = false) {
        self.rate = rate
        self.unit = unit
        self.burst = burst ?? (kind == .packets ? 5 : 0)
        self.kind = kind
        self.inverted = inverted
    }
}

public enum DynsetOp: UInt32, Hashable, Sendable {
    case add = 0, update = 1, delete = 2
}

/// Adds the key in `keyRegister…` (and a map value in `dataRegister…`) to a dynamic set.
public struct DynamicSetUpdate: Hashable, Sendable {
    public var op: DynsetOp
    public var set: String
    public var keyRegister: Register
    public var dataRegister: Register?
    public var timeout: Duration?

    public init(_ op: DynsetOp, set: String, keyRegister: Register, dataRegister: Register? = nil, timeout: Duration? = nil) {
        self.op = op
        self.set = set
        self.keyRegister = keyRegister
        self.dataRegister = dataRegister
        self.timeout = timeout
    }
}

/// A FIB lookup: which fields form the query (`flags`) and what it returns.
public struct FibLookup: Hashable, Sendable {
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let saddr = Flags(rawValue: 1)
        public static let daddr = Flags(rawValue: 2)
        public static let mark = Flags(rawValue: 4)
        public static let iif = Flags(rawValue: 8)
        public static let oif = Flags(rawValue: 16)
        public static let present = Flags(rawValue: 32)
    }
    public enum Result: UInt32, Hashable, Sendable { case oif = 1, oifname = 2, addressType = 3 }
    public var flags: Flags
    public var result: Result
    public var into: Register

    public init(flags: Flags, result: Result, into: Register) {
        self.flags = flags
        self.result = result
        self.into = into
    }
}
