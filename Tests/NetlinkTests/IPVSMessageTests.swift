import NetAddress
@testable import Netlink
import Testing

private typealias U = UAPIBytes
private func ip(_ s: String) -> IPAddress { IPAddress(s)! }

/// The id nlctrl might give family "IPVS" (any value ≥ GENL_START_ALLOC).
private let ipvsID: UInt16 = 0x23
private let web = IPVSServiceKey(address: ip("10.96.0.1"), proto: .tcp, port: 80)
private let backend = IPVSDestination(address: ip("10.0.0.5"), port: 8080, weight: 1)

// include/uapi/linux/ip_vs.h, written out: IPVS_CMD_*, IPVS_CMD_ATTR_*, IPVS_SVC_ATTR_*, IPVS_DEST_ATTR_*.
private enum CMD { static let newService: UInt8 = 1, setService: UInt8 = 2, delService: UInt8 = 3, getService: UInt8 = 4,
                   newDest: UInt8 = 5, setDest: UInt8 = 6, delDest: UInt8 = 7, getDest: UInt8 = 8,
                   setInfo: UInt8 = 14, getInfo: UInt8 = 15, flush: UInt8 = 17 }
private enum SVC { static let af: UInt16 = 1, proto: UInt16 = 2, addr: UInt16 = 3, port: UInt16 = 4, fwmark: UInt16 = 5,
                   sched: UInt16 = 6, flags: UInt16 = 7, timeout: UInt16 = 8, netmask: UInt16 = 9, stats: UInt16 = 10,
                   stats64: UInt16 = 12 }
private enum DEST { static let addr: UInt16 = 1, port: UInt16 = 2, fwd: UInt16 = 3, weight: UInt16 = 4, uThresh: UInt16 = 5,
                    lThresh: UInt16 = 6, active: UInt16 = 7, inactive: UInt16 = 8, persistent: UInt16 = 9, stats: UInt16 = 10,
                    af: UInt16 = 11, stats64: UInt16 = 12, tunType: UInt16 = 13, tunPort: UInt16 = 14, tunFlags: UInt16 = 15 }
private let attrService: UInt16 = 1, attrDest: UInt16 = 2

