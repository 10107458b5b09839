import Glibc
import NetAddress

/// The node's network facts, written by keeld and read by the `host-gw` and `vxlan` plugins when
/// their network config leaves them out (what flannel's /run/flannel/subnet.env is to its plugin).
///
///     # /run/keel/node.env — written by keeld; read by the host-gw and vxlan CNI plugins
///     KEEL_NETWORK=10.244.0.0/16          cluster CIDR (pod traffic to it is not masqueraded)
///     KEEL_SUBNET=10.244.1.0/24           this node's pod CIDR(s), comma-separated for dual stack
///     KEEL_MTU=1450                       pod MTU (underlay MTU, minus 50 for vxlan)
///     KEEL_BACKEND=vxlan                  host-gw | vxlan
///     KEEL_VXLAN_VNI=1
///     KEEL_VXLAN_PORT=8472
///     KEEL_UNDERLAY_INTERFACE=eth0
///     KEEL_UNDERLAY_ADDRESS=192.168.50.11
///     KEEL_IPMASQ=true                    masquerade pod traffic leaving the cluster CIDR
public struct NodeFile: Sendable, Equatable {
    public static let defaultPath = "/run/keel/node.env"

    public var network: CIDR?
    public var subnets: [CIDR]
    public var mtu: UInt32?
    public var backend: String?
    public var vni: UInt32?
    public var port: UInt16?
    public var underlayInterface: String?
    public var underlayAddress: IPAddress?
    public var ipMasq: Bool

    public init(network: CIDR? = nil, subnets: [CIDR] = [], mtu: UInt32? = nil, backend: String? = nil, vni: UInt32? = nil,
                port: UInt16? = nil, underlayInterface: String? = nil, underlayAddress: IPAddress? = nil, ipMasq: Bool = true) {
        self.network = network
        self.subnets = subnets
        self.mtu = mtu
        self.backend = backend
        self.vni = vni
        self.port = port
        self.underlayInterface = underlayInterface
        self.underlayAddress = underlayAddress
        self.ipMasq = ipMasq
    }

    /// Parses `KEY=value` lines; `#` comments and blank lines are skipped. An unknown key is ignored
    /// (a newer keeld may write more); a bad value is an error naming the key.
    public init(parsing text: String) throws {
        self.init()
        for raw in text.split(separator: "\n") {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].filter { $0 != " " }, value = String(line[line.index(after: eq)...]).filter { $0 != " " && $0 != "\"" }
            func bad() -> PodNetworkError { .invalidConfig(field: "node file \(key)", reason: "\"\(value)\" is not valid") }
            switch key {
            case "KEEL_NETWORK": guard let c = CIDR(value) else { throw bad() }; network = c
            case "KEEL_SUBNET":
                subnets = try value.split(separator: ",").map { guard let c = CIDR($0) else { throw bad() }; return c }
            case "KEEL_MTU": guard let m = UInt32(value) else { throw bad() }; mtu = m
            case "KEEL_BACKEND": backend = value
            case "KEEL_VXLAN_VNI": guard let v = UInt32(value) else { throw bad() }; vni = v
            case "KEEL_VXLAN_PORT": guard let p = UInt16(value) else { throw bad() }; port = p
            case "KEEL_UNDERLAY_INTERFACE": underlayInterface = value
            case "KEEL_UNDERLAY_ADDRESS": guard let a = IPAddress(value) else { throw bad() }; underlayAddress = a
            case "KEEL_IPMASQ": ipMasq = value == "true"
            default: continue
            }
        }
    }

    public func rendered() -> String {
        var lines = ["# written by keeld; read by the host-gw and vxlan CNI plugins"]
        if let network { lines.append("KEEL_NETWORK=\(network)") }
        if !subnets.isEmpty { lines.append("KEEL_SUBNET=" + subnets.map(\.description).joined(separator: ",")) }
        if let mtu { lines.append("KEEL_MTU=\(mtu)") }
        if let backend { lines.append("KEEL_BACKEND=\(backend)") }
        if let vni { lines.append("KEEL_VXLAN_VNI=\(vni)") }
        if let port { lines.append("KEEL_VXLAN_PORT=\(port)") }
        if let underlayInterface { lines.append("KEEL_UNDERLAY_INTERFACE=\(underlayInterface)") }
        if let underlayAddress { lines.append("KEEL_UNDERLAY_ADDRESS=\(underlayAddress)") }
        lines.append("KEEL_IPMASQ=\(ipMasq)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The largest node file read: keeld writes about 300 bytes. The format has no nesting, so
    /// size is its only bound.
    public static let maxBytes = 64 << 10

    /// Reads and parses the file at `path`: a regular file of at most ``maxBytes`` (a FIFO or a device
    /// there is refused without blocking on it).
    public static func read(_ path: String) throws -> NodeFile {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw PodNetworkError.invalidConfig(field: "nodeFile", reason: "cannot read \(path): \(String(cString: strerror(errno))) (is keeld running on this node?)")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw PodNetworkError.invalidConfig(field: "nodeFile", reason: "cannot read \(path): not a regular file")
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else {
                throw PodNetworkError.invalidConfig(field: "nodeFile", reason: "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            bytes += buffer[..<n]
            guard bytes.count <= maxBytes else {
                throw PodNetworkError.invalidConfig(field: "nodeFile", reason: "\(path) is larger than the limit of \(maxBytes) bytes")
            }
        }
        return try NodeFile(parsing: String(decoding: bytes, as: UTF8.self))
    }

    /// Writes atomically (temp file + rename), so a plugin never reads half a file.
    public func write(_ path: String) throws {
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        mkdir(dir, 0o755)
        let tmp = "\(path).tmp.\(getpid())"
        guard let f = fopen(tmp, "w") else {
            throw PodNetworkError.invalidConfig(field: "nodeFile", reason: "cannot write \(tmp): \(String(cString: strerror(errno)))")
        }
        fputs(rendered(), f)
        fflush(f)
        fsync(fileno(f))
        fclose(f)
        guard rename(tmp, path) == 0 else {
            throw PodNetworkError.invalidConfig(field: "nodeFile", reason: "cannot rename to \(path): \(String(cString: strerror(errno)))")
        }
    }
}
