import Foundation
import NetnsHarness
import Testing

/// SCTP through keeld's nftables data planes with real traffic, on a kernel that has SCTP: Debian 12's
/// stock kernel in the VM lane (this machine's kernel has no sctp module). The guest script
/// (VM/sctp-keeld.sh) makes the VM's own namespace a node with pods on a bridge and an outside client,
/// runs `keeld --proxy --policy` (nftables proxy mode) from a manifest folder, and reports what socat's
/// SCTP associations saw through a ClusterIP, a NodePort and a NetworkPolicy; this side asserts.
/// Not privileged on the host (qemu, software emulation), never skipped.
@Suite(.serialized) struct SCTPVirtualMachineTests {
    static let guestScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("VM/sctp-keeld.sh").path

    @Test(.timeLimit(.minutes(5)))
    func sctpThroughClusterIPNodePortAndPolicy() throws {
        let keeld = VirtualMachineLane.keelBinary("keeld")
        let script = "KEELD=\(keeld)\n" + (try String(contentsOfFile: Self.guestScript, encoding: .utf8))
        let run = try VirtualMachineLane.run(script: script, binaries: [keeld],
                                             modules: VirtualMachineLane.nftablesDataPlaneModules + VirtualMachineLane.sctpModules,
                                             timeout: .seconds(180))
        let r = run.results
        let context = Comment(rawValue: run.description)
        #expect(run.exitStatus == 0, context)
        #expect(r["programmed"] == "yes", context)
        // No policy yet: both backends answer through the cluster IP and the node port, and the ports
        // and the client that the policy will refuse are open (so a refusal later is the policy's).
        #expect(r["open-clusterip"] == "b1,b2,", context)
        #expect(r["open-nodeport"] == "b1,b2,", context)
        #expect(r["open-other-sctp-port"] == "b1", context)
        #expect(r["open-tcp"] == "b1", context)
        #expect(r["open-unselected-client"] == "answered", context)
        // The policy allows SCTP 9000 from app=client pods and from 192.168.100.0/24.
        #expect(r["policy-programmed"] == "yes", context)
        #expect(r["policy-clusterip"] == "b1,b2,", context)
        #expect(r["policy-pod-direct"] == "b2", context)
        #expect(r["policy-nodeport"] == "b1,b2,", context)
        // Another SCTP port, TCP on the allowed number, and a pod the rule does not select: dropped.
        #expect(r["policy-other-sctp-port"] == "denied", context)
        #expect(r["policy-tcp"] == "denied", context)
        #expect(r["policy-unselected-client"] == "denied", context)
        #expect(r["policy-unselected-direct"] == "denied", context)
        #expect(r["policy-drops"] == "1", context)
    }
}