/// IPVS_CMD_ATTR_SERVICE naming TCP 10.96.0.1:80: AF_INET, IPPROTO_TCP, the 16-byte nf_inet_addr, port 80 big endian.
private let webKeyAttributes: [UInt8] = [U.nla(SVC.af, [2, 0]), U.nla(SVC.proto, [6, 0]),
    U.nla(SVC.addr, [10, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), U.nla(SVC.port, [0x00, 0x50])].flatMap { $0 }
/// IPVS_CMD_ATTR_DEST naming 10.0.0.5:8080 (0x1f90), with IPVS_DEST_ATTR_ADDR_FAMILY AF_INET.
private let backendKeyAttributes: [UInt8] = [U.nla(DEST.addr, [10, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    U.nla(DEST.port, [0x1f, 0x90]), U.nla(DEST.af, [2, 0])].flatMap { $0 }

private func ipvsRequest(_ command: UInt8, flags: UInt16 = U.flagRequest | U.flagAck, _ attributes: [UInt8]...) -> [UInt8] {
    U.genlMessage(type: ipvsID, flags: flags, command: command, version: 1, attributes.flatMap { $0 })
}
private func built(_ m: NetlinkMessageBuilder) -> [UInt8] { m.bytes(sequence: 1) }
private func built(_ op: IPVSOperation) -> [UInt8] { built(IPVSMessage.request(op, family: ipvsID)) }

@Suite struct IPVSMessageBuildingTests {
    @Test func newServiceIsTheFullLayout() {
        // Spelled out once byte by byte: 16 + 4 + a nest of 84.
        #expect(built(.addService(IPVSService(key: web, scheduler: "rr"))) == [
            104, 0, 0, 0, 0x23, 0x00, 0x05, 0x00, 1, 0, 0, 0, 0, 0, 0, 0,   // nlmsghdr: REQUEST | ACK
            1, 1, 0, 0,                                                     // IPVS_CMD_NEW_SERVICE, version 1
            84, 0, 0x01, 0x80,                                              // IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED
            6, 0, 1, 0, 2, 0, 0, 0,                                         // AF: AF_INET
            6, 0, 2, 0, 6, 0, 0, 0,                                         // PROTOCOL: TCP
            20, 0, 3, 0, 10, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // ADDR: 16 bytes
            6, 0, 4, 0, 0, 80, 0, 0,                                        // PORT: network order
            7, 0, 6, 0, 0x72, 0x72, 0, 0,                                   // SCHED_NAME "rr\0"
            12, 0, 7, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,                // FLAGS {flags 0, mask ~0}
            8, 0, 8, 0, 0, 0, 0, 0,                                         // TIMEOUT 0
            8, 0, 9, 0, 0xff, 0xff, 0xff, 0xff,                             // NETMASK 255.255.255.255
        ])
    }

    @Test func persistentIPv6ServiceSendsItsFlagsTimeoutAndPrefixLength() {
        let key = IPVSServiceKey(address: ip("fd00::10"), proto: .udp, port: 53)
        let service = IPVSService(key: key, scheduler: "sh", flags: [.persistent, .schedulerFlag1, .hashed], timeout: 10800)
        #expect(built(.updateService(service)) == ipvsRequest(CMD.setService, U.nest(attrService,
            U.nla(SVC.af, [10, 0]), U.nla(SVC.proto, [17, 0]), U.nla(SVC.addr, ip("fd00::10").bytes), U.nla(SVC.port, [0, 53]),
            U.nla(SVC.sched, U.cString("sh")),
            U.nla(SVC.flags, U.le32(0x0009) + U.le32(0xffff_ffff)),      // PERSISTENT | SCHED1; never HASHED
            U.nla(SVC.timeout, U.le32(10800)),
            U.nla(SVC.netmask, U.le32(128)))))                            // IPv6: the prefix length, host order
    }

    @Test func ipv4PersistenceNetmaskIsTheMaskInNetworkOrder() {
        let service = IPVSService(key: web, scheduler: "rr", flags: .persistent, timeout: 60, netmask: 24)
        let bytes = built(.addService(service))
        #expect(bytes.suffix(8) == [8, 0, 9, 0, 0xff, 0xff, 0xff, 0x00])
        #expect(IPVSMessage.netmaskPrefix([0xff, 0xff, 0xff, 0x00], family: .ipv4) == 24)
        #expect(IPVSMessage.netmaskPrefix([0xff, 0xff, 0xff, 0xff], family: .ipv4) == 32)
        #expect(IPVSMessage.netmaskPrefix(U.le32(64), family: .ipv6) == 64)
    }

    @Test func deleteServiceNamesOnlyTheKey() {
        #expect(built(.deleteService(web)) == ipvsRequest(CMD.delService, U.nest(attrService, webKeyAttributes)))
    }

    @Test func newAndSetDestinationCarryServiceKeyAndTheFullDestination() {
        let full = U.nest(attrDest, backendKeyAttributes, U.nla(DEST.fwd, U.le32(0)), U.nla(DEST.weight, U.le32(1)),
                          U.nla(DEST.uThresh, U.le32(0)), U.nla(DEST.lThresh, U.le32(0)))
        #expect(built(.addDestination(web, backend)) == ipvsRequest(CMD.newDest, U.nest(attrService, webKeyAttributes), full))
        var drained = backend
        drained.weight = 0
        drained.upperThreshold = 100
        #expect(built(.updateDestination(web, drained)) == ipvsRequest(CMD.setDest, U.nest(attrService, webKeyAttributes),
            U.nest(attrDest, backendKeyAttributes, U.nla(DEST.fwd, U.le32(0)), U.nla(DEST.weight, U.le32(0)),
                   U.nla(DEST.uThresh, U.le32(100)), U.nla(DEST.lThresh, U.le32(0)))))
        // 16 + 4 + service nest (4 + 8 + 8 + 20 + 8) + destination nest (4 + 20 + 8 + 8 + 4 × 8)
        #expect(built(.addDestination(web, backend)).count == 140)
    }

    @Test func deleteDestinationNamesServiceAndDestinationKeys() {
        #expect(built(.deleteDestination(web, address: ip("10.0.0.5"), port: 8080))
                == ipvsRequest(CMD.delDest, U.nest(attrService, webKeyAttributes), U.nest(attrDest, backendKeyAttributes)))
    }

    @Test func readsAndFlush() {
        #expect(built(IPVSMessage.infoRequest(family: ipvsID)) == ipvsRequest(CMD.getInfo, flags: U.flagRequest))
        #expect(built(IPVSMessage.servicesDumpRequest(family: ipvsID)) == ipvsRequest(CMD.getService, flags: U.flagRequest | U.flagDump))
        #expect(built(IPVSMessage.serviceRequest(family: ipvsID, key: web))
                == ipvsRequest(CMD.getService, flags: U.flagRequest, U.nest(attrService, webKeyAttributes)))
        #expect(built(IPVSMessage.destinationsDumpRequest(family: ipvsID, service: web))
                == ipvsRequest(CMD.getDest, flags: U.flagRequest | U.flagDump, U.nest(attrService, webKeyAttributes)))
        #expect(built(IPVSMessage.flushRequest(family: ipvsID)) == [20, 0, 0, 0, 0x23, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0, 17, 1, 0, 0])
    }

    @Test(arguments: [
        (IPVSOperation.addService(IPVSService(key: web)), "IPVS_CMD_NEW_SERVICE TCP 10.96.0.1:80 rr: "),
        (.deleteService(web), "IPVS_CMD_DEL_SERVICE TCP 10.96.0.1:80: "),
        (.addDestination(web, backend), "IPVS_CMD_NEW_DEST TCP 10.96.0.1:80 → 10.0.0.5:8080: "),
        (.updateDestination(web, backend), "IPVS_CMD_SET_DEST TCP 10.96.0.1:80 → 10.0.0.5:8080: "),
        (.deleteDestination(IPVSServiceKey(address: ip("fd00::1"), proto: .udp, port: 53), address: ip("fd00::5"), port: 5353),
         "IPVS_CMD_DEL_DEST UDP [fd00::1]:53 → [fd00::5]:5353: "),
    ])
    func failuresNameTheCommandAndTheObject(operation: IPVSOperation, prefix: String) {
        let error = NetlinkError(IPVSMessage.netlinkOperation(operation), IPVSMessage.subject(operation), errno: .fileExists)
        #expect(error.description.hasPrefix(prefix), "\(error)")
        #expect(error.description.contains("File exists"), "\(error)")
    }

    @Test func deletesOfWhatIsGoneCountAsDone() {
        #expect(NetlinkError(.delIPVSService, "TCP 10.96.0.1:80", errno: .noSuchProcess).isAlreadyGone)      // ESRCH: no service
        #expect(NetlinkError(.delIPVSDestination, "x", errno: .noSuchFileOrDirectory).isAlreadyGone)       // ENOENT: no dest
        #expect(!NetlinkError(.newIPVSDestination, "x", errno: .noSuchProcess).isAlreadyGone)
        #expect(NetlinkError(.newIPVSService, "x", errno: .fileExists).isAlreadyExists)
    }
}

