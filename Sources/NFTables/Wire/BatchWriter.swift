import CNftnl

/// Writes an nfnetlink batch (NFNL_MSG_BATCH_BEGIN, nf_tables messages, NFNL_MSG_BATCH_END) into
/// one byte array for `NetlinkSocket.sendBatch`. Each message is built by libnftnl in a scratch
/// buffer and copied out, so the batch grows without a fixed page size.
final class BatchWriter {
    /// Large enough for any one message: element lists are split well below the 64 KiB an
    /// attribute nest can hold (`maxElementPayload`), rules are a few hundred bytes.
    static let scratchSize = 192 * 1024
    /// Element bytes per NEWSETELEM message. NFTA_SET_ELEM_LIST_ELEMENTS is one attribute, and an
    /// attribute's length is 16 bits.
    static let maxElementPayload = 48 * 1024

    private let scratch: UnsafeMutableRawPointer
    private(set) var bytes: [UInt8] = []
    private var lastCommandOffset: Int?

    init() {
        scratch = .allocate(byteCount: Self.scratchSize, alignment: 8)
        bytes.reserveCapacity(64 * 1024)
    }
    deinit { scratch.deallocate() }

    private var buffer: UnsafeMutablePointer<CChar> { scratch.assumingMemoryBound(to: CChar.self) }

    private func commit(_ nlh: UnsafeMutablePointer<nlmsghdr>, command: Bool) {
        let length = Int(nlh.pointee.nlmsg_len)
        precondition(length <= Self.scratchSize, "nftables message of \(length) bytes overran its buffer")
        if command { lastCommandOffset = bytes.count }
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: scratch, count: length))
    }

    func begin(sequence: UInt32) { commit(nftnl_batch_begin(buffer, sequence), command: false) }
    func end(sequence: UInt32) { commit(nftnl_batch_end(buffer, sequence), command: false) }

    /// One nf_tables message: header from libnftnl, payload from `fill`.
    func message(_ type: NFTMessage, family: TableFamily, flags: Int32, sequence: UInt32,
                 _ fill: (UnsafeMutablePointer<nlmsghdr>) -> Void) {
        let nlh = nftnl_nlmsg_build_hdr(buffer, type.rawValue, UInt16(family.nfproto), UInt16(flags), sequence)!
        fill(nlh)
        commit(nlh, command: true)
    }

    /// Sets NLM_F_ACK on the last command, so that a batch that succeeds is confirmed by one ACK.
    /// (Errors are always reported; without an ACK, success would be silence.)
    func requestAckOnLastCommand() {
        guard let offset = lastCommandOffset else { return }
        let flagsOffset = offset + 6   // nlmsghdr: len u32, type u16, flags u16
        var flags = UInt16(bytes[flagsOffset]) | UInt16(bytes[flagsOffset + 1]) << 8
        flags |= UInt16(NLM_F_ACK)
        bytes[flagsOffset] = UInt8(flags & 0xff)
        bytes[flagsOffset + 1] = UInt8(flags >> 8)
    }
}
