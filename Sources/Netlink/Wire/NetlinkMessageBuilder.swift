import CMnl

/// Builds one netlink message in a buffer through libmnl (`mnl_nlmsg_put_header`, `mnl_attr_put_check`,
/// `mnl_attr_nest_start_check`), which keeps lengths and NLA/NLMSG alignment right.
///
/// The buffer is sized for the largest message Keel sends (a link with nested link info is < 1 KiB);
/// running out of room is a programming error, not an input error, so it traps with the attribute.
public final class NetlinkMessageBuilder {
    private let buffer: UnsafeMutableRawPointer
    private let capacity: Int
    private let header: UnsafeMutablePointer<nlmsghdr>

    /// Starts a message of `type` with `flags` (NLM_F_REQUEST is always added).
    public init(type: UInt16, flags: NetlinkFlags = [], capacity: Int = 8192) {
        self.capacity = capacity
        buffer = .allocate(byteCount: capacity, alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: capacity)
        header = mnl_nlmsg_put_header(buffer)
        header.pointee.nlmsg_type = type
        header.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST) | flags.rawValue
    }
    deinit { buffer.deallocate() }

    public var type: UInt16 { header.pointee.nlmsg_type }
    public var flags: UInt16 { header.pointee.nlmsg_flags }

    /// Appends the family header (ifinfomsg, ifaddrmsg, rtmsg, ndmsg…) right after the netlink header.
    public func putFamilyHeader<T>(_ value: T) {
        let size = MemoryLayout<T>.size
        let room = mnl_nlmsg_put_extra_header(header, size)!
        withUnsafeBytes(of: value) { room.copyMemory(from: $0.baseAddress!, byteCount: size) }
    }

    public func put(_ type: UInt16, bytes: [UInt8]) {
        let ok = bytes.withUnsafeBytes { mnl_attr_put_check(header, capacity, type, bytes.count, $0.baseAddress) }
        precondition(ok, "netlink message buffer full at attribute \(type)")
    }
    public func put(_ type: UInt16, u8 value: UInt8) { put(type, bytes: [value]) }
    public func put(_ type: UInt16, u16 value: UInt16) { put(type, bytes: withUnsafeBytes(of: value) { Array($0) }) }
    public func put(_ type: UInt16, u32 value: UInt32) { put(type, bytes: withUnsafeBytes(of: value) { Array($0) }) }
    public func put(_ type: UInt16, i32 value: Int32) { put(type, bytes: withUnsafeBytes(of: value) { Array($0) }) }
    /// A 16-bit value in network byte order (ports).
    public func put(_ type: UInt16, be16 value: UInt16) { put(type, u16: value.bigEndian) }
    /// A NUL-terminated string, as IFLA_IFNAME and IFLA_INFO_KIND expect.
    public func put(_ type: UInt16, string: String) { put(type, bytes: Array(string.utf8) + [0]) }
    /// A zero-length flag attribute.
    public func putFlag(_ type: UInt16) { put(type, bytes: []) }

    /// Opens a nested attribute, lets `body` fill it, then closes it (`mnl_attr_nest_end` fixes its length).
    public func nest(_ type: UInt16, _ body: () -> Void) {
        guard let start = mnl_attr_nest_start_check(header, capacity, type) else {
            preconditionFailure("netlink message buffer full at nest \(type)")
        }
        body()
        mnl_attr_nest_end(header, start)
    }

    /// The message's bytes with `sequence` stamped in.
    public func bytes(sequence: UInt32) -> [UInt8] {
        header.pointee.nlmsg_seq = sequence
        return Array(UnsafeRawBufferPointer(start: buffer, count: Int(header.pointee.nlmsg_len)))
    }
}

/// NLM_F_* request flags.
public struct NetlinkFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let ack = NetlinkFlags(rawValue: UInt16(NLM_F_ACK))
    public static let root = NetlinkFlags(rawValue: UInt16(NLM_F_ROOT))
    public static let match = NetlinkFlags(rawValue: UInt16(NLM_F_MATCH))
    public static let dump: NetlinkFlags = [.root, .match]
    /// NLM_F_REPLACE: overwrite an existing object.
    public static let replace = NetlinkFlags(rawValue: UInt16(NLM_F_REPLACE))
    /// NLM_F_EXCL: fail with EEXIST if it exists.
    public static let exclusive = NetlinkFlags(rawValue: UInt16(NLM_F_EXCL))
    public static let create = NetlinkFlags(rawValue: UInt16(NLM_F_CREATE))
    public static let append = NetlinkFlags(rawValue: UInt16(NLM_F_APPEND))
}
