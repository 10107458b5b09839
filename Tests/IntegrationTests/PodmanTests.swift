import Foundation
import Glibc
import NetAddress
import Netlink
import NetnsHarness
import Testing

// A real runtime as the client: Debian's Podman 4.3 with its CNI network backend runs two containers
// on a Keel network (the shipped 10-keel-bridge.conflist, renamed and with a per-test IPAM dataDir),
// executing Keel's bridge + host-local from the build directory, and `podman rm` releases everything.
//
// Where Podman runs, and why it cannot reach the machine:
// - every podman command runs from a thread inside a lab node namespace (`node.exec`), so the plugins it
//   executes, the container namespaces, the bridge, the veths and the masquerade table are the node's;
// - and inside a private mount namespace held by a helper process (`PodmanSandbox`), where
//   * /var/lib is an overlay whose writes land in the test's temp dir: Podman 4.3's CNI backend keeps its
//     result cache in libcni's fixed /var/lib/cni (containers/common v0.50.1 calls `libcni.NewCNIConfig`
//     without a cache dir), and `podman import` writes /var/lib/containers/cache/blob-info-cache-v1.boltdb
//     even with --root elsewhere;
//   * /run is a tmpfs: Podman bind-mounts container namespaces under /run/netns and makes that directory
//     a shared mount, crun keeps its state in /run/crun;
//   * the hybrid-mode cgroup2 mount /sys/fs/cgroup/unified is unmounted: crun 1.8.1 refuses to start a
//     container on a hybrid host whose cgroup2 has a controller (here `hugetlb`) — "cgroups in hybrid mode
//     not supported, drop all controllers from cgroupv2";
// - with its storage (vfs, a 2 MB image), run root, tmp dir, events log and network config dir in the
//   temp dir, `cgroups = "disabled"` (no libpod_parent cgroups left in the machine's v1 hierarchy) and
//   small container ulimits: Podman's rootful default raises nofile/nproc to 1048576, and root here lacks
//   CAP_SYS_RESOURCE (crun: "setrlimit `RLIMIT_NOFILE`: Operation not permitted").
// The machine's network namespace and mount table are compared before and after.

@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs root"))
struct PodmanTests {
    @Test func podmanRunsContainersOnAKeelNetworkAndRmReleasesEverything() throws {
        let podmanBinary = PodmanFixture.which("podman")
        try #require(podmanBinary != nil, "podman is not installed: run scripts/test (it installs podman and busybox-static)")
        try #require(access("/bin/busybox", X_OK) == 0, "/bin/busybox missing: run scripts/test (it installs busybox-static)")
        for tool in ["nsenter", "unshare", "tar"] {
            try #require(PodmanFixture.which(tool) != nil, "\(tool) missing (util-linux / tar)")
        }
        let plugins = CNIRunner.keelPluginDirectory
        for plugin in ["bridge", "host-local", "loopback"] {
            try #require(access(plugins + "/" + plugin, X_OK) == 0, "Keel plugin \(plugin) not found in '\(plugins)': swift build first")
        }

        let machineBefore = try PodmanFixture.machineState()
        let outcome = Result {
            try NetnsLab.with(prefix: "keel-t") { lab in
                let node = try lab.namespace("podman-node")
                try PodmanSandbox.with(node: node, pluginDirectory: plugins) { podman in
                    try Self.twoContainersOnAKeelNetwork(podman)
                }
            }
        }
        // Compared also when the test failed: the cleanup has run by now.
        let machineAfter = try PodmanFixture.machineState()
        #expect(machineBefore == machineAfter, "the machine's root namespaces changed:\n\(machineBefore.difference(to: machineAfter).joined(separator: "\n"))")
        try outcome.get()
    }

