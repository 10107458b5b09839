import Glibc
import NFTables
import NetAddress

/// Source NAT for pod traffic that leaves its own subnet, kept in one nftables table owned by Keel's
/// CNI plugins (`inet keel-cni`). The chain is static; pods come and go as set elements, so an ADD or a
/// DEL is one small element transaction, never a rule rewrite:
///
///     table inet keel-cni {
///       map masq-v4 { type ipv4_addr : mark . mark }          pod IP → owner (network . attachment)
///       set masq-exempt-v4 { type ipv4_addr . ipv4_addr; flags interval }   pod IP . its own subnet
///       chain postrouting { type nat hook postrouting priority srcnat
///         ip saddr . ip daddr @masq-exempt-v4 return
///         ip daddr 224.0.0.0/4 return
///         ip saddr @masq-v4 masquerade  … and the same for IPv6 }
///     }
///
/// The owner value lets DEL remove only its own element (an address may have been handed to another
/// pod since) and lets GC find, per network, the elements of attachments that no longer exist.
public struct Masquerade: Sendable {
    public static let table = Table(.inet, "keel-cni")
    /// Serialises every "read the table, then delete what it holds" of concurrent plugin runs: a
    /// batch deleting an element another run deleted first fails whole with ENOENT (DEL, GC and the
    /// stale-entry replacement in ADD all read before they delete). Adding needs no lock.
    static let lockPath = "/run/keel/cni-masquerade.lock"
    let socket: NFTablesSocket

    public init(socket: NFTablesSocket) { self.socket = socket }

    /// Who owns a masquerade entry: hashes of the network name and of container ID + ifname.
    public struct Owner: Hashable, Sendable {
        public var network: UInt32
        public var attachment: UInt32
        public init(network: String, containerID: String, ifName: String) {
            self.network = fnv1a(network)
            attachment = fnv1a(containerID + "\u{0}" + ifName)
        }
        init(network: UInt32, attachment: UInt32) {
            self.network = network
            self.attachment = attachment
        }
        var value: [DataValue] { [.mark(network), .mark(attachment)] }
    }

    // MARK: - Desired objects (pure)

    static func ownerMap(_ family: AddressFamily) -> NFTSet {
        NFTSet(table, "masq-\(family == .ipv4 ? "v4" : "v6")", key: [family == .ipv4 ? .ipv4Address : .ipv6Address],
               mapping: .data([.mark, .mark]))
    }
    static func exemptSet(_ family: AddressFamily) -> NFTSet {
        let a: DataType = family == .ipv4 ? .ipv4Address : .ipv6Address
        return NFTSet(table, "masq-exempt-\(family == .ipv4 ? "v4" : "v6")", key: [a, a], flags: .interval)
    }
    static let chain = Chain(table, "postrouting", type: .nat, hook: .postrouting, priority: .srcnat)

    /// The table without any pod: what every plugin run ensures exists.
    public static var skeleton: Ruleset {
        Ruleset(tables: [table], chains: [chain],
                sets: [ownerMap(.ipv4), exemptSet(.ipv4), ownerMap(.ipv6), exemptSet(.ipv6)],
                rules: [
                    Rule(chain, comment: "inside the pod's own subnet", [.lookup(in: "masq-exempt-v4", key: [.ipv4.saddr, .ipv4.daddr]), .return]),
                    Rule(chain, comment: "inside the pod's own subnet", [.lookup(in: "masq-exempt-v6", key: [.ipv6.saddr, .ipv6.daddr]), .return]),
                    Rule(chain, comment: "multicast", [.match(.ipv4.daddr, in: CIDR("224.0.0.0/4")!), .return]),
                    Rule(chain, comment: "multicast", [.match(.ipv6.daddr, in: CIDR("ff00::/8")!), .return]),
                    Rule(chain, comment: "pods of keel networks", [.lookup(in: "masq-v4", key: [.ipv4.saddr]), .masquerade]),
                    Rule(chain, comment: "pods of keel networks", [.lookup(in: "masq-v6", key: [.ipv6.saddr]), .masquerade]),
                ])
    }

