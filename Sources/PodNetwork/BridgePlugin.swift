import CNI
import Netlink

/// The `bridge` CNI plugin: the reference plugin's behaviour over Keel's netlink and nftables cores.
public struct BridgePlugin: CNIPlugin {
    let ipamCheck: IPAMConfigCheck?

    /// `ipamCheck`: the delegated IPAM plugin's config checks, run in-process before ADD creates
    /// anything (the executable passes host-local's, which it links).
    public init(ipamCheck: IPAMConfigCheck? = nil) { self.ipamCheck = ipamCheck }

    func network() throws -> BridgeNetwork {
        do { return BridgeNetwork(host: try RouteSocket(), ipamCheck: ipamCheck) } catch { throw PodNetworkError.kernel(error) }
    }

    public func add(_ request: CNIRequest) throws -> CNIResult { try network().add(request) }
    public func del(_ request: CNIRequest) throws { try network().delete(request) }
    public func check(_ request: CNIRequest) throws { try network().check(request) }
    public func gc(_ request: CNIGCRequest) throws { try network().collectGarbage(request) }
    public func status(_ request: CNIStatusRequest) throws { try network().status(request) }
}

/// Runs the config checks of the IPAM plugin `ipamType` (from `ipam.type`) on an ADD request, and
/// throws what that plugin's ADD would refuse the config with; a type it does not know passes.
public typealias IPAMConfigCheck = @Sendable (_ ipamType: String, _ request: CNIRequest) throws -> Void