    private static func twoContainersOnAKeelNetwork(_ podman: PodmanSandbox) throws {
        let node = podman.node
        try podman.check(["import", "--change", "CMD [\"/bin/sh\"]", podman.imageTar, PodmanSandbox.image])

        var containers: [PodmanContainer] = []
        for name in ["a", "b"] {
            try podman.check(["run", "-d", "--pull", "never", "--network", PodmanSandbox.network, "--name", name,
                              PodmanSandbox.image, "sleep", "300"])
            let c = try podman.inspect(name)
            podman.started(c)   // killed by PID in the cleanup should `podman rm` fail
            containers.append(c)
        }
        let (a, b) = (containers[0], containers[1])

        // Podman's view is what Keel's plugins returned: each address inside the network's subnet,
        // the gateway the bridge's, and host-local's reservation file names the container.
        let subnet = podman.subnet
        let gateway = try #require(subnet.network.advanced(by: 1).flatMap { CIDR($0, prefixLength: subnet.prefixLength) })
        #expect(a.address != b.address)
        for c in containers {
            #expect(subnet.contains(c.address), "\(c.name): \(c.address) is outside \(subnet)")
            #expect(c.prefixLength == subnet.prefixLength)
            #expect(c.gateway == gateway.address, "\(c.name): gateway \(c.gateway.map { "\($0)" } ?? "none")")
            let reservation = try? String(contentsOfFile: podman.reservationDirectory + "/\(c.address)", encoding: .utf8)
            #expect(reservation == "\(c.id)\r\neth0", "reservation file for \(c.address) holds \(reservation.debugDescription)")
        }
        #expect(PodmanFixture.reservations(in: podman.reservationDirectory) == Set(containers.map(\.address)))

        // The container itself has that address on eth0 (busybox's `ip`, read inside the container).
        for c in containers {
            let shown = try podman.check(["exec", c.name, "ip", "-4", "-o", "addr", "show", "dev", "eth0"])
            #expect(shown.contains("inet \(c.address)/\(subnet.prefixLength) "), "\(c.name) eth0: \(shown)")
        }

        // On the node: the bridge with the gateway address and one veth per container as its port.
        let bridgeName = try #require(InterfaceName(podman.bridgeName))
        let bridge = try node.route.link(.name(bridgeName))
        #expect(try node.route.addresses(link: bridge.index, family: .ipv4).map(\.cidr) == [gateway])
        let veths = try node.route.links().filter { $0.kind == "veth" }
        #expect(veths.count == 2 && veths.allSatisfy { $0.masterIndex == bridge.index }, "\(veths.map(\.name))")

        // Keel's masquerade (the shipped config has ipMasq) lists both containers, in the node's own table.
        let masquerade = try node.check(["nft", "list", "table", "inet", "keel-cni"])
        #expect(containers.allSatisfy { masquerade.contains("\($0.address) ") }, "\(masquerade)")

        // Container to container across the Keel bridge, both ways.
        let ab = try podman.run(["exec", a.name, "ping", "-c", "1", "-W", "2", "\(b.address)"])
        #expect(ab.succeeded, "a → b: \(ab)")
        let ba = try podman.run(["exec", b.name, "ping", "-c", "1", "-W", "2", "\(a.address)"])
        #expect(ba.succeeded, "b → a: \(ba)")

        // `podman rm` runs CNI DEL: no veth, no reservation, no masquerade entry left (host-local's lock and
        // last_reserved_ip bookkeeping files stay, as with the reference plugin; so do the bridge and the table).
        try podman.check(["rm", "--force", "--time", "0", a.name, b.name])
        #expect(try podman.check(["ps", "--all", "--quiet"]).trimmingCharacters(in: .whitespacesAndNewlines) == "")
        let left = try node.route.links().filter { $0.kind == "veth" }
        #expect(left.isEmpty, "veths left in the node: \(left.map(\.name))")
        #expect(PodmanFixture.reservations(in: podman.reservationDirectory).isEmpty,
                "reservations left: \(PodmanFixture.reservations(in: podman.reservationDirectory))")
        let masqueradeAfter = try node.check(["nft", "list", "table", "inet", "keel-cni"])
        #expect(!containers.contains { masqueradeAfter.contains("\($0.address) ") }, "masquerade entries left: \(masqueradeAfter)")
    }
}

/// A container as `podman inspect` reports it.
private struct PodmanContainer {
    var name: String
    var id: String
    var pid: Int32
    var conmonPID: Int32
    var address: IPAddress
    var prefixLength: Int
    var gateway: IPAddress?
}

/// Podman confined to a lab node namespace and a private mount namespace, with all of its state in one
/// temp dir that is removed at the end (see the comment at the top of this file).
private final class PodmanSandbox {
    static let network = "keel-test"
    static let image = "localhost/keel-busybox:test"

