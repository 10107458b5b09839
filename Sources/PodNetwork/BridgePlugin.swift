import CNI
import Netlink

/// The `bridge` CNI plugin: the reference plugin's behaviour over Keel's netlink and nftables cores.
public struct BridgePlugin: CNIPlugin {
    public init() {}

    func network() throws -> BridgeNetwork {
        do { return BridgeNetwork(host: try RouteSocket()) } catch { throw PodNetworkError.kernel(error) }
    }

    public func add(_ request: CNIRequest) throws -> CNIResult { try network().add(request) }
    public func del(_ request: CNIRequest) throws { try network().delete(request) }
    public func check(_ request: CNIRequest) throws { try network().check(request) }
    public func gc(_ request: CNIGCRequest) throws { try network().collectGarbage(request) }
    public func status(_ request: CNIStatusRequest) throws { try network().status(request) }
}
