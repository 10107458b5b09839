import ArgumentParser
import NetAddress
import Netlink

struct IPVS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipvs",
        abstract: "Show the kernel's IPVS table (what the IPVS data plane programmed) in this network namespace.",
        subcommands: [List.self])
}

extension IPVS {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the IPVS services and their real servers, as `ipvsadm -Ln` does.",
            discussion: """
                Reads the kernel through generic netlink (needs CAP_NET_ADMIN). Run it inside a namespace \
                (`ip netns exec NAME keelctl ipvs list`) to read that namespace's table. Exits 1 with the \
                missing kernel module named when the kernel has no IPVS.
                """)

        @Option(help: "Output format: text (the layout of `ipvsadm -Ln`) or json.")
        var output: OutputFormat = .text

        func run() throws {
            let table: IPVSTableListing
            do {
                table = try IPVSTableListing.read(from: try IPVSSocket())
            } catch let e as GenericNetlinkError {
                FileHandleStderr.write("keelctl: \(e)\n")
                throw ExitCode(1)
            }
            switch output {
            case .text: print(table.text, terminator: "")
            case .json: print(table.json)
            }
        }
    }
}

/// The IPVS table as read once: services sorted as ipvsadm sorts them (family, protocol, address,
/// port), each with its real servers sorted by address and port.
struct IPVSTableListing {
    struct Entry {
        var service: IPVSService
        var destinations: [(destination: IPVSDestination, statistics: IPVSDestinationStatistics)]
    }
    var info: IPVSInfo
    var entries: [Entry]

    static func read(from socket: IPVSSocket) throws -> IPVSTableListing {
        var entries: [Entry] = []
        for service in try socket.services() {
            guard let destinations = try destinationsIfPresent(socket, service.key) else { continue }
            entries.append(Entry(service: service, destinations: destinations.sorted { $0.destination < $1.destination }))
        }
        entries.sort { order($0.service.key) < order($1.service.key) }
        return IPVSTableListing(info: try socket.info(), entries: entries)
    }

    /// nil when the service was deleted between the two dumps (ESRCH): it is no longer in the table.
    private static func destinationsIfPresent(_ socket: IPVSSocket, _ key: IPVSServiceKey) throws(NetlinkError)
        -> [(destination: IPVSDestination, statistics: IPVSDestinationStatistics)]? {
        do { return try socket.destinationsWithStatistics(of: key) } catch where error.errno == .noSuchProcess { return nil }
    }

    private static func order(_ k: IPVSServiceKey) -> (Int, UInt16, IPAddress, UInt16) {
        (k.address.isIPv4 ? 0 : 1, k.proto.rawValue, k.address, k.port)
    }

    /// `ipvsadm -Ln`, column for column (the same printf widths, trailing blanks included).
    var text: String {
        var out = "IP Virtual Server version \(info.versionString) (size=\(info.connectionTableSize))\n"
        out += "Prot LocalAddress:Port Scheduler Flags\n"
        out += "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        for entry in entries {
            let s = entry.service
            out += "\(s.key.proto)  \(endpoint(s.key.address, s.key.port)) \(s.scheduler)"
            let schedulerFlags = Self.schedulerFlagNames(s)
            if !schedulerFlags.isEmpty { out += " (\(schedulerFlags.joined(separator: ",")))" }
            if s.flags.contains(.persistent) {
                out += " persistent \(s.timeout)"
                if s.key.address.isIPv4, s.netmask != 32 { out += " mask \(Self.ipv4Mask(s.netmask))" }
                if !s.key.address.isIPv4, s.netmask != 128 { out += " mask \(s.netmask)" }
            }
            if s.flags.contains(.onePacket) { out += " ops" }
            out += "\n"
            for (d, stats) in entry.destinations {
                out += "  -> " + pad(endpoint(d.address, d.port), 28) + " " + pad(Self.forwardingName(d.forwarding), 7) + " "
                    + pad("\(d.weight)", 6) + " " + pad("\(stats.activeConnections)", 10) + " " + pad("\(stats.inactiveConnections)", 10) + "\n"
            }
        }
        return out
    }

    var json: String {
        let services = entries.map { entry -> String in
            let s = entry.service
            let destinations = entry.destinations.map { d, stats in
                "{\"address\":\(jsonString(d.address.description)),\"port\":\(d.port),\"forwarding\":\(jsonString(Self.forwardingName(d.forwarding))),"
                    + "\"weight\":\(d.weight),\"upperThreshold\":\(d.upperThreshold),\"lowerThreshold\":\(d.lowerThreshold),"
                    + "\"activeConnections\":\(stats.activeConnections),\"inactiveConnections\":\(stats.inactiveConnections),"
                    + "\"persistentConnections\":\(stats.persistentConnections)}"
            }
            return "{\"protocol\":\(jsonString(s.key.proto.description)),\"address\":\(jsonString(s.key.address.description)),"
                + "\"port\":\(s.key.port),\"scheduler\":\(jsonString(s.scheduler)),"
                + "\"flags\":[\(Self.flagNames(s.flags).map(jsonString).joined(separator: ","))],"
                + "\"timeout\":\(s.timeout),\"netmask\":\(s.netmask),\"destinations\":[\(destinations.joined(separator: ","))]}"
        }
        return "{\"version\":\(jsonString(info.versionString)),\"connectionTableSize\":\(info.connectionTableSize),"
            + "\"services\":[\(services.joined(separator: ","))]}"
    }

    /// ipvsadm's names of the forwarding methods.
    static func forwardingName(_ f: IPVSForwarding) -> String {
        switch f {
        case .masquerade: "Masq"
        case .local: "Local"
        case .tunnel: "Tunnel"
        case .directRoute: "Route"
        case .bypass: "Bypass"
        }
    }

    static func flagNames(_ flags: IPVSServiceFlags) -> [String] {
        [(IPVSServiceFlags.persistent, "persistent"), (.onePacket, "one-packet"),
         (.schedulerFlag1, "flag-1"), (.schedulerFlag2, "flag-2"), (.schedulerFlag3, "flag-3")]
            .filter { flags.contains($0.0) }.map(\.1)
    }

    /// As ipvsadm prints scheduler flags: named for sh and mh, numbered for the others.
    static func schedulerFlagNames(_ s: IPVSService) -> [String] {
        let hashing = s.scheduler == "sh" || s.scheduler == "mh"
        var names: [String] = []
        if s.flags.contains(.schedulerFlag1) { names.append(hashing ? "\(s.scheduler)-fallback" : "flag-1") }
        if s.flags.contains(.schedulerFlag2) { names.append(hashing ? "\(s.scheduler)-port" : "flag-2") }
        if s.flags.contains(.schedulerFlag3) { names.append("flag-3") }
        return names
    }

    static func ipv4Mask(_ prefixLength: UInt32) -> String {
        let mask: UInt32 = prefixLength == 0 ? 0 : UInt32.max << (32 - min(prefixLength, 32))
        return "\(mask >> 24).\((mask >> 16) & 0xff).\((mask >> 8) & 0xff).\(mask & 0xff)"
    }
}

/// `10.96.0.1:80`, `[fd00::1]:80`, as ipvsadm -n writes them.
private func endpoint(_ address: IPAddress, _ port: UInt16) -> String {
    address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
}

/// printf's `%-Ns`.
private func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}