@Suite struct IPVSMessageParsingTests {
    /// The stats nest ip_vs_genl_fill_stats writes (u32 counters, u64 bytes); its content is not modelled.
    static let stats = U.nest(SVC.stats, U.nla(1, U.le32(12)), U.nla(2, U.le32(40)), U.nla(3, U.le32(38)),
                              U.nla(4, U.le32(4000) + U.le32(0)), U.nla(5, U.le32(3800) + U.le32(0)))

    /// IPVS_CMD_NEW_SERVICE as ip_vs_genl_fill_service dumps it: the kernel adds HASHED to every
    /// service and reports the flag mask as ~0.
    @Test func serviceDumpEntryParsesAndHashedIsIgnored() throws {
        let entry = U.genlMessage(type: ipvsID, flags: U.flagMulti, command: CMD.newService, version: 1,
            U.nest(attrService, webKeyAttributes, U.nla(SVC.sched, U.cString("wrr")),
                   U.nla(SVC.flags, U.le32(0x0003) + U.le32(0xffff_ffff)), U.nla(SVC.timeout, U.le32(10800)),
                   U.nla(SVC.netmask, [0xff, 0xff, 0xff, 0xff]), Self.stats, U.nest(SVC.stats64, U.nla(1, U.le32(12) + U.le32(0)))))
        let service = try #require(IPVSMessage.parseService(try U.kernelMessage(entry)))
        #expect(service == IPVSService(key: web, scheduler: "wrr", flags: .persistent, timeout: 10800, netmask: 32))
        #expect(!service.flags.contains(.hashed))
        #expect(service.netmask == 32)
    }

    @Test func ipv6ServiceEntryParses() throws {
        let key = IPVSServiceKey(address: ip("fd00::10"), proto: .sctp, port: 3868)
        let entry = U.genlMessage(type: ipvsID, flags: U.flagMulti, command: CMD.newService, version: 1,
            U.nest(attrService, U.nla(SVC.af, [10, 0]), U.nla(SVC.proto, [132, 0]), U.nla(SVC.addr, ip("fd00::10").bytes),
                   U.nla(SVC.port, U.be16(3868)), U.nla(SVC.sched, U.cString("rr")), U.nla(SVC.flags, U.le32(0x2) + U.le32(0xffff_ffff)),
                   U.nla(SVC.timeout, U.le32(0)), U.nla(SVC.netmask, U.le32(128))))
        #expect(try IPVSMessage.parseService(try U.kernelMessage(entry)) == IPVSService(key: key, scheduler: "rr"))
    }

    @Test func firewallMarkServicesAndOtherCommandsAreNotServices() throws {
        let fwmark = U.genlMessage(type: ipvsID, flags: U.flagMulti, command: CMD.newService, version: 1,
            U.nest(attrService, U.nla(SVC.af, [2, 0]), U.nla(SVC.fwmark, U.le32(7)), U.nla(SVC.sched, U.cString("rr"))))
        #expect(IPVSMessage.parseService(try U.kernelMessage(fwmark)) == nil)
        let notADumpEntry = U.genlMessage(type: ipvsID, flags: 0, command: CMD.newDest, version: 1,
            U.nest(attrService, webKeyAttributes, U.nla(SVC.sched, U.cString("rr"))))
        #expect(IPVSMessage.parseService(try U.kernelMessage(notADumpEntry)) == nil)
    }

