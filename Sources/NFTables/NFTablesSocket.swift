import CNftnl
import Netlink
import SystemPackage

/// The nftables side of the kernel, through one netfilter netlink socket: applies transactions as
/// single batches and reads tables back as `Ruleset` values.
///
/// Like every netlink socket it belongs to the network namespace it was opened in:
/// `try namespace.run { try NFTablesSocket() }` gives a handle on that namespace's ruleset.
public final class NFTablesSocket: Sendable {
    public let socket: NetlinkSocket

    /// Opens a NETLINK_NETFILTER socket in the calling thread's network namespace.
    public init() throws(NFTablesError) {
        do { socket = try NetlinkSocket(.netfilter) } catch { throw NFTablesError(error) }
    }

    public init(socket: NetlinkSocket) {
        precondition(socket.netlinkProtocol == .netfilter, "NFTablesSocket needs a NETLINK_NETFILTER socket")
        self.socket = socket
    }

    // MARK: - Apply

    /// Applies `transaction` as one batch: NFNL_MSG_BATCH_BEGIN, its messages, NFNL_MSG_BATCH_END,
    /// sent in one sendmsg. The kernel commits all of it or none of it, so after an error nothing
    /// has changed. Same as `nft -f` with the transaction's text.
    ///
    /// Throws the transaction's `validationError` without sending anything, or the kernel's error
    /// for the first operation that failed, naming it.
    public func apply(_ transaction: Transaction) throws(NFTablesError) {
        try send(transaction, commit: true)
    }

    /// Sends `transaction` as `apply` does but without NFNL_MSG_BATCH_END: the kernel checks every
    /// operation, reports the first it refuses, then aborts the batch, so nothing ever changes.
    /// Same as `nft --check -f`.
    public func check(_ transaction: Transaction) throws(NFTablesError) {
        try send(transaction, commit: false)
    }

    private func send(_ transaction: Transaction, commit: Bool) throws(NFTablesError) {
        if let error = transaction.validationError { throw error }
        guard !transaction.operations.isEmpty else { return }

        var owner: [UInt32: Int] = [:]   // sequence number → operation index
        var lastSequence: UInt32 = 0
        let answers: [UInt32: (errno: Int32, message: String?)]
        do {
            answers = try socket.sendBatch { next in
                let writer = BatchWriter()
                writer.begin(sequence: next())
                var encoder = OperationEncoder(writer: writer)
                for (index, op) in transaction.operations.enumerated() {
                    encoder.encode(op) {
                        let s = next()
                        owner[s] = index
                        lastSequence = s
                        return s
                    }
                }
                writer.requestAckOnLastCommand()
                if commit { writer.end(sequence: next()) }
                return writer.bytes
            }
        } catch {
            throw NFTablesError(error)
        }

        try Self.check(answers, owner: owner, lastSequence: lastSequence, of: transaction)
    }

    /// Maps the kernel's answers to a batch back to the transaction. The kernel goes on checking
    /// messages after the first failure (and may report more); the lowest sequence number is the
    /// operation that failed first. No error and no ACK of the last command is a failure too.
    static func check(_ answers: [UInt32: (errno: Int32, message: String?)], owner: [UInt32: Int], lastSequence: UInt32,
                      of transaction: Transaction) throws(NFTablesError) {
        if let (sequence, answer) = answers.filter({ $0.value.errno != 0 }).min(by: { $0.key < $1.key }) {
            let index = owner[sequence]
            throw NFTablesError(operation: index.map { transaction.operations[$0].summary } ?? "nftables batch",
                                operationIndex: index, errno: Errno(rawValue: answer.errno), kernelMessage: answer.message)
        }
        guard answers[lastSequence] != nil else {
            throw NFTablesError(operation: "nftables batch of \(transaction.operations.count) operations", errno: .ioError,
                                kernelMessage: "the kernel did not acknowledge the batch")
        }
    }

    // MARK: - Read back