    static func ownerElement(_ address: CIDR, _ owner: Owner) -> SetElement {
        SetElement([.ip(address.address)], data: owner.value)
    }
    /// "From this pod to `destination` is not masqueraded."
    static func exemptElement(_ address: CIDR, _ destination: CIDR) -> SetElement {
        SetElement([.ip(address.address), .ip(destination.network)], to: [.ip(address.address), .ip(destination.last)])
    }

    // MARK: - Kernel

    /// Makes sure the table, its sets and the static chain exist exactly once. Concurrent plugin
    /// runs serialise on a lock file, since "read, then create if missing" is not atomic.
    public func ensureSkeleton() throws {
        try withFileLock(Self.lockPath) {
            let current = try socket.table(named: Self.table.name, family: Self.table.family)
            let skeleton = Self.skeleton
            if let current, Self.hasSkeleton(current) { return }
            // Missing or damaged: rebuild it, keeping the elements already there.
            var desired = skeleton
            if let current {
                desired.sets = desired.sets.map { set in
                    var s = set
                    s.elements = current.set(set.name, in: Self.table)?.elements ?? []
                    return s
                }
            }
            try socket.apply(transaction(from: nil, to: desired))
        }
    }

    static func hasSkeleton(_ current: Ruleset) -> Bool {
        let skeleton = Self.skeleton
        return current.rules(of: chain.name, in: table) == skeleton.rules
            && current.chain(chain.name, in: table) == chain
            && skeleton.sets.allSatisfy { s in current.set(s.name, in: table)?.definition == s.definition }
    }

    /// Masquerades traffic from `addresses` leaving their subnets, or, when `unmasqueraded` names
    /// prefixes (the cluster CIDR of an overlay), leaving those prefixes: pod-to-pod traffic across
    /// nodes keeps its source address.
    public func add(_ addresses: [CIDR], owner: Owner, unmasqueraded: [CIDR] = []) throws {
        guard !addresses.isEmpty else { return }
        var tx = Transaction()
        for family in [AddressFamily.ipv4, .ipv6] {
            let mine = addresses.filter { $0.family == family }
            guard !mine.isEmpty else { continue }
            tx.add(elements: mine.map { Self.ownerElement($0, owner) }, to: Self.ownerMap(family))
            let exempt = mine.flatMap { pod -> [SetElement] in
                let destinations = unmasqueraded.filter { $0.family == family }
                return (destinations.isEmpty ? [pod] : destinations).map { Self.exemptElement(pod, $0) }
            }
            tx.add(elements: exempt, to: Self.exemptSet(family))
        }
        // Fast path: one element transaction. Reading the table first would cost a dump of every
        // pod's entry on every ADD; the skeleton is (re)made only when the kernel says it is missing.
        var firstTry = Result { () throws(NFTablesError) in try socket.apply(tx) }
        if case let .failure(error) = firstTry, error.isNotFound {
            try ensureSkeleton()
            firstTry = Result { () throws(NFTablesError) in try socket.apply(tx) }
        }
        guard case let .failure(error) = firstTry else { return }
        guard error.isAlreadyExists else { throw error }
        // An entry left for the same address by an earlier owner (EEXIST: same key, other value):
        // replace it in one batch.
        let ips = Set(addresses.map(\.address))
        try withReadThenDelete { current in
            var replace = Transaction()
            for family in [AddressFamily.ipv4, .ipv6] {
                let stale = Self.elements(of: Self.ownerMap(family), in: current).filter { Self.address(of: $0).map(ips.contains) ?? false }
                if !stale.isEmpty { replace.delete(elements: stale, from: Self.ownerMap(family)) }
            }
            replace.append(contentsOf: tx)
            return (replace, ())
        }
    }

    /// Removes the entries that `owner` holds, whatever their addresses (DEL may run after the pod's
    /// namespace is gone). Entries of other owners stay, also for an address now given to another pod.
    @discardableResult
    public func remove(owner: Owner) throws -> [IPAddress] {
        try removeEntries { _, entryOwner in entryOwner == owner }
    }

    /// The addresses `owner` has entries for.
    public func addresses(of owner: Owner) throws -> [IPAddress] {
        guard let current = try socket.table(named: Self.table.name, family: Self.table.family) else { return [] }
        return [AddressFamily.ipv4, .ipv6].flatMap { family in
            Self.elements(of: Self.ownerMap(family), in: current).filter { Self.owner(of: $0) == owner }.compactMap(Self.address(of:))
        }.sorted()
    }

