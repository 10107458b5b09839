import Netlink
import SystemPackage

/// A failed nftables operation: which operation (as nft-like text, and its index in the
/// transaction), the errno and the kernel's own extended-ACK text when it gave one.
///
/// The kernel applies a batch all or nothing, so an error from `apply` means nothing changed.
public struct NFTablesError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The operation, as `Transaction` renders it ("add rule inet keel input …"), or a step such as "dump sets".
    public var operation: String
    /// Index of the operation in `Transaction.operations`, when the error is about one.
    public var operationIndex: Int?
    public var errno: Errno
    public var kernelMessage: String?

    public init(operation: String, operationIndex: Int? = nil, errno: Errno, kernelMessage: String? = nil) {
        self.operation = operation
        self.operationIndex = operationIndex
        self.errno = errno
        self.kernelMessage = kernelMessage
    }

    /// A transaction that could not be valid, found before anything is sent (EINVAL).
    static func invalid(_ operation: String, index: Int?, _ reason: String) -> NFTablesError {
        NFTablesError(operation: operation, operationIndex: index, errno: .invalidArgument, kernelMessage: reason)
    }

    init(_ error: NetlinkError) {
        self.init(operation: "\(error.operation) \(error.subject)", errno: error.errno, kernelMessage: error.kernelMessage)
    }

    /// ENOENT: the table, chain, set, element or rule named does not exist.
    public var isNotFound: Bool { errno == .noSuchFileOrDirectory }
    /// EEXIST: a create of something that exists.
    public var isAlreadyExists: Bool { errno == .fileExists }

    public var description: String {
        var text = operationIndex.map { "operation \($0) (\(operation))" } ?? operation
        text += ": \(errno) (errno \(errno.rawValue))"
        if let kernelMessage, !kernelMessage.isEmpty { text += ": \(kernelMessage)" }
        return text
    }
}