    /// Everything in the namespace's nftables: every table with its chains, sets (with elements)
    /// and rules. Tables of other owners are included; use `table(named:family:)` for one table.
    /// Kernel: NFT_MSG_GETTABLE/GETCHAIN/GETSET/GETRULE dumps, then NFT_MSG_GETSETELEM per set.
    /// Same as `nft list ruleset`.
    public func ruleset() throws(NFTablesError) -> Ruleset {
        try read(family: 0, table: nil)
    }

    /// The tables that exist, in every family. Kernel: NFT_MSG_GETTABLE dump. Same as `nft list tables`.
    public func tables() throws(NFTablesError) -> [Table] {
        DumpReader.decode(try dump(.getTable, family: 0, what: "tables"),
                          alloc: { nftnl_table_alloc()! }, free: { nftnl_table_free($0) },
                          parse: { nftnl_table_nlmsg_parse($0, $1) }, ObjectCodec.decodeTable).sorted()
    }

    /// `tables()` as "family name" strings ("inet keel"), sorted.
    public func tableNames() throws(NFTablesError) -> [String] { try tables().map(\.description) }

    /// One table's objects, or nil if the table does not exist. Same as `nft list table <family> <name>`.
    public func table(named name: String, family: TableFamily) throws(NFTablesError) -> Ruleset? {
        let r = try read(family: family.nfproto, table: name)
        return r.tables.isEmpty ? nil : r
    }

    /// The elements of one set or map, as the kernel has them now. Kernel: NFT_MSG_GETSETELEM dump.
    public func elements(of set: NFTSet) throws(NFTablesError) -> Set<SetElement> {
        let messages = try dump(.getSetElem, family: set.table.family.nfproto, table: set.table.name, set: set.name,
                                what: "elements of \(set)")
        let o = SetCodec.makeReference(set.table, set.name)
        defer { nftnl_set_free(o) }
        for m in messages {
            _ = m.withRawMessage { nlh in
                nftnl_set_elems_nlmsg_parse(UnsafeRawPointer(nlh).assumingMemoryBound(to: CNftnl.nlmsghdr.self), o)
            }
        }
        return SetCodec.decodeElements(o, of: set)
    }

    private func read(family: UInt8, table name: String?) throws(NFTablesError) -> Ruleset {
        func keep(_ t: Table) -> Bool { name == nil || (t.name == name && t.family.nfproto == family) }
        let tables = DumpReader.decode(try dump(.getTable, family: family, what: "tables"),
                                       alloc: { nftnl_table_alloc()! }, free: { nftnl_table_free($0) },
                                       parse: { nftnl_table_nlmsg_parse($0, $1) }, ObjectCodec.decodeTable).filter(keep)
        guard !tables.isEmpty else { return Ruleset() }
        let chains = DumpReader.decode(try dump(.getChain, family: family, what: "chains"),
                                       alloc: { nftnl_chain_alloc()! }, free: { nftnl_chain_free($0) },
                                       parse: { nftnl_chain_nlmsg_parse($0, $1) }, ObjectCodec.decodeChain).filter { keep($0.table) }
        var sets = DumpReader.decode(try dump(.getSet, family: family, what: "sets"),
                                     alloc: { nftnl_set_alloc()! }, free: { nftnl_set_free($0) },
                                     parse: { nftnl_set_nlmsg_parse($0, $1) }, SetCodec.decodeSet).filter { keep($0.table) }
        for i in sets.indices { sets[i].elements = try elements(of: sets[i]) }
        let rules = DumpReader.decode(try dump(.getRule, family: family, table: name, what: "rules"),
                                      alloc: { nftnl_rule_alloc()! }, free: { nftnl_rule_free($0) },
                                      parse: { nftnl_rule_nlmsg_parse($0, $1) }, ObjectCodec.decodeRule).filter { keep($0.table) }
        return Ruleset(tables: tables, chains: chains, sets: sets, rules: rules)
    }

    private func dump(_ type: NFTMessage, family: UInt8, table: String? = nil, set: String? = nil,
                      what: String) throws(NFTablesError) -> [NetlinkMessage] {
        do {
            return try socket.dump(DumpReader.request(type, family: family, table: table, set: set), "nftables \(what)")
        } catch {
            throw NFTablesError(error)
        }
    }
}