    let node: LabNamespace
    let directory: String
    let pluginDirectory: String
    let reservationDirectory: String
    var imageTar: String { directory + "/image.tar" }
    private(set) var subnet = CIDR("0.0.0.0/0")!
    private(set) var bridgeName = ""
    /// The process holding the private mount namespace; it exits when `release` (our socket end) closes.
    private var holder: pid_t = 0
    private var release: Int32 = -1
    private var containerPIDs: [(pid: Int32, comm: String)] = []

    private init(node: LabNamespace, directory: String, pluginDirectory: String) {
        self.node = node
        self.directory = directory
        self.pluginDirectory = pluginDirectory
        reservationDirectory = directory + "/ipam/" + Self.network
    }

    /// Sets Podman up, runs `body`, and removes every container, the mount namespace and the temp dir,
    /// also when `body` throws.
    static func with<R>(node: LabNamespace, pluginDirectory: String, _ body: (PodmanSandbox) throws -> R) throws -> R {
        let sandbox = PodmanSandbox(node: node, directory: try PodmanFixture.makeTempDirectory("/tmp/keel-podman-XXXXXX"),
                                    pluginDirectory: pluginDirectory)
        defer { sandbox.tearDown() }
        try sandbox.setUp()
        return try body(sandbox)
    }

    private func setUp() throws {
        let fm = FileManager.default
        for sub in ["root", "runroot", "tmp", "volumes", "net.d", "ipam", "varlib-upper", "varlib-work", "rootfs/bin"] {
            try fm.createDirectory(atPath: directory + "/" + sub, withIntermediateDirectories: true)
        }
        try writeImage()
        try writeNetwork()
        try writeContainersConf()
        try startHolder()
    }

