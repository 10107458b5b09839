#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CNI
import NetAddress

/// A route from `ipam.routes`, returned unchanged in the ADD result.
public struct IPAMRoute: Hashable, Sendable {
    public var destination: CIDR
    public var gateway: IPAddress?
    public init(destination: CIDR, gateway: IPAddress? = nil) {
        self.destination = destination
        self.gateway = gateway
    }
}

/// The reference host-local's configuration, validated: range sets in the reference's order
/// (`runtimeConfig.ipRanges`, then the old single range `ipam.subnet`…, then `ipam.ranges`), routes,
/// data directory, resolv.conf path and the addresses the runtime asked for.
public struct HostLocalConfig: Sendable {
    public var networkName: String
    public var cniVersion: String
    public var rangeSets: [RangeSet]
    public var routes: [IPAMRoute]
    /// `ipam.dataDir`, or `DiskReservationStore.defaultDataDirectory`.
    public var dataDirectory: String
    public var resolvConf: String?
    /// From `IP=` in CNI_ARGS (comma-separated), `args.cni.ips` and `runtimeConfig.ips`, in that order;
    /// a prefix (`10.1.2.11/24`) is accepted and dropped, as the reference does.
    public var requestedAddresses: [IPAddress]

    /// Parses the network config JSON that the runtime (or the calling plugin) passes on stdin.
    /// `ipArgument` is the value of `IP` in CNI_ARGS, if any. Errors name the offending field.
    public init(json: some Collection<UInt8>, ipArgument: String? = nil) throws {
        let wire: NetConfWire
        do {
            try JSONSyntax.check(json)   // bounds first: JSONDecoder recurses per nesting level
            wire = try JSONDecoder().decode(NetConfWire.self, from: Data(json))
        } catch let error as DecodingError {
            throw IPAMError.invalidConfig(field: error.fieldPath, reason: error.reason)
        } catch {
            throw IPAMError.invalidConfig(field: "(root)", reason: "\(error)")
        }
        guard let ipam = wire.ipam else { throw IPAMError.invalidConfig(field: "ipam", reason: "IPAM config missing 'ipam' key") }
        networkName = wire.name
        cniVersion = wire.cniVersion ?? "0.1.0"
        dataDirectory = ipam.dataDir.flatMap { $0.isEmpty ? nil : $0 } ?? DiskReservationStore.defaultDataDirectory
        resolvConf = ipam.resolvConf.flatMap { $0.isEmpty ? nil : $0 }

        var requested: [IPAddress] = []
        if let ipArgument, !ipArgument.isEmpty {
            for item in ipArgument.split(separator: ",") {
                requested.append(try requestedAddress(String(item), field: "CNI_ARGS IP"))
            }
        }
        for (i, text) in (wire.args?.cni?.ips ?? []).enumerated() {
            requested.append(try requestedAddress(text, field: "args.cni.ips[\(i)]"))
        }
        for (i, text) in (wire.runtimeConfig?.ips ?? []).enumerated() {
            requested.append(try requestedAddress(text, field: "runtimeConfig.ips[\(i)]"))
        }
        requestedAddresses = requested

        var sets: [RangeSet] = []
        for (i, set) in (wire.runtimeConfig?.ipRanges ?? []).enumerated() {
            sets.append(try rangeSet(set, field: "runtimeConfig.ipRanges[\(i)]"))
        }
        if ipam.subnet != nil {
            let single = RangeWire(subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway)
            sets.append(try rangeSet([single], field: "ipam"))
        }
        for (i, set) in (ipam.ranges ?? []).enumerated() {
            sets.append(try rangeSet(set, field: "ipam.ranges[\(i)]"))
        }
        guard !sets.isEmpty else { throw IPAMError.invalidConfig(field: "ipam.ranges", reason: "no IP ranges specified") }

        // CNI 0.2.0 results carry one IPv4 and one IPv6 address at most.
        let v4 = sets.count { $0.family == .ipv4 }
        if (v4 > 1 || sets.count - v4 > 1) && !Self.version(cniVersion, isAtLeast: [0, 3, 0]) {
            throw IPAMError.invalidConfig(field: "cniVersion",
                                          reason: "CNI version \(quoted: cniVersion) does not support more than 1 address per family")
        }
        for i in sets.indices {
            for j in sets.indices where j > i && sets[i].overlaps(sets[j]) {
                throw IPAMError.invalidConfig(field: "ipam.ranges", reason: "range set \(i) overlaps with \(j)")
            }
        }
        rangeSets = sets

        routes = try (ipam.routes ?? []).enumerated().map { i, r in
            // Masked, as Go's net.ParseCIDR in the reference does: the kernel refuses a route
            // destination with host bits set.
            guard let dst = CIDR(r.dst)?.masked else {
                throw IPAMError.invalidConfig(field: "ipam.routes[\(i)].dst", reason: "invalid CIDR \"\(quoted: r.dst)\"")
            }
            var gw: IPAddress?
            if let text = r.gw, !text.isEmpty {
                guard let a = IPAddress(text) else {
                    throw IPAMError.invalidConfig(field: "ipam.routes[\(i)].gw", reason: "invalid IP address \"\(quoted: text)\"")
                }
                guard a.family == dst.family else {
                    throw IPAMError.invalidConfig(field: "ipam.routes[\(i)].gw", reason: "gateway \(a) is not of the family of \(dst)")
                }
                if let problem = SpecialPurposeBlock.problem(with: a) {
                    throw IPAMError.invalidConfig(field: "ipam.routes[\(i)].gw", reason: problem)
                }
                gw = a
            }
            return IPAMRoute(destination: dst, gateway: gw)
        }
    }

