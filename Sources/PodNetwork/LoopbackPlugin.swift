import CNI
import NetAddress
import Netlink

/// The `loopback` CNI plugin: brings `lo` up in the pod (ADD), down (DEL), and checks it (CHECK).
public struct LoopbackPlugin: CNIPlugin {
    public init() {}

    public func add(_ request: CNIRequest) throws -> CNIResult {
        let pod = try socket(request.netns)
        try kernel { () throws(NetlinkError) in try pod.setUp("lo") }
        return CNIResult(cniVersion: request.config.cniVersion,
                         interfaces: [Interface(name: "lo", mac: MACAddress.zero, sandbox: request.netns)],
                         ips: [IPConfig(address: CIDR("127.0.0.1/8")!, interface: 0), IPConfig(address: CIDR("::1/128")!, interface: 0)])
    }

    public func del(_ request: CNIRequest) throws {
        guard let path = request.netns, !path.isEmpty else { return }
        let pod: RouteSocket
        do { pod = try RouteSocket.inside(try NetworkNamespace(path: path)) } catch {
            return   // the namespace is gone: nothing to undo
        }
        try kernel { () throws(NetlinkError) in try pod.setUp("lo", false) }
    }

    public func check(_ request: CNIRequest) throws {
        let pod = try socket(request.netns)
        let lo = try kernel { () throws(NetlinkError) in try pod.link("lo") }
        guard lo.isUp else { throw PodNetworkError.checkFailed("lo is down in \(request.netns ?? "-")") }
    }

    private func socket(_ path: String?) throws(PodNetworkError) -> RouteSocket {
        guard let path, !path.isEmpty else { throw .invalidConfig(field: "CNI_NETNS", reason: "a network namespace path is required") }
        do { return try RouteSocket.inside(try NetworkNamespace(path: path)) } catch { throw .netnsUnavailable(path: path, error) }
    }
}
