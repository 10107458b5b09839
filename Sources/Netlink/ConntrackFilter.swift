import NetAddress

/// Selects conntrack entries, the way `conntrack -D` options do: every field that is set must match.
///
/// The kernel's own dump filter (CTA_FILTER) exists only on newer kernels and cannot express
/// "reply source is not one of these", so Keel dumps the family and filters here, as kube-proxy's
/// `CleanStaleEntries` does (`kubernetes/kubernetes:pkg/proxy/conntrack/cleanup.go`).
public struct ConntrackFilter: Hashable, Sendable, CustomStringConvertible {
    /// Addresses and ports one direction's tuple must have; nil matches anything.
    public struct TuplePattern: Hashable, Sendable {
        public var source: IPAddress?
        public var destination: IPAddress?
        public var sourcePort: UInt16?
        public var destinationPort: UInt16?
        public init(source: IPAddress? = nil, destination: IPAddress? = nil, sourcePort: UInt16? = nil, destinationPort: UInt16? = nil) {
            self.source = source
            self.destination = destination
            self.sourcePort = sourcePort
            self.destinationPort = destinationPort
        }
        func matches(_ t: ConntrackTuple) -> Bool {
            (source == nil || source == t.source) && (destination == nil || destination == t.destination)
                && (sourcePort == nil || sourcePort == t.sourcePort) && (destinationPort == nil || destinationPort == t.destinationPort)
        }
    }

    /// Nil: both families (the dump asks for AF_UNSPEC).
    public var family: AddressFamily?
    public var proto: ConntrackProtocol?
    public var original: TuplePattern
    public var reply: TuplePattern
    public var mark: UInt32?
    public var zone: UInt16?
    /// Entries whose reply source is one of these are kept: the serving endpoints of a service.
    public var keepingReplySources: Set<IPAddress>

    public init(family: AddressFamily? = nil, proto: ConntrackProtocol? = nil, original: TuplePattern = .init(),
                reply: TuplePattern = .init(), mark: UInt32? = nil, zone: UInt16? = nil, keepingReplySources: Set<IPAddress> = []) {
        self.family = family
        self.proto = proto
        self.original = original
        self.reply = reply
        self.mark = mark
        self.zone = zone
        self.keepingReplySources = keepingReplySources
    }

    public func matches(_ entry: ConntrackEntry) -> Bool {
        (family == nil || family == entry.family) && (proto == nil || proto == entry.proto)
            && original.matches(entry.original) && reply.matches(entry.reply)
            && (mark == nil || mark == entry.mark) && (zone == nil || zone == entry.zone)
            && !keepingReplySources.contains(entry.reply.source)
    }

    // MARK: - The service proxy's filters

    /// Connections that were DNATed to `endpoint` (optionally only to its `port`), optionally only
    /// those addressed to `service`:`servicePort`: what must go when that endpoint is removed.
    /// Same as `conntrack -D -p udp [--orig-dst VIP --orig-port-dst PORT] --reply-src ENDPOINT [--reply-port-src P]`,
    /// kube-proxy's `ClearEntriesForNAT` / `filterForIPPortNAT`.
    public static func removedEndpoint(_ endpoint: IPAddress, port: UInt16? = nil, proto: ConntrackProtocol = .udp,
                                       service: IPAddress? = nil, servicePort: UInt16? = nil) -> ConntrackFilter {
        ConntrackFilter(family: endpoint.family, proto: proto,
                        original: TuplePattern(destination: service, destinationPort: servicePort),
                        reply: TuplePattern(source: endpoint, sourcePort: port))
    }

    /// Every connection addressed to `service`:`port`, optionally keeping those already DNATed to one
    /// of `servingEndpoints`. Same as `conntrack -D -p udp --orig-dst VIP --orig-port-dst PORT`,
    /// kube-proxy's `ClearEntriesForIP` (per port, as its `CleanStaleEntries` does now).
    public static func service(_ service: IPAddress, port: UInt16, proto: ConntrackProtocol = .udp,
                               keeping servingEndpoints: Set<IPAddress> = []) -> ConntrackFilter {
        ConntrackFilter(family: service.family, proto: proto,
                        original: TuplePattern(destination: service, destinationPort: port),
                        keepingReplySources: servingEndpoints)
    }

    /// The `conntrack` options that select the same entries (the "keeping" set has no such option).
    public var description: String {
        var args: [String] = []
        if let family { args += ["-f", family == .ipv4 ? "ipv4" : "ipv6"] }
        if let proto { args += ["-p", proto.description] }
        if let a = original.source { args += ["--orig-src", "\(a)"] }
        if let a = original.destination { args += ["--orig-dst", "\(a)"] }
        if let a = reply.source { args += ["--reply-src", "\(a)"] }
        if let a = reply.destination { args += ["--reply-dst", "\(a)"] }
        if let p = original.sourcePort { args += ["--orig-port-src", "\(p)"] }
        if let p = original.destinationPort { args += ["--orig-port-dst", "\(p)"] }
        if let p = reply.sourcePort { args += ["--reply-port-src", "\(p)"] }
        if let p = reply.destinationPort { args += ["--reply-port-dst", "\(p)"] }
        if let mark { args += ["--mark", "\(mark)"] }
        if let zone { args += ["--zone", "\(zone)"] }
        if !keepingReplySources.isEmpty { args += ["(keeping reply-src \(keepingReplySources.sorted().map(\.description).joined(separator: ",")))"] }
        return args.isEmpty ? "(all)" : args.joined(separator: " ")
    }
}