    /// The network name and `ipam.dataDir` alone, for DEL: the rest of the config is not checked.
    public static func storeLocation(json: some Collection<UInt8>) throws -> (network: String, dataDirectory: String) {
        let wire: StoreLocationWire
        do {
            try JSONSyntax.check(json)
            wire = try JSONDecoder().decode(StoreLocationWire.self, from: Data(json))
        } catch let error as DecodingError {
            throw IPAMError.invalidConfig(field: error.fieldPath, reason: error.reason)
        } catch {
            throw IPAMError.invalidConfig(field: "(root)", reason: "\(error)")
        }
        guard let ipam = wire.ipam else { throw IPAMError.invalidConfig(field: "ipam", reason: "IPAM config missing 'ipam' key") }
        return (wire.name, ipam.dataDir.flatMap { $0.isEmpty ? nil : $0 } ?? DiskReservationStore.defaultDataDirectory)
    }

    static func version(_ text: String, isAtLeast minimum: [Int]) -> Bool {
        let parts = text.split(separator: ".").map { Int($0) ?? 0 }
        return (parts + [0, 0, 0]).prefix(3).lexicographicallyPrecedes(minimum) == false
    }
}

private func requestedAddress(_ text: String, field: String) throws -> IPAddress {
    let trimmed = text.trimmingWhitespace()
    if let a = IPAddress(trimmed) { return a }
    if trimmed.contains("/"), let c = CIDR(trimmed) { return c.address }
    throw IPAMError.invalidConfig(field: field, reason: "invalid IP address \"\(quoted: text)\"")
}

private func rangeSet(_ wire: [RangeWire], field: String) throws -> RangeSet {
    func address(_ text: String?, _ name: String, _ f: String) throws -> IPAddress? {
        guard let text, !text.isEmpty else { return nil }
        guard let a = IPAddress(text) else { throw IPAMError.invalidConfig(field: "\(f).\(name)", reason: "invalid IP address \"\(quoted: text)\"") }
        return a
    }
    let ranges = try wire.enumerated().map { i, r in
        let f = field == "ipam" ? field : "\(field)[\(i)]"
        guard let text = r.subnet, let subnet = CIDR(text) else {
            throw IPAMError.invalidConfig(field: "\(f).subnet", reason: "invalid or missing subnet \"\(quoted: r.subnet ?? "")\"")
        }
        let start = try address(r.rangeStart, "rangeStart", f)
        let end = try address(r.rangeEnd, "rangeEnd", f)
        let gateway = try address(r.gateway, "gateway", f)
        for (name, a) in [("rangeStart", start), ("rangeEnd", end), ("gateway", gateway)] {
            if let a, a.family != subnet.family {
                throw IPAMError.invalidConfig(field: "\(f).\(name)", reason: "\(a) is not of the family of \(subnet)")
            }
        }
        return try AddressRange(subnet: subnet, rangeStart: start, rangeEnd: end, gateway: gateway, field: f)
    }
    return try RangeSet(ranges, field: field)
}

// The JSON as the reference's `allocator.Net` reads it. Unknown keys are ignored, as in Go.
struct NetConfWire: Decodable {
    var name: String
    var cniVersion: String?
    var ipam: IPAMWire?
    var runtimeConfig: RuntimeConfigWire?
    var args: ArgsWire?
}
struct StoreLocationWire: Decodable {
    struct IPAM: Decodable { var dataDir: String? }
    var name: String
    var ipam: IPAM?
}
struct IPAMWire: Decodable {
    var subnet: String?
    var rangeStart: String?
    var rangeEnd: String?
    var gateway: String?
    var routes: [RouteWire]?
    var dataDir: String?
    var resolvConf: String?
    var ranges: [[RangeWire]]?
}
struct RangeWire: Decodable {
    var subnet: String?
    var rangeStart: String?
    var rangeEnd: String?
    var gateway: String?
}
struct RouteWire: Decodable {
    var dst: String
    var gw: String?
}
struct RuntimeConfigWire: Decodable {
    var ips: [String]?
    var ipRanges: [[RangeWire]]?
}
struct ArgsWire: Decodable {
    struct CNI: Decodable { var ips: [String]? }
    var cni: CNI?
}

extension DecodingError {
    var fieldPath: String {
        let path: [any CodingKey]
        switch self {
        case let .keyNotFound(key, context): path = context.codingPath + [key]
        case let .typeMismatch(_, context), let .valueNotFound(_, context), let .dataCorrupted(context): path = context.codingPath
        @unknown default: path = []
        }
        guard !path.isEmpty else { return "(root)" }
        return path.reduce("") { text, key in
            if let i = key.intValue { return text + "[\(i)]" }
            return text.isEmpty ? CNIError.quoting(key.stringValue) : text + "." + CNIError.quoting(key.stringValue)
        }
    }
    var reason: String {
        switch self {
        case .keyNotFound: return "required key missing"
        case let .typeMismatch(type, _): return "expected \(type)"
        case let .valueNotFound(type, _): return "expected \(type), found null"
        case let .dataCorrupted(context): return context.debugDescription
        @unknown default: return "\(self)"
        }
    }
}
