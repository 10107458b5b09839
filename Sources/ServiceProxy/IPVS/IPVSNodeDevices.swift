import Glibc
import NFTables
import NetAddress
import Netlink

/// The kernel objects beside the IPVS table that the IPVS data plane keeps in its namespace: the
/// dummy interface and its addresses, the sysctls, and the nftables table. `KernelIPVSNodeDevices`
/// is the real one; unit tests of the sync logic use an in-memory one.
public protocol IPVSNodeDevices: Sendable {
    /// The IPv4 addresses on the dummy interface; nil when the interface does not exist.
    func dummyAddresses() throws -> Set<IPAddress>?
    /// Creates the dummy interface if it is missing (left down), then adds and removes addresses (/32).
    /// Adding one that is there and removing one that is gone count as done.
    func updateDummy(adding: [IPAddress], removing: [IPAddress]) throws
    func readSysctl(_ name: String) throws -> String
    func writeSysctl(_ name: String, _ value: String) throws
    /// A table as the kernel has it; nil when it does not exist.
    func nftTable(_ table: Table) throws -> Ruleset?
    /// One nftables batch: all of it or nothing.
    func apply(_ transaction: Transaction) throws
}

/// The real devices of the namespace the sockets were opened in.
public struct KernelIPVSNodeDevices: IPVSNodeDevices {
    /// kube-proxy's kube-ipvs0, Keel's name. Left down, as kube-proxy leaves kube-ipvs0: the kernel
    /// adds the local route of an address whatever the link state, so the addresses count as the
    /// node's own (IPVS sees their packets in LOCAL_IN) while a down link adds no connected route
    /// and answers no neighbour solicitation on it.
    public static let dummyName: InterfaceName = "keel-ipvs0"

    let route: RouteSocket
    let nft: NFTablesSocket
    let namespace: NetworkNamespace?

    /// `namespace`: where sysctls are written (nil: the caller's own); the sockets must be open there.
    public init(route: RouteSocket, nft: NFTablesSocket, namespace: NetworkNamespace? = nil) {
        self.route = route
        self.nft = nft
        self.namespace = namespace
    }

    public func dummyAddresses() throws -> Set<IPAddress>? {
        guard let index = try dummyIndex() else { return nil }
        return Set(try route.addresses(link: index, family: .ipv4).map(\.cidr.address))
    }

    /// Creates the interface, down. A kernel built without the dummy driver (CONFIG_DUMMY unset, as on
    /// the development machines) refuses the kind with EOPNOTSUPP; an empty bridge kept down does the
    /// same job there — its addresses are local and it has no port to leak through. An existing
    /// `keel-ipvs0` of either kind is kept as it is (recreating it would drop every address at once).
    func createDummy() throws -> Int32 {
        do {
            return try route.createLink(LinkSpec(name: Self.dummyName, kind: .dummy)).index
        } catch {
            guard error.errno.rawValue == EOPNOTSUPP else { throw error }
            return try route.createLink(LinkSpec(name: Self.dummyName, kind: .bridge)).index
        }
    }

    /// The dummy interface's index; nil when it does not exist (ENODEV).
    func dummyIndex() throws -> Int32? {
        do {
            return try route.link(.name(Self.dummyName)).index
        } catch {
            if error.errno == .operationNotSupportedByDevice { return nil }
            throw error
        }
    }

    /// Both lists go pipelined (one sendmsg per 256 requests, `RouteSocket.replaceAddresses`): 10 000
    /// service addresses one round trip each took seconds of a full sync. Adds are replaces, so one
    /// that is there already is no error; a pipelined removal that failed is retried one at a time,
    /// which tells "already gone" (done) from a real failure.
    public func updateDummy(adding: [IPAddress], removing: [IPAddress]) throws {
        let index = try dummyIndex() ?? createDummy()
        func addresses(_ list: [IPAddress]) -> [InterfaceAddress] {
            list.compactMap { a in CIDR(a, prefixLength: a.isIPv4 ? 32 : 128).map { InterfaceAddress(linkIndex: index, cidr: $0) } }
        }
        try route.replaceAddresses(addresses(adding))
        let leaving = addresses(removing)
        do {
            try route.deleteAddresses(leaving)
        } catch {
            guard error.isAlreadyGone else { throw error }
            for address in leaving {
                do { try route.deleteAddress(address) } catch { if !error.isAlreadyGone { throw error } }
            }
        }
    }

    public func readSysctl(_ name: String) throws -> String { try Sysctl.read(name, in: namespace) }
    public func writeSysctl(_ name: String, _ value: String) throws { try Sysctl.write(name, value, in: namespace) }
    public func nftTable(_ table: Table) throws -> Ruleset? { try nft.table(named: table.name, family: table.family) }
    public func apply(_ transaction: Transaction) throws { try nft.apply(transaction) }
}

/// A sysctl the IPVS data plane sets, and why.
public struct IPVSSysctl: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
    public var description: String { "\(name)=\(value)" }

    /// What IPVS mode needs, as kube-proxy sets it for the kernel `release` (`uname -r`). Pure.
    ///
    /// - `net.ipv4.vs.conntrack=1`: IPVS keeps the connection tracked, so its rewritten packets pass
    ///   nat postrouting and can be masqueraded.
    /// - `net.ipv4.vs.expire_nodest_conn=1`: a deleted destination's connections are dropped on their
    ///   next packet instead of being black-holed, so clients reconnect elsewhere.
    /// - `net.ipv4.vs.expire_quiescent_template=1`: ClientIP affinity to a weight-0 (terminating)
    ///   destination expires, so those clients are scheduled again.
    /// - `net.ipv4.vs.conn_reuse_mode=0` on kernels 4.1 to 5.8 only: there mode 1 stalls a reused
    ///   source port for a second; 5.9 fixed that, and kube-proxy leaves the default (1) there.
    /// - `net.ipv4.ip_forward=1`.
    public static func required(kernelRelease release: String) -> [IPVSSysctl] {
        var list = [IPVSSysctl("net.ipv4.vs.conntrack", "1"), IPVSSysctl("net.ipv4.vs.expire_nodest_conn", "1"),
                    IPVSSysctl("net.ipv4.vs.expire_quiescent_template", "1")]
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        if numbers.count == 2, (numbers[0], numbers[1]) >= (4, 1), (numbers[0], numbers[1]) < (5, 9) {
            list.append(IPVSSysctl("net.ipv4.vs.conn_reuse_mode", "0"))
        }
        list.append(IPVSSysctl("net.ipv4.ip_forward", "1"))
        return list
    }

    /// The running kernel's release (`uname -r`).
    public static func currentKernelRelease() -> String {
        var u = utsname()
        guard uname(&u) == 0 else { return "" }
        let bytes = withUnsafeBytes(of: u.release) { Array($0) }
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
}
