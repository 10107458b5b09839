/// What a sync loop needs of the kernel's nftables: apply one transaction (all or nothing), read a
/// table back. `NFTablesSocket` is the real one; tests wrap it to inject faults.
public protocol NFTablesKernel: Sendable {
    /// Applies `transaction` atomically; an error means nothing changed.
    func apply(_ transaction: Transaction) throws(NFTablesError)
    /// Checks `transaction` as `apply` would, changing nothing (`nft --check`).
    func check(_ transaction: Transaction) throws(NFTablesError)
    /// The table as the kernel holds it, nil when it does not exist.
    func table(named name: String, family: TableFamily) throws(NFTablesError) -> Ruleset?
}

extension NFTablesSocket: NFTablesKernel {}
