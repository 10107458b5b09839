import NetAddress

/// What a rule says, in nft's terms: matches, lookups and actions. `Rule` expands statements into
/// kernel `Expression`s, allocating registers and adding the protocol matches the fields need.
///
///     Rule(services, [.match(.ipv4.daddr, equals: .ipv4(clusterIP)), .match(.tcp.dport, equals: .port(80)), .jump("svc-web")])
///     Rule(services, [.vmap("service-ips", key: [.ipv4.daddr, .l4proto, .th.dport])])
public enum Statement: Hashable, Sendable {
    case compare(Field, CmpOp, DataValue)
    /// `field lo-hi` (both inclusive); network-byte-order types only, as the kernel compares bytes.
    case range(Field, DataValue, DataValue)
    /// `field prefix/len` (or `!=` when `negated`).
    case prefix(Field, network: DataValue, length: Int, negated: Bool)
    /// `key @set` (or `key != @set`).
    case lookup(key: [Field], set: String, negated: Bool)
    /// `key vmap @map`.
    case verdictMap(key: [Field], map: String)
    /// `ct state <states>`: true if the connection is in any of them.
    case ctState(CtState)
    /// snat/dnat to one address (and port).
    case nat(NATType, address: IPAddress, port: UInt16?, flags: NATFlags)
    /// snat/dnat to the address (and port, when the map's value has one) that `map` gives for `key`.
    case natMap(NATType, family: AddressFamily, key: [Field], map: String, withPort: Bool)
    case masquerade(NATFlags)
    case counter
    case limit(Limit)
    case reject(RejectKind)
    case verdict(Verdict)
    /// `meta mark set <mark>`.
    case setMark(UInt32)
    /// `add|update @set { key timeout t }` from the packet path.
    case updateSet(DynsetOp, key: [Field], set: String, timeout: Duration?)
    /// Kernel expressions as they are, for what the statements do not cover.
    case expressions([Expression])

    public static func match(_ field: Field, equals value: DataValue) -> Statement { .compare(field, .eq, value) }
    public static func match(_ field: Field, notEquals value: DataValue) -> Statement { .compare(field, .neq, value) }
    public static func match(_ field: Field, from low: DataValue, through high: DataValue) -> Statement { .range(field, low, high) }
    public static func match(_ field: Field, in prefix: CIDR) -> Statement {
        .prefix(field, network: .ip(prefix.network), length: prefix.prefixLength, negated: false)
    }
    public static func match(_ field: Field, notIn prefix: CIDR) -> Statement {
        .prefix(field, network: .ip(prefix.network), length: prefix.prefixLength, negated: true)
    }
    /// Matches when `key` is in `set`.
    public static func lookup(in set: String, key: [Field]) -> Statement { .lookup(key: key, set: set, negated: false) }
    /// Matches when `key` is not in `set`.
    public static func lookup(notIn set: String, key: [Field]) -> Statement { .lookup(key: key, set: set, negated: true) }
    /// Jumps (or accepts/drops…) to what the verdict map `map` says for `key`; no match goes on.
    public static func vmap(_ map: String, key: [Field]) -> Statement { .verdictMap(key: key, map: map) }
    public static func dnat(to address: IPAddress, port: UInt16? = nil) -> Statement { .nat(.dnat, address: address, port: port, flags: []) }
    public static func snat(to address: IPAddress, port: UInt16? = nil) -> Statement { .nat(.snat, address: address, port: port, flags: []) }
    /// `dnat ip to <key> map @map`: the map's value is `ipv4_addr . inet_service` (withPort) or `ipv4_addr`.
    public static func dnat(_ family: AddressFamily, map: String, key: [Field], withPort: Bool = true) -> Statement {
        .natMap(.dnat, family: family, key: key, map: map, withPort: withPort)
    }
    public static var masquerade: Statement { .masquerade([]) }
    public static var accept: Statement { .verdict(.accept) }
    public static var drop: Statement { .verdict(.drop) }
    public static var `return`: Statement { .verdict(.return) }
    public static func jump(_ chain: String) -> Statement { .verdict(.jump(chain)) }
    public static func goto(_ chain: String) -> Statement { .verdict(.goto(chain)) }
    public static func limit(rate: UInt64, per unit: Limit.Unit, burst: UInt32? = nil) -> Statement {
        .limit(Limit(rate: rate, per: unit, burst: burst))
    }
}
