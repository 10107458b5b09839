import CNI
import NetAddress
import Netlink

/// The reference bridge plugin's network config, field for field. Fields Keel cannot honour yet are
/// refused with code 2 when they ask for something other than the default, never silently ignored.
public struct BridgeConfig: Sendable {
    public var bridge: InterfaceName
    public var isGateway: Bool
    public var isDefaultGateway: Bool
    public var forceAddress: Bool
    public var ipMasq: Bool
    public var mtu: UInt32?
    public var hairpinMode: Bool
    public var promiscMode: Bool
    public var enableDAD: Bool
    public var disableContainerInterface: Bool
    public var portIsolation: Bool
    /// The MAC for the pod interface, from runtimeConfig.mac or args.cni.mac.
    public var mac: MACAddress?
    public var ipamType: String
    /// Destinations pod traffic reaches with its own source address (not a reference field: the
    /// overlay plugins set the cluster CIDR here). Empty: the pod's own subnet.
    public var unmasqueraded: [CIDR] = []

    /// Decodes and validates `request`'s config. Throws before anything is created.
    public init(_ request: CNIRequest) throws {
        let raw = try request.decodeConfig(Raw.self)
        try self.init(raw, config: request.config)
    }

    init(_ raw: Raw, config: NetworkConfig) throws {
        let name = raw.bridge ?? "cni0"
        guard let bridgeName = InterfaceName(name) else {
            throw PodNetworkError.invalidConfig(field: "bridge", reason: "\"\(quoted: name)\" is not a valid interface name")
        }
        bridge = bridgeName
        isDefaultGateway = raw.isDefaultGateway ?? false
        // As the reference: a default gateway must be a gateway.
        isGateway = (raw.isGateway ?? false) || isDefaultGateway
        forceAddress = raw.forceAddress ?? false
        ipMasq = raw.ipMasq ?? false
        if let backend = raw.ipMasqBackend, backend != "nftables" {
            throw PodNetworkError.unsupportedField("ipMasqBackend", reason: "Keel masquerades with nftables only; \"\(quoted: backend)\" is not available (remove the field or set \"nftables\")")
        }
        if let m = raw.mtu {
            guard m >= 68, m <= 65535 else { throw PodNetworkError.invalidConfig(field: "mtu", reason: "\(m) is outside 68…65535") }
            mtu = UInt32(m)
        }
        hairpinMode = raw.hairpinMode ?? false
        promiscMode = raw.promiscMode ?? false
        enableDAD = raw.enabledad ?? false
        disableContainerInterface = raw.disableContainerInterface ?? false
        portIsolation = raw.portIsolation ?? false
        if let v = raw.vlan, v != 0 { throw PodNetworkError.unsupportedField("vlan", reason: "VLAN filtering is not supported by Keel's bridge yet") }
        if let t = raw.vlanTrunk, !t.isEmpty { throw PodNetworkError.unsupportedField("vlanTrunk", reason: "VLAN trunks are not supported by Keel's bridge yet") }
        if raw.preserveDefaultVlan == false { throw PodNetworkError.unsupportedField("preserveDefaultVlan", reason: "VLAN filtering is not supported by Keel's bridge yet") }
        if raw.macspoofchk == true { throw PodNetworkError.unsupportedField("macspoofchk", reason: "MAC spoof checking is not supported by Keel's bridge yet") }
        let macField = config.runtimeConfig?.mac != nil ? "runtimeConfig.mac" : "args.cni.mac"
        let macText = config.runtimeConfig?.mac?.description ?? raw.args?.cni?.mac
        if let macText {
            guard let mac = MACAddress(macText) else { throw PodNetworkError.invalidConfig(field: macField, reason: "\"\(quoted: macText)\" is not a MAC address") }
            // The kernel refuses these on the veth (EADDRNOTAVAIL) after IPAM has reserved.
            guard mac.bytes[0] & 1 == 0, mac != .zero else {
                throw PodNetworkError.invalidConfig(field: macField, reason: "\(mac) is not a unicast MAC address")
            }
            self.mac = mac
        }
        guard let ipam = config.ipam, !ipam.type.isEmpty else {
            throw PodNetworkError.invalidConfig(field: "ipam.type", reason: "the bridge plugin needs an IPAM plugin")
        }
        ipamType = ipam.type
    }

    struct Raw: Decodable {
        var bridge: String?
        var isGateway: Bool?
        var isDefaultGateway: Bool?
        var forceAddress: Bool?
        var ipMasq: Bool?
        var ipMasqBackend: String?
        var mtu: Int?
        var hairpinMode: Bool?
        var promiscMode: Bool?
        var vlan: Int?
        var vlanTrunk: [VLANTrunk]?
        var preserveDefaultVlan: Bool?
        var enabledad: Bool?
        var macspoofchk: Bool?
        var disableContainerInterface: Bool?
        var portIsolation: Bool?
        var args: Args?

        struct VLANTrunk: Decodable { var minID: Int?; var maxID: Int?; var id: Int? }
        struct Args: Decodable { var cni: CNIArgsSection? }
        struct CNIArgsSection: Decodable { var mac: String? }
    }
}
