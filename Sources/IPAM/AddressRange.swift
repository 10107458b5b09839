import NetAddress

/// One allocatable range of a subnet, with the defaults of the reference host-local filled in:
/// `rangeStart` = network + 1, `rangeEnd` = broadcast − 1 (IPv4) or the last address (IPv6),
/// `gateway` = network + 1. The gateway is never handed out even when it lies inside the range.
public struct AddressRange: Hashable, Sendable, CustomStringConvertible {
    public let subnet: CIDR
    public let rangeStart: IPAddress
    public let rangeEnd: IPAddress
    public let gateway: IPAddress

    /// Validates and fills in defaults. `field` is the JSON path used in errors (`ipam.ranges[0][0]`).
    public init(subnet: CIDR, rangeStart: IPAddress? = nil, rangeEnd: IPAddress? = nil, gateway: IPAddress? = nil,
                field: String = "range") throws {
        // /31 and /32 (/127, /128) leave nothing to allocate once network and gateway are taken.
        guard subnet.prefixLength <= subnet.family.bitWidth - 2 else {
            throw IPAMError.invalidConfig(field: "\(field).subnet", reason: "network \(subnet) too small to allocate from")
        }
        guard subnet.address == subnet.network else {
            throw IPAMError.invalidConfig(field: "\(field).subnet",
                reason: "network has host bits set: for a prefix length of \(subnet.prefixLength) the network address is \(subnet.network)")
        }
        // Beyond the reference, which accepts these and leaves the kernel to fail the ADD half-way
        // (an address or route it refuses): no pod network of non-unicast addresses, and never the
        // network or (IPv4) broadcast address for a gateway or a pod.
        if let problem = SpecialPurposeBlock.problem(with: subnet) {
            throw IPAMError.invalidConfig(field: "\(field).subnet", reason: problem)
        }
        func notHost(_ address: IPAddress) -> String? {
            if address == subnet.network { return "the network address of \(subnet)" }
            if subnet.family == .ipv4 && address == subnet.last { return "the broadcast address of \(subnet)" }
            return nil
        }
        let first = subnet.network.advanced(by: 1)!
        let gateway = gateway ?? first
        guard subnet.contains(gateway) else {
            throw IPAMError.invalidConfig(field: "\(field).gateway", reason: "gateway \(gateway) not in network \(subnet)")
        }
        if let what = notHost(gateway) {
            throw IPAMError.invalidConfig(field: "\(field).gateway", reason: "gateway \(gateway) is \(what)")
        }
        let start = rangeStart ?? first
        guard subnet.contains(start) else {
            throw IPAMError.invalidConfig(field: "\(field).rangeStart", reason: "rangeStart \(start) not in network \(subnet)")
        }
        if let what = notHost(start) {
            throw IPAMError.invalidConfig(field: "\(field).rangeStart", reason: "rangeStart \(start) is \(what)")
        }
        let end = rangeEnd ?? (subnet.family == .ipv4 ? subnet.last.advanced(by: -1)! : subnet.last)
        guard subnet.contains(end) else {
            throw IPAMError.invalidConfig(field: "\(field).rangeEnd", reason: "rangeEnd \(end) not in network \(subnet)")
        }
        if let what = notHost(end) {
            throw IPAMError.invalidConfig(field: "\(field).rangeEnd", reason: "rangeEnd \(end) is \(what)")
        }
        // The reference accepts start > end and then walks past the subnet; refuse it here.
        guard start <= end else {
            throw IPAMError.invalidConfig(field: "\(field).rangeEnd", reason: "rangeEnd \(end) is before rangeStart \(start)")
        }
        // The gateway is never handed out: a range of the gateway alone can only fail every ADD.
        guard !(start == end && end == gateway) else {
            throw IPAMError.invalidConfig(field: "\(field).rangeStart", reason: "the range \(start)-\(end) holds only the gateway, no address to hand out")
        }
        self.subnet = subnet
        self.rangeStart = start
        self.rangeEnd = end
        self.gateway = gateway
    }

    public var family: AddressFamily { subnet.family }
    /// `rangeStart-rangeEnd`, as the reference prints a range in its errors.
    public var description: String { "\(rangeStart)-\(rangeEnd)" }

    /// True when `address` is in the subnet and between rangeStart and rangeEnd (inclusive).
    /// The gateway counts as contained: a requested gateway is refused with its own error.
    public func contains(_ address: IPAddress) -> Bool {
        subnet.contains(address) && rangeStart <= address && address <= rangeEnd
    }
    public func overlaps(_ other: AddressRange) -> Bool {
        family == other.family && rangeStart <= other.rangeEnd && other.rangeStart <= rangeEnd
    }

    /// Addresses that can be handed out: the range minus the gateway, saturating at `UInt64.max`.
    public var allocatableCount: UInt64 {
        let span: UInt64
        switch (rangeStart, rangeEnd) {
        case let (.v4(a), .v4(b)): span = UInt64(b.value - a.value) + 1
        case let (.v6(a), .v6(b)):
            let (low, borrow) = b.low.subtractingReportingOverflow(a.low)
            let high = b.high - a.high - (borrow ? 1 : 0)
            span = high > 0 || low == .max ? .max : low + 1
        default: span = 0
        }
        return contains(gateway) && span != .max ? span - 1 : span
    }
}
