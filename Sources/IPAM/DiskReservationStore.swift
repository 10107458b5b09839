import CNI
import NetAddress

/// The reference host-local's on-disk layout, so that a node can switch between the two plugins
/// without losing a reservation:
///
/// - `<dataDir>/<network>/<ip>`: one file per reserved address, named by its text (IPv6 in Go's
///   canonical form), holding `<containerID>\r\n<ifname>`; files from host-local before 0.7 hold the
///   container ID alone and are read too.
/// - `<dataDir>/<network>/last_reserved_ip.<N>`: the address last reserved from range set N.
/// - `<dataDir>/<network>/lock`: an exclusive `flock(2)` on it guards every read-modify-write.
///   The reference takes the same lock, so the two can even run side by side.
public struct DiskReservationStore: ReservationStore {
    /// The reference's default `dataDir`.
    public static let defaultDataDirectory = "/var/lib/cni/networks"
    /// `<dataDir>/<network>`.
    public let directory: String

    /// Opens the store of `network` under `dataDirectory`, creating the directory (0755) if needed.
    public init(network: String, dataDirectory: String? = nil) throws {
        guard !network.isEmpty, network != ".", network != "..", !network.contains("/") else {
            throw IPAMError.invalidConfig(field: "name", reason: "network name \"\(quoted: network)\" cannot name a directory")
        }
        var base = dataDirectory.flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultDataDirectory
        while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
        directory = (base == "/" ? "" : base) + "/" + network
        try makeDirectories(directory)
    }

    public var lockPath: String { directory + "/lock" }

    public func withLock<R>(_ body: () throws -> R) throws -> R {
        let lock = try FileLock(path: lockPath)
        let result = try body()      // a throwing body drops `lock`, whose deinit closes and so unlocks
        try lock.unlock()
        return result
    }

    public func reserve(_ address: IPAddress, for attachment: AttachmentID, rangeSetIndex: Int) throws -> Bool {
        let path = directory + "/" + Self.fileName(for: address)
        guard try createExclusiveFile(path, Reservation.fileContent(for: attachment)) else { return false }
        do {
            try replaceFile(lastReservedPath(rangeSetIndex), Self.fileName(for: address))
        } catch {
            // The reference leaves the reservation in place when writing last_reserved_ip fails and
            // reports failure: an orphan nobody releases. Keel removes it, best effort.
            try? removeFile(path)
            throw error
        }
        return true
    }

    public func lastReservedAddress(rangeSetIndex: Int) throws -> IPAddress? {
        // An unreadable or garbled file only costs round-robin order once, as in the reference.
        guard let text = try readTextFile(lastReservedPath(rangeSetIndex)) else { return nil }
        return IPAddress(text.trimmingWhitespace())
    }

    public func reservations() throws -> [Reservation] {
        var result: [Reservation] = []
        for name in try listFiles(directory) {
            // Only files named by an address are reservations: skips `lock`, `last_reserved_ip.N`
            // and anything else an operator left there.
            guard let address = IPAddress(name), Self.fileName(for: address) == name,
                  let content = try readTextFile(directory + "/" + name) else { continue }
            result.append(Reservation(address: address, fileContent: content))
        }
        return result.sorted { $0.address < $1.address }
    }

    public func release(_ address: IPAddress) throws {
        try removeFile(directory + "/" + Self.fileName(for: address))
    }

    func lastReservedPath(_ index: Int) -> String { directory + "/last_reserved_ip.\(index)" }

    /// The file name of `address`: Go's `net.IP.String()`, which the reference uses. For IPv6 that is
    /// RFC 5952 text without the dotted-quad tail that glibc's `inet_ntop` prints for `::a.b.c.d`.
    public static func fileName(for address: IPAddress) -> String {
        switch address {
        case .v4(let a): return a.description
        case .v6(let a): return goIPv6Text(a)
        }
    }
}

/// Go's `net.IP.String()` for a 16-byte address: lowercase hex groups without leading zeros, the
/// longest run of two or more zero groups (the first one on a tie) written as `::`.
func goIPv6Text(_ address: IPv6Address) -> String {
    let bytes = address.bytes
    let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
    var bestStart = -1, bestLength = 0, i = 0
    while i < 8 {
        guard groups[i] == 0 else { i += 1; continue }
        var j = i
        while j < 8 && groups[j] == 0 { j += 1 }
        if j - i > bestLength { bestStart = i; bestLength = j - i }
        i = j
    }
    if bestLength < 2 { bestStart = -1 }
    var text = ""
    i = 0
    while i < 8 {
        if i == bestStart {
            text += "::"
            i += bestLength
            continue
        }
        if !text.isEmpty && !text.hasSuffix(":") { text += ":" }
        text += String(groups[i], radix: 16)
        i += 1
    }
    return text
}
