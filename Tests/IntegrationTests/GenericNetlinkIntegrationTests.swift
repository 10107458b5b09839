import Foundation
import Netlink
import NetnsHarness
import Testing

/// Generic netlink through the core, inside a lab namespace: nlctrl, a family that cannot exist,
/// and IPVS, which this machine's kernel lacks (the VM lane has it: these tests hold on both).
@Suite(.serialized, .enabled(if: Privilege.canRunNetnsTests, "needs CAP_NET_ADMIN and CAP_SYS_ADMIN"))
struct GenericNetlinkIntegrationTests {
    /// Whether the kernel has IPVS, seen independently of the code under test: ip_vs creates
    /// /proc/net/ip_vs in every namespace when it loads.
    static func kernelHasIPVS(_ ns: LabNamespace) throws -> Bool {
        try ns.exec(["test", "-e", "/proc/self/net/ip_vs"]).succeeded
    }

    @Test func nlctrlResolvesToItsFixedID() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("genl")
            let family = try GenericNetlinkSocket.inside(ns.namespace).family(named: "nlctrl")
            #expect(family.id == 0x10)
            #expect(family.name == "nlctrl")
            #expect(family.multicastGroups.contains { $0.name == "notify" && $0.id == 0x10 }, "\(family.multicastGroups)")
            // iproute2's view of the same family: "ID: 0x10  Version: 0x2  header size: 0  max attribs: 0".
            let shown = try ns.check(["genl", "ctrl", "get", "name", "nlctrl"])
            #expect(shown.contains("ID: 0x\(String(family.id, radix: 16))  Version: 0x\(String(family.version, radix: 16))  "
                                   + "header size: \(family.headerSize)  max attribs: \(family.maxAttribute) "), "\(shown)")
        }
    }

    @Test func aFamilyThatCannotExistIsATypedNotFound() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("genl")
            let socket = try GenericNetlinkSocket.inside(ns.namespace)
            #expect(throws: GenericNetlinkError.familyNotFound(family: "keel-none", module: nil)) {
                try socket.family(named: "keel-none")
            }
            // The socket stays usable after the negative answer.
            #expect(try socket.family(named: "nlctrl").id == 0x10)
        }
    }

    @Test func ipvsSocketOpensOrNamesTheMissingModule() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("ipvs")
            do {
                let ipvs = try IPVSSocket.inside(ns.namespace)
                // Opening may have autoloaded ip_vs (the kernel asks modprobe for the family's alias).
                #expect(try Self.kernelHasIPVS(ns), "IPVS resolved but /proc/net/ip_vs is missing")
                #expect(ipvs.family.name == "IPVS" && ipvs.family.id >= 0x10)
                let info = try ipvs.info()
                #expect(info.version >= 0x010200, "\(info.versionString)")
                #expect(info.connectionTableSize > 0)
                #expect(try ipvs.services().isEmpty, "a new namespace has an empty IPVS table")
            } catch let error as GenericNetlinkError {
                #expect(error == .familyNotFound(family: "IPVS", module: "ip_vs"))
                #expect(error.description.contains("kernel module ip_vs is not loaded"), "\(error)")
                #expect(try !Self.kernelHasIPVS(ns), "the kernel has IPVS, yet: \(error)")
            }
        }
    }

    @Test func keelctlIPVSListReadsTheNamespaceOrFailsNamingTheModule() throws {
        try NetnsLab.with(prefix: "keel-t") { lab in
            let ns = try lab.namespace("ipvs")
            let keelctl = CNIRunner.keelPluginDirectory + "/keelctl"
            let text = try ns.exec([keelctl, "ipvs", "list"])
            let json = try ns.exec([keelctl, "ipvs", "list", "--output", "json"])
            if try Self.kernelHasIPVS(ns) {
                #expect(text.succeeded && json.succeeded, "\(text)\n\(json)")
                #expect(text.stdout.hasPrefix("IP Virtual Server version "), "\(text)")
                #expect(text.stdout.contains("Prot LocalAddress:Port Scheduler Flags\n"), "\(text)")
                #expect(json.stdout.contains("\"services\":[]"), "\(json)")
            } else {
                for run in [text, json] {
                    #expect(run.exitStatus == 1, "\(run)")
                    #expect(run.stderr.contains("kernel module ip_vs is not loaded"), "\(run)")
                    #expect(run.stdout.isEmpty, "\(run)")
                }
            }
        }
    }
}