    /// A busybox-static root filesystem as a tarball for `podman import`: no registry involved.
    private func writeImage() throws {
        let bin = directory + "/rootfs/bin"
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: bin + "/busybox")
        for applet in ["sh", "ip", "ping", "sleep", "nc", "cat"] {
            try FileManager.default.createSymbolicLink(atPath: bin + "/" + applet, withDestinationPath: "busybox")
        }
        try NamespaceProcess.check(["tar", "-C", directory + "/rootfs", "-cf", imageTar, "."])
    }

    /// The shipped bridge conflist, named `keel-test`, with IPAM state in the temp dir (never /var/lib/cni).
    private func writeNetwork() throws {
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("cni-conf/10-keel-bridge.conflist").path
        let parsed = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: shipped)))
        var list = try #require(parsed as? [String: Any], "\(shipped) is not a JSON object")
        var plugins = try #require(list["plugins"] as? [[String: Any]])
        var bridge = try #require(plugins.first)
        try #require(bridge["type"] as? String == "bridge", "\(shipped): the first plugin is not bridge")
        var ipam = try #require(bridge["ipam"] as? [String: Any])
        ipam["dataDir"] = directory + "/ipam"
        let ranges = try #require(ipam["ranges"] as? [[[String: Any]]])
        let subnetText = try #require(ranges.first?.first?["subnet"] as? String)
        subnet = try #require(CIDR(subnetText))
        bridgeName = try #require(bridge["bridge"] as? String)
        bridge["ipam"] = ipam
        plugins[0] = bridge
        list["plugins"] = plugins
        list["name"] = Self.network
        let data = try JSONSerialization.data(withJSONObject: list, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: directory + "/net.d/\(Self.network).conflist"))
    }

    private func writeContainersConf() throws {
        // Podman's rootful default raises nofile and nproc to 1048576 in the container; root here lacks
        // CAP_SYS_RESOURCE, so crun's setrlimit fails. Podman itself ends up with a lower nproc than this
        // process (conmon runs with 32768 here, the pid_max), so the limits are small fixed ones, never
        // above ours: a busybox `sleep` needs nothing more.
        let limits = [("nofile", RLIMIT_NOFILE), ("nproc", __RLIMIT_NPROC)].map { name, resource in
            var l = rlimit()
            getrlimit(__rlimit_resource_t(resource.rawValue), &l)
            let value = min(1024, l.rlim_cur, l.rlim_max)
            return "\"\(name)=\(value):\(value)\""
        }
        let conf = """
        [containers]
        cgroups = "disabled"
        default_ulimits = [\(limits.joined(separator: ", "))]

        [network]
        network_backend = "cni"
        cni_plugin_dirs = ["\(pluginDirectory)"]
        network_config_dir = "\(directory)/net.d"
        default_network = "\(Self.network)"

        [engine]
        cgroup_manager = "cgroupfs"
        events_logger = "file"
        events_logfile_path = "\(directory)/events.log"
        tmp_dir = "\(directory)/tmp"
        volume_path = "\(directory)/volumes"
        image_copy_tmp_dir = "\(directory)/tmp"

        """
        try conf.write(toFile: directory + "/containers.conf", atomically: true, encoding: .utf8)
    }

    /// Starts, from a thread in the node namespace, `unshare --mount` running a shell that sets up the
    /// private mounts, says `ready`, and waits for EOF on its stdin — our socket end, which closes in
    /// `tearDown` or when this process dies, so a crashed run leaves no holder behind.
    private func startHolder() throws {
        let script = """
        set -e
        mount -t overlay keel-podman-varlib -o lowerdir=/var/lib,upperdir=\(directory)/varlib-upper,workdir=\(directory)/varlib-work /var/lib
        mount -t tmpfs keel-podman-run /run
        if grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/self/mounts; then umount /sys/fs/cgroup/unified; fi
        echo ready
        read -r _ || true
        """
        // One socket pair, close-on-exec from its creation: the holder's end is its stdin/stdout/stderr.
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw ProcessError(command: ["socketpair"], reason: String(cString: strerror(errno)))
        }
        release = pair[0]
        let argv = ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script]
        holder = try node.run { () throws -> pid_t in
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            for fd in Int32(0)...2 { posix_spawn_file_actions_adddup2(&actions, pair[1], fd) }
            let cArgs = argv.map { strdup($0) } + [nil]
            defer { cArgs.forEach { free($0) } }
            var pid: pid_t = 0
            let rc = posix_spawnp(&pid, argv[0], &actions, nil, cArgs, environ)
            guard rc == 0 else { throw ProcessError(command: argv, reason: "posix_spawnp: \(String(cString: strerror(rc)))") }
            return pid
        }
        close(pair[1]); pair[1] = -1
        // Its output up to `ready`, or everything it said before it died.
        var said: [UInt8] = []
        var byte: UInt8 = 0
        while !String(decoding: said, as: UTF8.self).hasSuffix("ready\n") {
            let n = read(release, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            said.append(byte)
        }
        let output = String(decoding: said, as: UTF8.self)
        try #require(output.hasSuffix("ready\n"), "the mount-namespace holder failed: \(output)")
        // Never let podman near the machine's mount namespace.
        let (theirs, ours) = (try PodmanFixture.mountNamespace("/proc/\(holder)"), try PodmanFixture.mountNamespace("/proc/self"))
        try #require(theirs != ours, "the holder shares our mount namespace \(ours)")
    }

    /// argv for podman in the holder's mount namespace (the network namespace is the calling thread's).
    private func argv(_ args: [String]) -> [String] {
        ["nsenter", "--mount=/proc/\(holder)/ns/mnt", "--", "podman",
         "--root", directory + "/root", "--runroot", directory + "/runroot", "--tmpdir", directory + "/tmp",
         "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"] + args
    }

    private var environment: [String: String] {
        ["CONTAINERS_CONF": directory + "/containers.conf", "TMPDIR": directory + "/tmp", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
    }

    /// Runs podman inside the node namespace.
    func run(_ args: [String]) throws -> ProcessResult {
        // Never podman in the machine's mount namespace: the holder must still run (a zombie has no ns links).
        let theirs = holder > 0 ? try? PodmanFixture.mountNamespace("/proc/\(holder)") : nil
        guard let theirs, theirs != (try? PodmanFixture.mountNamespace("/proc/self")) else {
            throw ProcessError(command: ["podman"] + args, reason: "the mount-namespace holder is gone")
        }
        return try node.exec(argv(args), environment: environment)
    }

    @discardableResult
    func check(_ args: [String]) throws -> String {
        let r = try run(args)
        guard r.succeeded else { throw ProcessError(command: ["podman"] + args, reason: r.description) }
        return r.stdout
    }

    func inspect(_ name: String) throws -> PodmanContainer {
        let out = try check(["inspect", "--type", "container", name])
        let parsed = try JSONSerialization.jsonObject(with: Data(out.utf8))
        let all = try #require(parsed as? [[String: Any]], "podman inspect \(name): \(out)")
        let c = try #require(all.first, "podman inspect \(name): \(out)")
        let state = try #require(c["State"] as? [String: Any])
        let networks = try #require((c["NetworkSettings"] as? [String: Any])?["Networks"] as? [String: Any])
        let net = try #require(networks[Self.network] as? [String: Any], "\(name) is not on \(Self.network): \(networks.keys)")
        let id = try #require(c["Id"] as? String)
        let pid = try #require(state["Pid"] as? Int), conmon = try #require(state["ConmonPid"] as? Int)
        let addressText = try #require(net["IPAddress"] as? String)
        let address = try #require(IPAddress(addressText), "\(name): \(net)")
        let prefixLength = try #require(net["IPPrefixLen"] as? Int)
        return PodmanContainer(name: name, id: id, pid: Int32(pid), conmonPID: Int32(conmon), address: address,
                               prefixLength: prefixLength, gateway: (net["Gateway"] as? String).flatMap { IPAddress($0) })
    }

    /// Remembers a container's processes, ended by PID only if `podman rm` cannot.
    func started(_ c: PodmanContainer) {
        if c.conmonPID > 0 { containerPIDs.append((c.conmonPID, PodmanFixture.comm(c.conmonPID))) }
        if c.pid > 0 { containerPIDs.append((c.pid, PodmanFixture.comm(c.pid))) }
    }

    private func tearDown() {
        // Normally nothing is left; after a failure this is what ends the containers. `run` refuses when
        // the holder is gone, and whatever podman could not end is ended by PID below.
        if let r = try? run(["rm", "--all", "--force", "--time", "0"]), !r.succeeded {
            print("podman rm --all in cleanup: \(r)")
        }
        for (pid, comm) in containerPIDs where !comm.isEmpty && PodmanFixture.comm(pid) == comm {
            kill(pid, SIGKILL)   // still the process we started (same pid and name): podman could not stop it
        }
        if release >= 0 { close(release) }   // the holder reads EOF and exits
        if holder > 0 {
            var status: Int32 = 0
            while waitpid(holder, &status, 0) < 0 && errno == EINTR {}
        }
        // Our temp dir; it holds no mount once the holder's namespace is gone. Already gone is fine.
        try? FileManager.default.removeItem(atPath: directory)
    }
}

