import Netlink

extension IPVSSocket: IPVSConnectionCounting {
    /// The counters of `service`'s destinations, by address and port (one IPVS_CMD_GET_DEST dump).
    public func statistics(of service: IPVSServiceKey) throws -> [Backend: IPVSDestinationStatistics] {
        Dictionary(try destinationsWithStatistics(of: service).map { (Backend($0.destination.address, $0.destination.port), $0.statistics) },
                   uniquingKeysWith: { a, _ in a })
    }
}
