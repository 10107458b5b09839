import NetAddress

/// A named set or map with its elements.
///
/// Chains hold static rules; what changes (service addresses, endpoints, peers) lives in sets and
/// maps, so that a controller's small change is an element add/delete rather than a rule rewrite.
/// `elements` is unordered: the kernel returns them in its own order.
public struct NFTSet: Hashable, Sendable, CustomStringConvertible {
    public var table: Table
    public var name: String
    /// The key: one type, or several for a concatenation (`ipv4_addr . inet_proto . inet_service`).
    public var keyType: [DataType]
    /// What a map maps to; nil for a plain set.
    public var mapping: SetMapping?
    public var flags: SetFlags
    /// Default lifetime of an element (needs `.timeout`).
    public var timeout: Duration?
    /// Maximum element count (`size`), which dynamic sets filled from the packet path should have.
    public var maxElements: UInt32?
    public var elements: Set<SetElement>

    public init(_ table: Table, _ name: String, key: [DataType], mapping: SetMapping? = nil, flags: SetFlags = [],
                timeout: Duration? = nil, maxElements: UInt32? = nil, elements: Set<SetElement> = []) {
        self.table = table
        self.name = name
        keyType = key
        self.mapping = mapping
        self.flags = timeout == nil ? flags : flags.union(.timeout)
        self.timeout = timeout
        self.maxElements = maxElements
        self.elements = elements
    }

    public var isMap: Bool { mapping != nil }
    /// Concatenated intervals are kept by the pipapo backend, which takes a start and an end per element.
    var isConcatInterval: Bool { keyType.count > 1 && flags.contains(.interval) }

    /// The same set without elements: what identifies it for `delete`, `flush` and element operations.
    public var definition: NFTSet {
        var d = self
        d.elements = []
        return d
    }

    public var description: String { "\(isMap ? "map" : "set") \(table) \(name)" }
}

/// The value side of a map.
public enum SetMapping: Hashable, Sendable {
    /// A verdict map (`vmap`): each element decides the packet's fate.
    case verdict
    /// A data map: each element gives a value (possibly concatenated, e.g. `ipv4_addr . inet_service` for DNAT).
    case data([DataType])

    /// NFTA_SET_DATA_TYPE: NFT_DATA_VERDICT (0xffffff00) or nft's packed type.
    var kernelType: UInt32 {
        switch self {
        case .verdict: 0xffff_ff00
        case .data(let types): types.kernelType
        }
    }
    var kernelLength: Int {
        switch self {
        case .verdict: 16   // sizeof(struct nft_verdict); the kernel ignores what we send
        case .data(let types): types.kernelLength
        }
    }
}

/// The set flags a definition chooses. MAP and CONCAT follow from the key and mapping and are
/// added by the wire layer, so they cannot disagree with the definition.
public struct SetFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// NFT_SET_CONSTANT: contents may not change once a rule uses the set.
    public static let constant = SetFlags(rawValue: 0x2)
    /// NFT_SET_INTERVAL: elements may be ranges or prefixes.
    public static let interval = SetFlags(rawValue: 0x4)
    /// NFT_SET_TIMEOUT: elements expire.
    public static let timeout = SetFlags(rawValue: 0x10)
    /// NFT_SET_EVAL: rules may add elements from the packet path (`dynset`).
    public static let dynamic = SetFlags(rawValue: 0x20)

    static let modelled: SetFlags = [.constant, .interval, .timeout, .dynamic]
}

/// One element of a set or map.
public struct SetElement: Hashable, Sendable, CustomStringConvertible {
    /// The key; one value per key field of the set.
    public var key: [DataValue]
    /// The inclusive end of a range, for interval sets; nil for a single key.
    public var keyEnd: [DataValue]?
    /// The mapped value, for maps.
    public var value: ElementValue?
    /// This element's lifetime; nil means the set's default.
    public var timeout: Duration?

    public init(_ key: [DataValue], to keyEnd: [DataValue]? = nil, value: ElementValue? = nil, timeout: Duration? = nil) {
        self.key = key
        self.keyEnd = keyEnd == key ? nil : keyEnd
        self.value = value
        self.timeout = timeout
    }

    /// A set element with a single key field.
    public init(_ key: DataValue, timeout: Duration? = nil) { self.init([key], timeout: timeout) }

    /// A verdict-map element.
    public init(_ key: [DataValue], verdict: Verdict, timeout: Duration? = nil) {
        self.init(key, value: .verdict(verdict), timeout: timeout)
    }

    /// A data-map element.
    public init(_ key: [DataValue], data: [DataValue], timeout: Duration? = nil) {
        self.init(key, value: .data(data), timeout: timeout)
    }

    /// An interval element from a CIDR prefix.
    public init(prefix: CIDR, value: ElementValue? = nil) {
        self.init([.ip(prefix.network)], to: [.ip(prefix.last)], value: value)
    }

    public var description: String {
        var text = key.map(\.description).joined(separator: " . ")
        if let keyEnd { text += "-" + keyEnd.map(\.description).joined(separator: " . ") }
        if let timeout { text += " timeout \(timeout.milliseconds)ms" }
        switch value {
        case .verdict(let v)?: text += " : \(v)"
        case .data(let d)?: text += " : " + d.map(\.description).joined(separator: " . ")
        case nil: break
        }
        return text
    }
}

/// The value of a map element.
public enum ElementValue: Hashable, Sendable {
    case verdict(Verdict)
    case data([DataValue])
}

extension Duration {
    /// Whole milliseconds, the unit of every nftables timeout attribute.
    var milliseconds: UInt64 {
        let (s, atto) = components
        return UInt64(max(0, s)) * 1000 + UInt64(max(0, atto) / 1_000_000_000_000_000)
    }
}
