import Foundation
import NetnsHarness
import Testing

/// keeld's IPVS data plane on a kernel that has IPVS: Debian 12's stock kernel in the VM lane. The guest
/// script (VM/ipvs-keeld.sh) makes the VM's own namespace a node with pods on a bridge and an outside
/// client, runs `keeld --proxy --proxy-mode ipvs` from a manifest folder and reports what real TCP and UDP
/// connections saw; this side asserts. Not privileged on the host (qemu, software emulation), never skipped.
@Suite(.serialized) struct IPVSVirtualMachineTests {
    static let guestScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("VM/ipvs-keeld.sh").path

    @Test(.timeLimit(.minutes(5)))
    func keeldProgramsIPVSAndRealTrafficFollows() throws {
        let keeld = VirtualMachineLane.keelBinary("keeld"), keelctl = VirtualMachineLane.keelBinary("keelctl")
        let body = try String(contentsOfFile: Self.guestScript, encoding: .utf8)
        let script = "KEELD=\(keeld)\nKEELCTL=\(keelctl)\n" + body
        let run = try VirtualMachineLane.run(script: script, binaries: [keeld, keelctl],
                                                       modules: VirtualMachineLane.ipvsDataPlaneModules, timeout: .seconds(240))
        let r = run.results
        let context = Comment(rawValue: run.description)
        #expect(run.exitStatus == 0, context)
        #expect(r["programmed"] == "yes", context)
        // Services: web (cluster IP, node port on the outside address, external IP), dns, sticky, empty, echo.
        #expect(r["ipvs-services"] == "8", context)
        #expect(r["dummy-addresses"] == "10.96.0.10/32,10.96.0.11/32,10.96.0.12/32,10.96.0.13/32,10.96.0.14/32,192.168.100.50/32,")
        // Round robin over three backends: twelve connections reach each of them.
        #expect(r["clusterip-tcp"] == "b1,b2,b3,", context)
        #expect(r["clusterip-udp"] == "b1,b2,b3,", context)
        #expect(r["nodeport-tcp"] == "b1,b2,b3,", context)
        #expect(r["externalip-tcp"] == "b1,b2,b3,", context)
        // ClientIP affinity: one backend for every connection of the client.
        let sticky = r["affinity-tcp"] ?? ""
        #expect(["b1,", "b2,", "b3,"].contains(sticky), "affinity-tcp: \(sticky)")
        // No endpoints: refused at once by the nftables filter, not a timeout.
        #expect(r["no-endpoints"] == "refused-0s" || r["no-endpoints"] == "refused-1s", context)
        #expect(r["keelctl-agrees"] == "yes", context)
        #expect(Int(r["keelctl-lines"] ?? "") ?? 0 > 20)
        // One endpoint leaves: its destinations drain at weight 0 and nothing else is touched.
        #expect(r["endpoint-b3-weight"] == "0", context)
        #expect(r["change-syncs-with-operations"] == "1", context)
        let change = r["change-sync"] ?? ""
        // The three virtual services that carried connections keep b3 at weight 0 (draining); the idle
        // one (node port on the bridge address) drops it at once.
        #expect(change.contains("ipvs.changes=services +0 ~0 -0, destinations +0 ~3 -1") && change.contains("draining=3"),
                "change sync: \(change)")
        let operations = change.components(separatedBy: "ipvs.operations=").last?.components(separatedBy: " nft.").first ?? ""
        #expect(!operations.isEmpty && operations.components(separatedBy: "; ").allSatisfy { $0.contains("destination 10.244.0.13:8080") },
                "operations: \(operations)")
        #expect(r["web-after-change"] == "b1,b2,", context)
        #expect(r["terminating-weights"] == "1,0,1", context)
        #expect(r["hairpin-tcp"] == "b1,b2,", context)
        // SIGKILL and restart: the kernel state is read back, nothing is sent, connections live on.
        #expect(r["restart-synced"] == "yes", context)
        #expect(r["restart-ipvs-same"] == "yes")
        #expect(r["restart-nft-same"] == "yes")
        let restart = r["restart-sync"] ?? ""
        #expect(restart.contains("sync=full") && restart.contains("ipvs.changes=services +0 ~0 -0, destinations +0 ~0 -0")
                && restart.contains("nft.operations=0") && restart.contains("addresses.added=0"), "restart sync: \(restart)")
        #expect(r["long-connection"] == "before,after,", context)
    }
}