    /// Removes every entry of `network` whose attachment is not in `valid`. Returns the addresses removed.
    @discardableResult
    public func collectGarbage(network: String, valid: [(containerID: String, ifName: String)]) throws -> [IPAddress] {
        let networkHash = fnv1a(network)
        let keep = Set(valid.map { Owner(network: network, containerID: $0.containerID, ifName: $0.ifName).attachment })
        return try removeEntries { _, owner in owner.network == networkHash && !keep.contains(owner.attachment) }
    }

    /// Deletes, in one transaction, the owner and exemption entries of every address `selected` picks.
    /// Entries that are already gone (a concurrent DEL of the same attachment, a GC) are not an error.
    @discardableResult
    private func removeEntries(_ selected: (IPAddress, Owner) -> Bool) throws -> [IPAddress] {
        try withReadThenDelete { current in
            var tx = Transaction()
            var removed: [IPAddress] = []
            for family in [AddressFamily.ipv4, .ipv6] {
                let map = Self.ownerMap(family), exempt = Self.exemptSet(family)
                let chosen = Self.elements(of: map, in: current).filter { e in
                    guard let ip = Self.address(of: e), let owner = Self.owner(of: e) else { return false }
                    return selected(ip, owner)
                }
                guard !chosen.isEmpty else { continue }
                let ips = Set(chosen.compactMap(Self.address(of:)))
                removed += ips.sorted()
                tx.delete(elements: chosen, from: map)
                let exempts = Self.elements(of: exempt, in: current).filter { Self.address(of: $0).map(ips.contains) ?? false }
                if !exempts.isEmpty { tx.delete(elements: exempts, from: exempt) }
            }
            return (tx, removed)
        }
    }

    /// Reads the table and applies the transaction `plan` makes of it, holding `lockPath`, so that no
    /// other Keel plugin deletes between the read and the delete. A missing table is an empty one.
    /// ENOENT (something deleted behind the lock's back: an operator, an older plugin) re-reads and
    /// plans again rather than failing a DEL over an entry that is gone, which is what it wanted.
    private func withReadThenDelete<R>(_ plan: (Ruleset) throws -> (Transaction, R)) throws -> R {
        try withFileLock(Self.lockPath) {
            var attempt = 0
            while true {
                let current = try socket.table(named: Self.table.name, family: Self.table.family) ?? Ruleset()
                let (tx, result) = try plan(current)
                do {
                    if !tx.isEmpty { try socket.apply(tx) }
                    return result
                } catch let error as NFTablesError where error.isNotFound && attempt < 3 {
                    attempt += 1
                }
            }
        }
    }

    static func elements(of set: NFTSet, in ruleset: Ruleset) -> Set<SetElement> {
        ruleset.set(set.name, in: table)?.elements ?? []
    }
    static func address(of element: SetElement) -> IPAddress? { element.key.first.flatMap { IPAddress(bytes: $0.bytes) } }
    static func owner(of element: SetElement) -> Owner? {
        guard case let .data(values)? = element.value, values.count == 2,
              let n = values[0].uint32, let a = values[1].uint32 else { return nil }
        return Owner(network: n, attachment: a)
    }
}

extension DataValue {
    /// A 32-bit value stored in host order (marks, integers).
    var uint32: UInt32? {
        guard bytes.count == 4 else { return nil }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
    }
}

/// FNV-1a, 32 bits: stable across runs and machines, unlike Swift's seeded Hasher.
func fnv1a(_ s: String) -> UInt32 {
    var h: UInt32 = 2_166_136_261
    for b in s.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
    return h
}

/// Runs `body` holding an exclusive flock on `path` (created with its directory if missing).
func withFileLock<R>(_ path: String, _ body: () throws -> R) throws -> R {
    let dir = String(path[..<path.lastIndex(of: "/")!])
    mkdir(dir, 0o755)
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw PodNetworkError.invalidConfig(field: "lock \(path)", reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    while flock(fd, LOCK_EX) != 0 {
        guard errno == EINTR else { throw PodNetworkError.invalidConfig(field: "lock \(path)", reason: String(cString: strerror(errno))) }
    }
    defer { flock(fd, LOCK_UN) }
    return try body()
}
