/// An nft data type of a set key, a map value or a concatenation field: nft's type number (what the
/// kernel stores in NFTA_SET_KEY_TYPE, opaque to it but read by `nft list`) and its width in bytes.
public struct DataType: Hashable, Sendable, CustomStringConvertible {
    /// nft's `enum datatypes` number (TYPE_IPADDR = 7, …).
    public let id: UInt32
    /// Width of one value in bytes.
    public let byteLength: Int

    public init(id: UInt32, byteLength: Int) {
        self.id = id
        self.byteLength = byteLength
    }

    public static let ipv4Address = DataType(id: 7, byteLength: 4)
    public static let ipv6Address = DataType(id: 8, byteLength: 16)
    public static let etherAddress = DataType(id: 9, byteLength: 6)
    public static let inetProto = DataType(id: 12, byteLength: 1)
    public static let inetService = DataType(id: 13, byteLength: 2)
    /// Packet and conntrack marks, in host byte order.
    public static let mark = DataType(id: 19, byteLength: 4)
    public static let ifindex = DataType(id: 20, byteLength: 4)
    public static let ctState = DataType(id: 26, byteLength: 4)
    public static let ifname = DataType(id: 41, byteLength: 16)
    /// A plain 32-bit integer (numgen results, for example), host byte order.
    public static let integer32 = DataType(id: 4, byteLength: 4)

    static let known: [DataType] = [.ipv4Address, .ipv6Address, .etherAddress, .inetProto, .inetService, .mark,
                                    .ifindex, .ctState, .ifname, .integer32]

    /// nft's name, as in `type ipv4_addr . inet_service`.
    public var description: String {
        switch id {
        case 7: "ipv4_addr"
        case 8: "ipv6_addr"
        case 9: "ether_addr"
        case 12: "inet_proto"
        case 13: "inet_service"
        case 19: "mark"
        case 20: "iface_index"
        case 26: "ct_state"
        case 41: "ifname"
        case 4: "integer"
        default: "type\(id)"
        }
    }

    /// Types stored in host byte order; everything else is network order.
    var isHostOrder: Bool { id == 19 || id == 4 || id == 20 || id == 26 }

    /// Width rounded up to a 32-bit register: concatenation fields each start on one (NFT_REG32_SIZE).
    var registerLength: Int { (byteLength + 3) & ~3 }
}

extension [DataType] {
    /// The NFTA_SET_KEY_TYPE value: nft packs a concatenation as `id1 << 6n | … | idn` (TYPE_BITS = 6).
    var kernelType: UInt32 { reduce(0) { ($0 << 6) | $1.id } }

    /// The kernel key length: one field is its own width; a concatenation pads each field to 32 bits.
    var kernelLength: Int { count == 1 ? self[0].byteLength : reduce(0) { $0 + $1.registerLength } }

    /// Recovers the field types from a kernel type and length (nft's `concat_type_alloc`, reversed).
    init?(kernelType: UInt32, length: Int) {
        var ids: [UInt32] = []
        var t = kernelType
        while t != 0 { ids.insert(t & 0x3f, at: 0); t >>= 6 }
        if kernelType > 0x3f, ids.count > 1 {
            let types = ids.map { id in DataType.known.first { $0.id == id } }
            guard types.allSatisfy({ $0 != nil }) else { return nil }
            self = types.map { $0! }
            guard kernelLength == length else { return nil }
        } else {
            self = [DataType(id: kernelType, byteLength: length)]
        }
    }
}
