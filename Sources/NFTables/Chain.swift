/// A chain: a list of rules. A base chain is attached to a netfilter hook and sees packets; a
/// regular chain runs only when a rule or a verdict map jumps to it.
public struct Chain: Hashable, Sendable, CustomStringConvertible {
    public var table: Table
    public var name: String
    /// The hook attachment; nil for a regular chain.
    public var base: BaseChain?

    /// A regular chain, reached by `jump`/`goto` only.
    public init(_ table: Table, _ name: String) {
        self.table = table
        self.name = name
        base = nil
    }

    /// A base chain on `hook`. Packets that fall off the end get `policy`.
    public init(_ table: Table, _ name: String, type: ChainType, hook: Hook, priority: ChainPriority,
                policy: ChainPolicy = .accept, device: String? = nil) {
        self.table = table
        self.name = name
        base = BaseChain(type: type, hook: hook, priority: priority, policy: policy, device: device)
    }

    public var description: String { "chain \(table) \(name)" }
}

/// The hook attachment of a base chain.
public struct BaseChain: Hashable, Sendable {
    public var type: ChainType
    public var hook: Hook
    public var priority: ChainPriority
    public var policy: ChainPolicy
    /// The device of a netdev-family (ingress/egress) chain.
    public var device: String?

    public init(type: ChainType, hook: Hook, priority: ChainPriority, policy: ChainPolicy = .accept, device: String? = nil) {
        self.type = type
        self.hook = hook
        self.priority = priority
        self.policy = policy
        self.device = device
    }
}

/// What a base chain may do: `nat` chains see the first packet of a connection only.
public enum ChainType: String, Hashable, Sendable {
    case filter, nat, route
}

/// Base chain policy: the verdict for packets that no rule decided.
public enum ChainPolicy: String, Hashable, Sendable {
    case accept, drop
    var code: UInt32 { self == .accept ? 1 : 0 }   // NF_ACCEPT / NF_DROP
}

/// Netfilter hooks. The number differs per family (netdev `ingress` is 0, inet `ingress` is 5).
public enum Hook: String, Hashable, Sendable {
    case prerouting, input, forward, output, postrouting, ingress, egress

    func number(in family: TableFamily) -> UInt32 {
        if family == .netdev { return self == .egress ? 1 : 0 }   // NF_NETDEV_INGRESS / NF_NETDEV_EGRESS
        if family == .arp {                                         // NF_ARP_IN / OUT / FORWARD
            switch self { case .output: return 1; case .forward: return 2; default: return 0 }
        }
        switch self {
        case .prerouting: return 0      // NF_INET_PRE_ROUTING
        case .input: return 1           // NF_INET_LOCAL_IN
        case .forward: return 2         // NF_INET_FORWARD
        case .output: return 3          // NF_INET_LOCAL_OUT
        case .postrouting: return 4     // NF_INET_POST_ROUTING
        case .ingress: return 5         // NF_INET_INGRESS
        case .egress: return 6
        }
    }

    init?(number: UInt32, family: TableFamily) {
        let all: [Hook] = [.prerouting, .input, .forward, .output, .postrouting, .ingress, .egress]
        let candidates: [Hook] = switch family {
        case .netdev: [.ingress, .egress]
        case .arp: [.input, .output, .forward]
        default: all
        }
        guard let h = candidates.first(where: { $0.number(in: family) == number }) else { return nil }
        self = h
    }
}

/// A base chain's priority: lower runs first. The named values are nft's (`priority dstnat`).
public struct ChainPriority: RawRepresentable, Hashable, Sendable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public init(integerLiteral value: Int32) { rawValue = value }

    public static let raw: ChainPriority = -300
    public static let mangle: ChainPriority = -150
    public static let dstnat: ChainPriority = -100
    public static let filter: ChainPriority = 0
    public static let security: ChainPriority = 50
    public static let srcnat: ChainPriority = 100

    public var description: String { String(rawValue) }
}
