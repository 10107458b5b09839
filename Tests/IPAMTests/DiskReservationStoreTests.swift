#if canImport(Glibc)
import Glibc
#endif
import Testing
import NetAddress
@testable import IPAM

@Suite struct DiskReservationStoreTests {
    @Test func layoutIsByteIdenticalToTheReference() throws {
        try withTemporaryDirectory { dir in
            let store = try DiskReservationStore(network: "mynet", dataDirectory: dir)
            #expect(store.directory == dir + "/mynet")
            let alloc = HostLocalAllocator(rangeSets: [try rangeSet("10.1.2.0/24"), try rangeSet("2001:db8:1::/64")], store: store)
            _ = try alloc.allocate(for: attachment("  abc123 ", "eth0"))
            #expect(try directoryListing(store.directory) ==
                    ["10.1.2.2", "2001:db8:1::2", "last_reserved_ip.0", "last_reserved_ip.1", "lock"])
            #expect(readFile(store.directory + "/10.1.2.2") == "abc123\r\neth0")
            #expect(readFile(store.directory + "/2001:db8:1::2") == "abc123\r\neth0")
            #expect(readFile(store.directory + "/last_reserved_ip.0") == "10.1.2.2")
            #expect(readFile(store.directory + "/last_reserved_ip.1") == "2001:db8:1::2")
            #expect(fileMode(store.directory + "/10.1.2.2") == 0o600)
            #expect(fileMode(store.directory) == 0o755)
        }
    }

    @Test func defaultDataDirectoryIsTheReferences() {
        #expect(DiskReservationStore.defaultDataDirectory == "/var/lib/cni/networks")
    }

    @Test func readsReservationsWrittenByTheReference() throws {
        try withTemporaryDirectory { dir in
            let net = dir + "/cbr0"
            try makeDirectories(net)
            // As host-local ≥ 0.7 writes them, as host-local < 0.7 wrote them, and hand-edited with \n.
            writeFile(net + "/10.244.1.2", "current\r\neth0")
            writeFile(net + "/10.244.1.3", "ancient")
            writeFile(net + "/10.244.1.4", "edited\nnet1\n")
            writeFile(net + "/fd00::5", "six\r\neth0")
            writeFile(net + "/last_reserved_ip.0", "10.244.1.4")
            writeFile(net + "/lock", "")
            writeFile(net + "/notes.txt", "current\r\neth0")
            let store = try DiskReservationStore(network: "cbr0", dataDirectory: dir)
            #expect(try store.reservations() == [
                Reservation(address: ip("10.244.1.2"), containerID: "current", ifName: "eth0"),
                Reservation(address: ip("10.244.1.3"), containerID: "ancient", ifName: nil),
                Reservation(address: ip("10.244.1.4"), containerID: "edited", ifName: "net1"),
                Reservation(address: ip("fd00::5"), containerID: "six", ifName: "eth0"),
            ])
            #expect(try store.lastReservedAddress(rangeSetIndex: 0) == ip("10.244.1.4"))
            #expect(try store.lastReservedAddress(rangeSetIndex: 1) == nil)

            // Round robin continues after the reference's last address, skipping its reservations.
            let alloc = HostLocalAllocator(rangeSets: [try rangeSet("10.244.1.0/24")], store: store)
            #expect(try alloc.allocate(for: attachment("new")).map(\.address) == [cidr("10.244.1.5/24")])
            #expect(try alloc.release(attachment("current", "eth0")) == [ip("10.244.1.2")])
            #expect(try alloc.release(attachment("ancient", "eth0")) == [ip("10.244.1.3")])
            #expect(!fileExists(net + "/10.244.1.2") && !fileExists(net + "/10.244.1.3"))
            #expect(fileExists(net + "/notes.txt"), "files not named by an address are never touched")
        }
    }

    @Test func releaseIsByContainerAndInterfaceAndIdempotent() throws {
        try withTemporaryDirectory { dir in
            let store = try DiskReservationStore(network: "n", dataDirectory: dir)
            let alloc = HostLocalAllocator(rangeSets: [try rangeSet("10.0.0.0/24")], store: store)
            _ = try alloc.allocate(for: attachment("c", "eth0"))
            _ = try alloc.allocate(for: attachment("c", "net1"))
            #expect(try alloc.release(attachment("c", "net1")) == [ip("10.0.0.3")])
            #expect(try alloc.release(attachment("c", "net1")) == [])
            #expect(try directoryListing(store.directory) == ["10.0.0.2", "last_reserved_ip.0", "lock"])
        }
    }

    @Test func garbageCollectionKeepsOnlyValidAttachments() throws {
        try withTemporaryDirectory { dir in
            let store = try DiskReservationStore(network: "n", dataDirectory: dir)
            let alloc = HostLocalAllocator(rangeSets: [try rangeSet("10.0.0.0/24"), try rangeSet("fd00::/64")], store: store)
            for id in ["a", "b", "c"] { _ = try alloc.allocate(for: attachment(id)) }
            #expect(try alloc.collectGarbage(keeping: [attachment("b")]).count == 4)
            #expect(try directoryListing(store.directory) == ["10.0.0.3", "fd00::3", "last_reserved_ip.0", "last_reserved_ip.1", "lock"])
            #expect(try alloc.collectGarbage(keeping: []).count == 2)
            #expect(try directoryListing(store.directory) == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"])
        }
    }

    @Test func lockFailureIsReported() throws {
        try withTemporaryDirectory { dir in
            let store = try DiskReservationStore(network: "n", dataDirectory: dir)
            // A dangling link into a missing directory: open(O_CREAT) fails even for root.
            symlink(dir + "/missing/lock", store.lockPath)
            #expect(throws: IPAMError.io(operation: "open", path: store.lockPath, errno: ENOENT)) {
                try store.withLock { }
            }
        }
    }

    @Test func networkNameMustNameADirectory() {
        for bad in ["", ".", "..", "a/b"] {
            #expect(throws: IPAMError.self) { try DiskReservationStore(network: bad, dataDirectory: "/tmp") }
        }
    }

    /// 20 threads, each with its own store (own lock descriptor, as separate plugin processes have),
    /// allocate concurrently from one network: every address must be distinct.
    @Test func concurrentAllocationsGetDistinctAddresses() throws {
        try withTemporaryDirectory { dir in
            let threads = 20, perThread = 5
            let sets = [try rangeSet("10.10.0.0/24"), try rangeSet("fd10::/120")]
            let results = Results()
            var ids: [pthread_t] = []
            for t in 0..<threads {
                let job = Job(dir: dir, sets: sets, thread: t, count: perThread, results: results)
                var tid = pthread_t()
                let box = Unmanaged.passRetained(job).toOpaque()
                #expect(pthread_create(&tid, nil, { raw in
                    let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
                    job.run()
                    return nil
                }, box) == 0)
                ids.append(tid)
            }
            for tid in ids { pthread_join(tid, nil) }
            let (leases, errors) = results.snapshot()
            #expect(errors.isEmpty, "\(errors)")
            #expect(leases.count == threads * perThread * 2)
            #expect(Set(leases).count == leases.count, "an address was handed out twice")
            let files = try directoryListing(dir + "/conc").filter { IPAddress($0) != nil }
            #expect(files.count == threads * perThread * 2)
        }
    }
}

private final class Results: @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var leases: [IPAddress] = []
    private var errors: [String] = []
    init() { pthread_mutex_init(&lock, nil) }
    func add(_ l: [IPAddress]) { pthread_mutex_lock(&lock); leases += l; pthread_mutex_unlock(&lock) }
    func fail(_ e: String) { pthread_mutex_lock(&lock); errors.append(e); pthread_mutex_unlock(&lock) }
    func snapshot() -> ([IPAddress], [String]) { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return (leases, errors) }
}

private final class Job: @unchecked Sendable {
    let dir: String, sets: [RangeSet], thread: Int, count: Int, results: Results
    init(dir: String, sets: [RangeSet], thread: Int, count: Int, results: Results) {
        (self.dir, self.sets, self.thread, self.count, self.results) = (dir, sets, thread, count, results)
    }
    func run() {
        do {
            for i in 0..<count {
                let store = try DiskReservationStore(network: "conc", dataDirectory: dir)
                let leases = try HostLocalAllocator(rangeSets: sets, store: store)
                    .allocate(for: AttachmentID(containerID: "t\(thread)-\(i)", ifName: "eth0"))
                results.add(leases.map(\.address.address))
            }
        } catch {
            results.fail("thread \(thread): \(error)")
        }
    }
}