private enum PodmanFixture {
    static func which(_ tool: String) -> String? {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map { "\($0)/\(tool)" }.first { access($0, X_OK) == 0 }
    }

    static func makeTempDirectory(_ pattern: String) throws -> String {
        var template = Array(pattern.utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ProcessError(command: ["mkdtemp"], reason: String(cString: strerror(errno)))
        }
        return String(cString: made)
    }

    /// IP addresses reserved in a host-local network directory (files named by address).
    static func reservations(in directory: String) -> Set<IPAddress> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []  // no directory: no reservation
        return Set(names.compactMap { IPAddress($0) })
    }

    static func mountNamespace(_ proc: String) throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: proc + "/ns/mnt")
    }

    /// A process's command name, "" when it is gone.
    static func comm(_ pid: Int32) -> String {
        ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The machine's network namespace (read-only), its nftables tables, its mount table (without the
    /// named network namespaces, which concurrent test runs add and remove) and whether the shared
    /// runtime directories exist: Podman must change none of them.
    static func machineState() throws -> NamespaceFingerprint {
        var extra: [String] = []
        let tables = try NamespaceProcess.check(["nft", "list", "tables"])
        extra += tables.split(separator: "\n").map { "nft \($0)" }
        let mounts = try String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)
        extra += mounts.split(separator: "\n").filter { line in
            let target = line.split(separator: " ").dropFirst().first ?? ""
            return target != "/run/netns" && !target.hasPrefix("/run/netns/")
        }.map { "mount \($0)" }
        for path in ["/var/lib/cni", "/var/lib/containers", "/etc/cni/net.d", "/etc/containers", "/run/containers", "/run/libpod", "/run/crun"] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path))?.sorted().joined(separator: ",") ?? "absent"
            extra.append("path \(path): \(names)")
        }
        return try NamespaceFingerprint.read(try RouteSocket(), extra: extra)
    }
}
