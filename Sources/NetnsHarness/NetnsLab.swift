import Glibc
import NetAddress
import Netlink

/// A set of network namespaces made for one test, demo or benchmark run, all named
/// `<prefix>-<pid>-<lab>-<label>` (`<lab>` numbers the labs of one process, so tests running in
/// parallel never share a name) so that they can be found again: `removeAll()` deletes them by name, and
/// a new lab with the same prefix first deletes those whose process is gone (a crashed run).
///
/// Everything a lab changes lives inside its namespaces; it never touches the caller's namespace.
public final class NetnsLab: @unchecked Sendable {
    public let prefix: String
    public let runID: Int32
    /// This lab's number in the process.
    public let labID: Int
    private var created: [String] = []
    private let lock = NSLockish()
    private static let counterLock = NSLockish()
    nonisolated(unsafe) private static var counter = 0

    public init(prefix: String) throws {
        self.prefix = prefix
        runID = getpid()
        labID = Self.counterLock.withLock { Self.counter += 1; return Self.counter }
        Self.removeLeftovers(prefix: prefix)
    }

    /// Creates a lab, runs `body`, and removes every namespace it made, also when `body` throws.
    public static func with<R>(prefix: String, _ body: (NetnsLab) throws -> R) throws -> R {
        let lab = try NetnsLab(prefix: prefix)
        defer { lab.removeAll() }
        return try body(lab)
    }

    /// A new namespace `<prefix>-<pid>-<lab>-<label>` with its loopback up.
    public func namespace(_ label: String) throws -> LabNamespace {
        let name = "\(prefix)-\(runID)-\(labID)-\(label)"
        // A name of ours from an earlier failed step in this run: take it over.
        if NetworkNamespace.listNamed().contains(name) { try? NetworkNamespace.delete(named: name) }
        let ns = try NetworkNamespace.create(named: name)
        lock.withLock { created.append(name) }
        let lab = try LabNamespace(name: name, namespace: ns)
        try lab.route.setUp("lo")
        return lab
    }

    /// Deletes every namespace this lab created; links inside go with them.
    public func removeAll() {
        let names = lock.withLock { () -> [String] in defer { created.removeAll() }; return created }
        for name in names.reversed() { try? NetworkNamespace.delete(named: name) }  // already gone is fine
    }

    /// Deletes namespaces `<prefix>-<pid>-*` whose process no longer runs, and, for a pid-less
    /// prefix used by scripts (`keel-demo`), everything under the prefix when `all` is set.
    public static func removeLeftovers(prefix: String, all: Bool = false) {
        for name in NetworkNamespace.listNamed() where name.hasPrefix(prefix + "-") {
            let rest = name.dropFirst(prefix.count + 1)
            let pid = rest.split(separator: "-").first.flatMap { Int32($0) }
            let alive = pid.map { kill($0, 0) == 0 || errno == EPERM } ?? false
            if all || !alive { try? NetworkNamespace.delete(named: name) }  // racing another cleaner is fine
        }
    }
}

/// One namespace of a lab, with an rtnetlink socket bound to it.
public final class LabNamespace: @unchecked Sendable {
    public let name: String
    public let namespace: NetworkNamespace
    public let route: RouteSocket

    init(name: String, namespace: NetworkNamespace) throws {
        self.name = name
        self.namespace = namespace
        route = try RouteSocket.inside(namespace)
    }

    /// Runs `body` on a thread inside this namespace.
    public func run<R>(_ body: () throws -> R) throws -> R { try namespace.run(body) }

    /// Runs a program inside this namespace.
    public func exec(_ argv: [String], environment: [String: String] = [:], stdin: [UInt8] = []) throws -> ProcessResult {
        try NamespaceProcess.run(argv, in: namespace, environment: environment, stdin: stdin)
    }

    /// Runs a program inside this namespace and returns stdout; throws with the output on failure.
    @discardableResult
    public func check(_ argv: [String]) throws -> String { try NamespaceProcess.check(argv, in: namespace) }

    public func sysctl(_ name: String, _ value: String) throws { try Sysctl.write(name, value, in: namespace) }
    public func sysctl(_ name: String) throws -> String { try Sysctl.read(name, in: namespace) }

    /// Adds an address to a link and brings the link up.
    public func configure(_ link: LinkRef, address: CIDR) throws {
        let index = try route.link(link).index
        try route.addAddress(InterfaceAddress(linkIndex: index, cidr: address, skipDuplicateDetection: address.family == .ipv6))
        try route.setUp(.index(index))
    }
}

/// A veth pair between two lab namespaces, created in one request from `a` with its peer placed
/// directly in `b`, each end addressed and up.
@discardableResult
public func connect(_ a: LabNamespace, _ aName: InterfaceName, _ aAddress: CIDR?,
                    to b: LabNamespace, _ bName: InterfaceName, _ bAddress: CIDR?, mtu: UInt32? = nil) throws -> (Link, Link) {
    let link = try a.route.createLink(LinkSpec(name: aName, kind: .veth(peerName: bName.value, peerNamespace: b.namespace), mtu: mtu))
    if let aAddress { try a.configure(.index(link.index), address: aAddress) } else { try a.route.setUp(.index(link.index)) }
    let peer = try b.route.link(.name(bName))
    if let bAddress { try b.configure(.index(peer.index), address: bAddress) } else { try b.route.setUp(.index(peer.index)) }
    return (try a.route.link(.index(link.index)), try b.route.link(.index(peer.index)))
}

/// A tiny mutex for bookkeeping (Foundation-free).
final class NSLockish: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}