    /// IPVS_CMD_NEW_DEST as ip_vs_genl_fill_dest dumps it, counters included.
    @Test func destinationDumpEntryParsesWithItsStatistics() throws {
        let entry = U.genlMessage(type: ipvsID, flags: U.flagMulti, command: CMD.newDest, version: 1,
            U.nest(attrDest, U.nla(DEST.addr, [10, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), U.nla(DEST.port, [0x1f, 0x90]),
                   U.nla(DEST.fwd, U.le32(0)), U.nla(DEST.weight, U.le32(3)),
                   U.nla(DEST.tunType, [0]), U.nla(DEST.tunPort, [0, 0]), U.nla(DEST.tunFlags, [0, 0]),
                   U.nla(DEST.uThresh, U.le32(500)), U.nla(DEST.lThresh, U.le32(100)),
                   U.nla(DEST.active, U.le32(5)), U.nla(DEST.inactive, U.le32(2)), U.nla(DEST.persistent, U.le32(1)),
                   U.nla(DEST.af, [2, 0]), Self.stats, U.nest(DEST.stats64, U.nla(1, U.le32(12) + U.le32(0)))))
        let parsed = try #require(IPVSMessage.parseDestination(try U.kernelMessage(entry), serviceFamily: .ipv4))
        #expect(parsed.destination == IPVSDestination(address: ip("10.0.0.5"), port: 8080, weight: 3, forwarding: .masquerade,
                                                      upperThreshold: 500, lowerThreshold: 100))
        #expect(parsed.statistics == IPVSDestinationStatistics(activeConnections: 5, inactiveConnections: 2, persistentConnections: 1))
    }

    @Test func destinationFromAKernelBefore318TakesTheServiceFamily() throws {
        // No ADDR_FAMILY; forwarding flags beyond the method bits (IP_VS_CONN_F_ONE_PACKET) are masked off.
        let entry = U.genlMessage(type: ipvsID, flags: U.flagMulti, command: CMD.newDest, version: 1,
            U.nest(attrDest, U.nla(DEST.addr, ip("fd00::5").bytes), U.nla(DEST.port, U.be16(80)),
                   U.nla(DEST.fwd, U.le32(0x2003)), U.nla(DEST.weight, U.le32(1))))
        let parsed = try #require(IPVSMessage.parseDestination(try U.kernelMessage(entry), serviceFamily: .ipv6))
        #expect(parsed.destination == IPVSDestination(address: ip("fd00::5"), port: 80, weight: 1, forwarding: .directRoute))
        #expect(parsed.statistics == IPVSDestinationStatistics())
    }

    @Test func infoReplyParses() throws {
        let reply = U.genlMessage(type: ipvsID, flags: 0, command: CMD.setInfo, version: 1,
                                  U.nla(1, U.le32(0x010201)), U.nla(2, U.le32(4096)))
        let info = try #require(IPVSMessage.parseInfo(try U.kernelMessage(reply)))
        #expect(info == IPVSInfo(version: 0x010201, connectionTableSize: 4096))
        #expect(info.versionString == "1.2.1")
        let wrongCommand = U.genlMessage(type: ipvsID, flags: 0, command: CMD.getInfo, version: 1, U.nla(1, U.le32(0x010201)))
        #expect(IPVSMessage.parseInfo(try U.kernelMessage(wrongCommand)) == nil)
    }

    @Test func whatWeSendParsesBackToTheSameValues() throws {
        // Our NEW_SERVICE / NEW_DEST carry the same nests as the kernel's dump entries.
        let service = IPVSService(key: IPVSServiceKey(address: ip("fd00::10"), proto: .udp, port: 53), scheduler: "mh",
                                  flags: [.persistent, .schedulerFlag2], timeout: 300, netmask: 64)
        let sent = try U.kernelMessage(built(.addService(service)))
        let nest = try #require(GenericNetlinkMessage.attributes(sent).nested(attrService))
        #expect(IPVSMessage.parseService(nest) == service)
        let dest = IPVSDestination(address: ip("fd00::7"), port: 5353, weight: 9, forwarding: .tunnel, upperThreshold: 1, lowerThreshold: 2)
        let destNest = try #require(GenericNetlinkMessage.attributes(try U.kernelMessage(built(.addDestination(service.key, dest)))).nested(attrDest))
        #expect(IPVSMessage.parseDestination(destNest, serviceFamily: .ipv6)?.destination == dest)
    }
}
