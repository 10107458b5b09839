import NetAddress

extension ConntrackSocket {
    /// Every conntrack entry of `family` (nil: both families).
    /// Kernel: IPCTNL_MSG_CT_GET, NLM_F_DUMP. Same as `conntrack -L [-f ipv6]`.
    public func entries(family: AddressFamily? = nil) throws(NetlinkError) -> [ConntrackEntry] {
        try socket.dump(ConntrackMessage.dumpRequest(family: family), "conntrack").compactMap(ConntrackMessage.parse)
    }

    /// Deletes `entry`, found by its original tuple and zone (and its id, when it came from a dump,
    /// so that a newer entry that took the same tuple stays). Throws ENOENT (`isAlreadyGone`) if the
    /// entry has gone already. Kernel: IPCTNL_MSG_CT_DELETE with CTA_TUPLE_ORIG.
    /// Same as `conntrack -D -p udp -s SRC -d DST --sport SP --dport DP`.
    public func delete(_ entry: ConntrackEntry) throws(NetlinkError) {
        try socket.request(ConntrackMessage.deleteRequest(entry), .delConntrack, entry.description)
    }

    /// Deletes every entry that `filter` matches and returns how many this call deleted. Entries
    /// that expire or are deleted by someone else between the dump and the delete (ENOENT) are
    /// skipped: they are gone, which is what was asked. Any other failure is thrown. An entry that
    /// expires and is re-created for the same tuple inside that window may be deleted too (see
    /// `ConntrackEntry.id`); for UDP that costs one re-balanced datagram.
    /// Kernel: one IPCTNL_MSG_CT_GET dump, then IPCTNL_MSG_CT_DELETE per match.
    /// Same as `conntrack -D <filter options>` (`filter.description` prints them).
    @discardableResult
    public func delete(matching filter: ConntrackFilter) throws(NetlinkError) -> Int {
        var deleted = 0
        // One request at a time: a pipelined batch reports only its first failure, and an ENOENT
        // race there would hide a real error behind it.
        for entry in try entries(family: filter.family) where filter.matches(entry) {
            do {
                try delete(entry)
                deleted += 1
            } catch where error.isAlreadyGone {
                continue
            }
        }
        return deleted
    }

    /// Deletes every entry of `family` (nil: both); the family travels in nfgenmsg, and kernels
    /// that do not filter a flush by family empty the whole table. Kernel: IPCTNL_MSG_CT_DELETE
    /// without a tuple.
    /// Same as `conntrack -F [-f ipv6]`.
    public func flush(family: AddressFamily? = nil) throws(NetlinkError) {
        try socket.request(ConntrackMessage.flushRequest(family: family), .delConntrack,
                           "all conntrack entries" + (family.map { " (\($0))" } ?? ""))
    }

    // MARK: - Service proxy cleanup

    /// After `endpoint` left a Service: deletes the connections that were DNATed to it, so that the
    /// client's next datagram is load-balanced again instead of following the old entry into a
    /// black hole (UDP has no close to end the entry). Narrow it to the service address and port
    /// that lost the endpoint with `service`/`servicePort`, to the endpoint's `port` likewise.
    /// Returns the number of entries deleted.
    /// Same as `conntrack -D -p udp [--orig-dst VIP --orig-port-dst PORT] --reply-src ENDPOINT`
    /// (kube-proxy's `ClearEntriesForNAT`).
    @discardableResult
    public func deleteEntries(ofRemovedEndpoint endpoint: IPAddress, port: UInt16? = nil, proto: ConntrackProtocol = .udp,
                              service: IPAddress? = nil, servicePort: UInt16? = nil) throws(NetlinkError) -> Int {
        try delete(matching: .removedEndpoint(endpoint, port: port, proto: proto, service: service, servicePort: servicePort))
    }

    /// After a Service address and port went from no endpoints to some: deletes the entries made
    /// while it had none (packets that were not DNATed, whose entries would otherwise keep the
    /// client's flow away from the new endpoints until they time out). Entries already DNATed to
    /// one of `servingEndpoints` are kept. Returns the number of entries deleted.
    /// Same as `conntrack -D -p udp --orig-dst VIP --orig-port-dst PORT` (kube-proxy's
    /// `ClearEntriesForIP`, per port as its `CleanStaleEntries` does).
    @discardableResult
    public func deleteEntries(ofServiceGainingEndpoints service: IPAddress, port: UInt16, proto: ConntrackProtocol = .udp,
                              keeping servingEndpoints: Set<IPAddress> = []) throws(NetlinkError) -> Int {
        try delete(matching: .service(service, port: port, proto: proto, keeping: servingEndpoints))
    }
}
