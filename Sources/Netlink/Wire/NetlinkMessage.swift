import CMnl

/// One received netlink message: its header fields and the bytes after the header.
public struct NetlinkMessage: Sendable {
    public var type: UInt16
    public var flags: UInt16
    public var sequence: UInt32
    public var portID: UInt32
    /// Everything after the nlmsghdr: the family header, then attributes.
    public var payload: [UInt8]

    /// Splits a buffer received from the kernel into messages (`mnl_nlmsg_ok` / `mnl_nlmsg_next`).
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> [NetlinkMessage] {
        guard var cursor = UnsafeMutableRawPointer(mutating: bytes.baseAddress) else { return [] }
        var remaining = Int32(bytes.count)
        var messages: [NetlinkMessage] = []
        while true {
            let nlh = cursor.assumingMemoryBound(to: nlmsghdr.self)
            guard mnl_nlmsg_ok(nlh, remaining) else { break }
            let headerLength = Int(keel_nlmsg_hdrlen())
            let payloadLength = Int(nlh.pointee.nlmsg_len) - headerLength
            let payload = Array(UnsafeRawBufferPointer(start: cursor + headerLength, count: max(0, payloadLength)))
            messages.append(NetlinkMessage(type: nlh.pointee.nlmsg_type, flags: nlh.pointee.nlmsg_flags,
                                           sequence: nlh.pointee.nlmsg_seq, portID: nlh.pointee.nlmsg_pid,
                                           payload: payload))
            let next = mnl_nlmsg_next(nlh, &remaining)!
            cursor = UnsafeMutableRawPointer(next)
        }
        return messages
    }

    /// Reads the fixed family header at the start of the payload.
    public func familyHeader<T>(_: T.Type) -> T? {
        guard payload.count >= MemoryLayout<T>.size else { return nil }
        return payload.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    /// Attributes that follow a family header of `headerSize` bytes (aligned as NLMSG_ALIGN).
    public func attributes(afterHeaderOf headerSize: Int) -> NetlinkAttributes {
        let start = Int(keel_nlmsg_align(Int32(headerSize)))
        guard payload.count >= start else { return NetlinkAttributes() }
        return NetlinkAttributes(parsing: payload[start...])
    }
}

/// A parsed attribute list: the last value of each type (the kernel sends each once), with the
/// NLA_F_NESTED / NLA_F_NET_BYTEORDER bits stripped from the type.
public struct NetlinkAttributes: Sendable {
    public private(set) var values: [UInt16: [UInt8]] = [:]
    /// Types in the order they appeared (for nests whose entries repeat a type).
    public private(set) var ordered: [(type: UInt16, value: [UInt8])] = []

    public init() {}

    /// Walks attributes with `mnl_attr_ok` / `mnl_attr_next`, which honour NLA_ALIGN padding.
    public init(parsing bytes: some Collection<UInt8>) {
        let copy = Array(bytes)
        copy.withUnsafeBytes { raw in
            guard var cursor = raw.baseAddress, raw.count > 0 else { return }
            var remaining = Int32(raw.count)
            while remaining > 0 {
                let attr = UnsafeMutableRawPointer(mutating: cursor).assumingMemoryBound(to: nlattr.self)
                guard mnl_attr_ok(attr, remaining) else { break }
                let type = mnl_attr_get_type(attr)
                let length = Int(mnl_attr_get_payload_len(attr))
                let value = Array(UnsafeRawBufferPointer(start: mnl_attr_get_payload(attr), count: length))
                values[type] = value
                ordered.append((type, value))
                let step = Int(keel_nla_align(Int32(attr.pointee.nla_len)))
                cursor += step
                remaining -= Int32(step)
            }
        }
    }

    public subscript(type: UInt16) -> [UInt8]? { values[type] }
    public func has(_ type: UInt16) -> Bool { values[type] != nil }
    public func u8(_ type: UInt16) -> UInt8? { values[type].flatMap { $0.count >= 1 ? $0[0] : nil } }
    public func u16(_ type: UInt16) -> UInt16? { load(type, UInt16.self) }
    public func u32(_ type: UInt16) -> UInt32? { load(type, UInt32.self) }
    public func i32(_ type: UInt16) -> Int32? { load(type, Int32.self) }
    public func be16(_ type: UInt16) -> UInt16? { u16(type).map { UInt16(bigEndian: $0) } }
    public func string(_ type: UInt16) -> String? {
        values[type].map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
    public func nested(_ type: UInt16) -> NetlinkAttributes? { values[type].map { NetlinkAttributes(parsing: $0) } }

    private func load<T: FixedWidthInteger>(_ type: UInt16, _: T.Type) -> T? {
        guard let v = values[type], v.count >= MemoryLayout<T>.size else { return nil }
        return v.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }
}

extension NetlinkMessage {
    /// Rebuilds the on-wire message (header + payload) and lends it as an `nlmsghdr` pointer, for C
    /// parsers such as libnftnl's `nftnl_*_nlmsg_parse`.
    public func withRawMessage<R>(_ body: (UnsafePointer<nlmsghdr>) throws -> R) rethrows -> R {
        let headerLength = Int(keel_nlmsg_hdrlen())
        var raw = [UInt8](repeating: 0, count: headerLength + payload.count)
        var header = nlmsghdr(nlmsg_len: UInt32(raw.count), nlmsg_type: type, nlmsg_flags: flags,
                              nlmsg_seq: sequence, nlmsg_pid: portID)
        withUnsafeBytes(of: &header) { h in raw.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: h[0..<MemoryLayout<nlmsghdr>.size])) } }
        raw.replaceSubrange(headerLength..., with: payload)
        return try raw.withUnsafeBytes { try body($0.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)) }
    }
}
