import NetAddress
import Netlink

/// A read-only summary of a network namespace's configuration: links, addresses, routes and the
/// sysctls Keel could touch. The test command takes one of the machine's own namespace before and
/// after the suite; any difference means a test changed something outside its namespaces.
public struct NamespaceFingerprint: Equatable, Sendable {
    public var lines: [String]

    /// Reads the namespace that `socket` is bound to; `namespace` nil means the caller's own.
    public static func read(_ socket: RouteSocket, namespace: NetworkNamespace? = nil, extra: [String] = []) throws -> NamespaceFingerprint {
        var lines: [String] = []
        let links = try socket.links()
        let names = Dictionary(links.map { ($0.index, $0.name) }, uniquingKeysWith: { a, _ in a })
        for l in links {
            lines.append("link \(l.name) kind=\(l.kind ?? "-") mtu=\(l.mtu) up=\(l.isUp) master=\(l.masterIndex.flatMap { names[$0] } ?? "-")")
        }
        for a in try socket.addresses() {
            lines.append("addr \(names[a.linkIndex] ?? "#\(a.linkIndex)") \(a.cidr) brd=\(a.broadcast?.description ?? "-")")
        }
        // Cached/cloned routes come and go with traffic; kernel-made connected routes follow addresses.
        for r in try socket.routes() where r.proto != .kernel || r.type != .unicast {
            if r.table == .local { continue }
            lines.append("route \(r.table.rawValue) \(r.destination) via=\(r.gateway?.description ?? "-") dev=\(r.device.flatMap { names[$0] } ?? "-") proto=\(r.proto.rawValue) metric=\(r.metric.map(String.init) ?? "-")")
        }
        for name in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.rp_filter",
                     "net.ipv4.conf.all.route_localnet", "net.bridge.bridge-nf-call-iptables"] {
            let value = (try? Sysctl.read(name, in: namespace)) ?? "absent"  // br_netfilter may not be loaded
            lines.append("sysctl \(name)=\(value)")
        }
        return NamespaceFingerprint(lines: (lines + extra).sorted())
    }

    /// Lines only in `self` (−) or only in `other` (+).
    public func difference(to other: NamespaceFingerprint) -> [String] {
        let a = Set(lines), b = Set(other.lines)
        return a.subtracting(b).sorted().map { "- " + $0 } + b.subtracting(a).sorted().map { "+ " + $0 }
    }
}
