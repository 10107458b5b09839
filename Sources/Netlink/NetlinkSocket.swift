import CMnl
import Glibc
import Synchronization
import SystemPackage

/// The netlink protocols Keel speaks.
public enum NetlinkProtocol: Int32, Sendable {
    case route = 0        // NETLINK_ROUTE
    case netfilter = 12   // NETLINK_NETFILTER
    case generic = 16     // NETLINK_GENERIC
}

/// One netlink socket (libmnl's `mnl_socket`) with sequence numbers, ACK and error handling,
/// extended-ACK messages, multipart dumps and batched requests.
///
/// A socket stays in the network namespace of the thread that opened it, so opening one inside
/// `NetworkNamespace.run { }` gives a handle on that namespace usable from any thread. Requests are
/// serialised by a lock: one request's answers are never read by another.
public final class NetlinkSocket: @unchecked Sendable {
    private let socket: OpaquePointer
    private let lock = Mutex<UInt32>(0)
    public let portID: UInt32
    public let netlinkProtocol: NetlinkProtocol
    /// Large enough for a whole dump chunk: the kernel sizes dump skbs up to 32 KiB (more with big pages).
    static let receiveBufferSize = 65536

    public init(_ proto: NetlinkProtocol) throws(NetlinkError) {
        guard let s = mnl_socket_open(proto.rawValue) else { throw .fromErrno(.socket, "open \(proto)") }
        socket = s
        netlinkProtocol = proto
        guard mnl_socket_bind(s, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let e = NetlinkError.fromErrno(.socket, "bind \(proto)")
            mnl_socket_close(s)
            throw e
        }
        portID = mnl_socket_get_portid(s)
        // Extended ACKs carry the kernel's reason text; capped ACKs don't echo our whole request back.
        var on: Int32 = 1
        _ = mnl_socket_setsockopt(s, NETLINK_EXT_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        _ = mnl_socket_setsockopt(s, NETLINK_CAP_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        // Dumps of big tables and bursts of errors from a batch must not overflow the default 208 KiB.
        var size: Int32 = 4 << 20
        if setsockopt(mnl_socket_get_fd(s), SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(mnl_socket_get_fd(s), SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    deinit { mnl_socket_close(socket) }

    public var fileDescriptor: Int32 { mnl_socket_get_fd(socket) }

    // MARK: - Requests

    /// Sends one request with NLM_F_ACK and waits for its ACK; a negative ACK throws with `operation`/`subject`.
    public func request(_ message: NetlinkMessageBuilder, _ operation: NetlinkOperation, _ subject: String) throws(NetlinkError) {
        try lock.withLock { (seq: inout UInt32) throws(NetlinkError) in
            seq &+= 1
            let mySeq = seq
            let bytes = message.bytes(sequence: mySeq)
            try send(bytes, operation, subject)
            try awaitAcks(expecting: [mySeq: (operation, subject)], firstError: true)
        }
    }

    /// Sends a request that the kernel answers with objects (RTM_GETLINK for one link, say) and
    /// returns them; NLM_F_ACK makes the end of the answer explicit.
    public func get(_ message: NetlinkMessageBuilder, _ operation: NetlinkOperation, _ subject: String) throws(NetlinkError) -> [NetlinkMessage] {
        try lock.withLock { (seq: inout UInt32) throws(NetlinkError) -> [NetlinkMessage] in
            seq &+= 1
            let mySeq = seq
            var bytes = message.bytes(sequence: mySeq)
            bytes.withUnsafeMutableBytes { raw in
                raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self).pointee.nlmsg_flags |= UInt16(NLM_F_ACK)
            }
            try send(bytes, operation, subject)
            var replies: [NetlinkMessage] = []
            while true {
                for m in try receive(operation, subject) where m.sequence == mySeq {
                    guard Int32(m.type) == NLMSG_ERROR else { replies.append(m); continue }
                    let (code, text) = Self.parseError(m)
                    if code != 0 { throw NetlinkError(operation, subject, errno: Errno(rawValue: -code), kernelMessage: text) }
                    return replies
                }
            }
        }
    }

    /// Sends many requests, pipelined: up to `window` messages per sendmsg, then their ACKs.
    /// Every request is attempted; the first failure (in request order) is thrown at the end.
    /// This is what `ip -batch` does one message at a time.
    public func requestAll(_ requests: [(message: NetlinkMessageBuilder, operation: NetlinkOperation, subject: String)],
                           window: Int = 256) throws(NetlinkError) {
        var failures: [(Int, NetlinkError)] = []
        try lock.withLock { (seq: inout UInt32) throws(NetlinkError) in
            var start = 0
            while start < requests.count {
                let chunk = requests[start..<min(start + window, requests.count)]
                var bytes: [UInt8] = []
                var expected: [UInt32: (NetlinkOperation, String)] = [:]
                var indexOf: [UInt32: Int] = [:]
                for (offset, r) in chunk.enumerated() {
                    seq &+= 1
                    bytes += r.message.bytes(sequence: seq)
                    expected[seq] = (r.operation, r.subject)
                    indexOf[seq] = start + offset
                }
                try send(bytes, chunk.first!.operation, "batch of \(chunk.count)")
                let errors = try awaitAcks(expecting: expected, firstError: false)
                for (s, e) in errors { failures.append((indexOf[s]!, e)) }
                start += chunk.count
            }
        }
        if let first = failures.min(by: { $0.0 < $1.0 }) { throw first.1 }
    }

    /// Runs a dump (NLM_F_DUMP) and returns every message of it. A dump interrupted by a concurrent
    /// change (NLM_F_DUMP_INTR) is retried: a partial dump would read as "these objects are gone".
    public func dump(_ message: NetlinkMessageBuilder, _ what: String, attempts: Int = 5) throws(NetlinkError) -> [NetlinkMessage] {
        try lock.withLock { (seq: inout UInt32) throws(NetlinkError) -> [NetlinkMessage] in
            for _ in 0..<attempts {
                seq &+= 1
                let mySeq = seq
                try send(message.bytes(sequence: mySeq), .dump(what), what)
                var result: [NetlinkMessage] = []
                var interrupted = false
                var done = false
                while !done {
                    for m in try receive(.dump(what), what) where m.sequence == mySeq {
                        if m.flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                        switch Int32(m.type) {
                        case NLMSG_DONE: done = true
                        case NLMSG_ERROR:
                            let (code, text) = Self.parseError(m)
                            if code != 0 { throw NetlinkError(.dump(what), what, errno: Errno(rawValue: -code), kernelMessage: text) }
                        case NLMSG_NOOP: continue
                        default: result.append(m)
                        }
                    }
                }
                if !interrupted { return result }
            }
            throw NetlinkError(.dump(what), "\(what) (interrupted \(attempts) times)", errno: .interrupted)
        }
    }

    /// Sends a whole pre-built batch (nfnetlink BATCH_BEGIN … END) in one sendmsg and returns the
    /// kernel's answers keyed by sequence number. The kernel processes a batch inside sendmsg, so
    /// every answer is queued when it returns; we drain without blocking, as `nft` does.
    public func sendBatch(_ build: (_ nextSequence: () -> UInt32) -> [UInt8]) throws(NetlinkError) -> [UInt32: (errno: Int32, message: String?)] {
        try lock.withLock { (seq: inout UInt32) throws(NetlinkError) -> [UInt32: (errno: Int32, message: String?)] in
            var s = seq
            let bytes = build { s &+= 1; return s }
            seq = s
            try ensureSendBuffer(bytes.count)
            try send(bytes, .send, "nftables batch of \(bytes.count) bytes")
            var answers: [UInt32: (errno: Int32, message: String?)] = [:]
            while let messages = try receive(.receive, "nftables batch answers", wait: false) {
                for m in messages where Int32(m.type) == NLMSG_ERROR {
                    let (code, text) = Self.parseError(m)
                    answers[m.sequence] = (-code, text)
                }
            }
            return answers
        }
    }

    // MARK: - Internals

    private func ensureSendBuffer(_ size: Int) throws(NetlinkError) {
        var current: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fileDescriptor, SOL_SOCKET, SO_SNDBUF, &current, &len)
        // netlink_sendmsg refuses messages larger than sk_sndbuf - 32 with EMSGSIZE.
        guard Int(current) < size + 4096 else { return }
        var want = Int32(clamping: size + 65536)
        if setsockopt(fileDescriptor, SOL_SOCKET, SO_SNDBUFFORCE, &want, len) != 0 {
            guard setsockopt(fileDescriptor, SOL_SOCKET, SO_SNDBUF, &want, len) == 0 else {
                throw .fromErrno(.send, "set SO_SNDBUF to \(want)")
            }
        }
    }

    private func send(_ bytes: [UInt8], _ operation: NetlinkOperation, _ subject: String) throws(NetlinkError) {
        let sent = bytes.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        if sent < 0 { throw .fromErrno(operation, subject) }
    }

    private func receive(_ operation: NetlinkOperation, _ subject: String) throws(NetlinkError) -> [NetlinkMessage] {
        try receive(operation, subject, wait: true) ?? []
    }

    /// One recvmsg. Without `wait`, returns nil when nothing is queued.
    private func receive(_ operation: NetlinkOperation, _ subject: String, wait: Bool) throws(NetlinkError) -> [NetlinkMessage]? {
        var buffer = [UInt8](repeating: 0, count: Self.receiveBufferSize)
        while true {
            let n = buffer.withUnsafeMutableBytes { raw -> Int in
                if wait { return mnl_socket_recvfrom(socket, raw.baseAddress, raw.count) }
                return recv(fileDescriptor, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT))
            }
            if n < 0 {
                let e = currentErrno()
                if e == EINTR { continue }
                if !wait && (e == EAGAIN || e == EWOULDBLOCK) { return nil }
                throw NetlinkError(.receive, "\(operation) \(subject)", errno: Errno(rawValue: e))
            }
            return buffer.withUnsafeBytes { NetlinkMessage.parse(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    /// Reads until every expected sequence number has been acknowledged. With `firstError`, the
    /// first negative ACK is thrown; otherwise negative ACKs are returned by sequence number.
    @discardableResult
    private func awaitAcks(expecting expected: [UInt32: (NetlinkOperation, String)], firstError: Bool) throws(NetlinkError) -> [UInt32: NetlinkError] {
        var pending = Set(expected.keys)
        var errors: [UInt32: NetlinkError] = [:]
        let (anyOp, anySubject) = expected.values.first!
        while !pending.isEmpty {
            for m in try receive(anyOp, anySubject) where Int32(m.type) == NLMSG_ERROR && pending.contains(m.sequence) {
                pending.remove(m.sequence)
                let (code, text) = Self.parseError(m)
                guard code != 0 else { continue }
                let (op, subject) = expected[m.sequence]!
                let error = NetlinkError(op, subject, errno: Errno(rawValue: -code), kernelMessage: text)
                if firstError { throw error }
                errors[m.sequence] = error
            }
        }
        return errors
    }

    /// Decodes an NLMSG_ERROR: the (negative) error code and the NLMSGERR_ATTR_MSG text if present.
    static func parseError(_ m: NetlinkMessage) -> (Int32, String?) {
        guard m.payload.count >= 4 else { return (-EIO, nil) }
        let code = m.payload.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        var text: String?
        if m.flags & UInt16(NLM_F_ACK_TLVS) != 0 {
            // nlmsgerr = error + the original nlmsghdr; the request payload follows unless capped.
            var offset = 4 + MemoryLayout<nlmsghdr>.size
            if m.flags & UInt16(NLM_F_CAPPED) == 0, m.payload.count >= offset {
                let originalLength = m.payload.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self) }
                offset = 4 + Int(keel_nlmsg_align(Int32(originalLength)))
            }
            if m.payload.count > offset {
                text = NetlinkAttributes(parsing: m.payload[offset...]).string(UInt16(NLMSGERR_ATTR_MSG.rawValue))
            }
        }
        return (code, text)
    }
}
