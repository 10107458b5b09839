import NetnsHarness
import Testing

/// The VM lane (scripts/vm/lane): Debian 12's stock kernel under qemu with software emulation, for what
/// this machine's kernel lacks (IPVS). Needs no privilege and no KVM, only qemu, kmod, cpio and the
/// cache that `scripts/vm/lane prepare` fills (or fetches on first use), so it is never skipped.
/// Serialized: each VM keeps one of the machine's two cores busy for a few seconds.
@Suite(.serialized) struct VMLaneTests {
    /// Everything the IPVS tests will stand on: modules, namespaces and veth, traffic, nftables NAT,
    /// ipvsadm and one of Keel's Swift binaries with its runtime.
    static let smokeModules = VirtualMachineLane.ipvsDataPlaneModules
    static let smokeScript = """
        failures=0
        report() { echo "KEEL-RESULT $*"; }
        check() {   # check KEY COMMAND...: reports "ok" or "failed <status>"
          key=$1; shift
          if "$@"; then report "$key" ok; else report "$key" "failed $?"; failures=$((failures + 1)); fi
        }
        report kernel "$(uname -r)"
        check modules sh -c 'for m in \(smokeModules.joined(separator: " ")); do grep -q "^$m " /proc/modules || { echo "$m not loaded"; exit 1; }; done'

        check ipvs-proc test -e /proc/net/ip_vs
        check ipvsadm-add ipvsadm -A -t 10.96.0.10:80 -s rr
        check ipvsadm-list sh -c 'ipvsadm -Ln | grep -q "TCP  10.96.0.10:80 rr"'
        # The lane loads dummy with numdummies=0: no dummy0 nobody asked for.
        check no-dummy0 sh -c '! ip link show dummy0 2>/dev/null'
        check dummy-link ip link add keel-d0 type dummy

        check netns ip netns add a
        ip netns add b
        ip link add va type veth peer name vb
        ip link set va netns a
        ip link set vb netns b
        ip -n a addr add 10.1.0.1/24 dev va
        ip -n b addr add 10.1.0.2/24 dev vb
        for ns in a b; do ip -n $ns link set lo up; done
        ip -n a link set va up
        ip -n b link set vb up
        check ping ip netns exec a ping -c 1 -W 3 10.1.0.2

        ip netns exec b socat -T 5 TCP-LISTEN:8080,reuseaddr SYSTEM:'echo keel-over-veth' &
        reply=""
        for attempt in 1 2 3 4 5 6 7 8 9 10; do
          reply=$(ip netns exec a socat -T 2 - TCP:10.1.0.2:8080 </dev/null 2>/dev/null) && [ -n "$reply" ] && break
          sleep 0.2
        done
        report socat-reply "$reply"

        check nft-nat sh -c 'ip netns exec a nft -f - <<EOF
        table ip keel_vm_nat {
          chain prerouting {
            type nat hook prerouting priority dstnat; policy accept;
            ip daddr 10.96.0.10 tcp dport 80 dnat to 10.1.0.2:8080
          }
          chain postrouting {
            type nat hook postrouting priority srcnat; policy accept;
            oifname "va" masquerade
          }
        }
        EOF'
        check nft-list sh -c 'ip netns exec a nft list table ip keel_vm_nat | grep -q masquerade'

        check keelctl sh -c 'keelctl --help | grep -q "USAGE: keelctl"'
        exit $failures
        """

    @Test func smokeBootsStockKernelWithModulesNamespacesAndKeelBinary() throws {
        let run = try VirtualMachineLane.run(
            script: Self.smokeScript,
            binaries: [VirtualMachineLane.keelBinary("keelctl")],
            modules: Self.smokeModules,
            timeout: .seconds(90))
        let results = run.results
        #expect(results["kernel"]?.hasPrefix("6.1.") == true, "not Debian 12's kernel: \(run)")
        for key in ["modules", "ipvs-proc", "ipvsadm-add", "ipvsadm-list", "no-dummy0", "dummy-link", "netns", "ping",
                    "nft-nat", "nft-list", "keelctl"] {
            #expect(results[key] == "ok", "\(key): \(results[key] ?? "not reported")\n\(run)")
        }
        #expect(results["socat-reply"] == "keel-over-veth", "\(run)")
        #expect(run.exitStatus == 0, "\(run)")
    }

    @Test func guestExitStatusIsReported() throws {
        let run = try VirtualMachineLane.run(script: "echo KEEL-RESULT before-exit yes\nexit 3\n", timeout: .seconds(60))
        #expect(run.exitStatus == 3, "\(run)")
        #expect(run.results["before-exit"] == "yes", "\(run)")
        #expect(run.kernelRelease.hasPrefix("6.1."), "\(run)")
    }

    @Test func guestThatOutlivesItsTimeoutIsATimeout() throws {
        var caught: VirtualMachineLaneError?
        do {
            let run = try VirtualMachineLane.run(script: "echo KEEL-RESULT started yes\nsleep 300\n", timeout: .seconds(6))
            Issue.record("the guest should have been stopped, but it reported: \(run)")
        } catch let error as VirtualMachineLaneError {
            caught = error
        }
        guard case let .timeout(seconds, tail) = caught else {
            Issue.record("expected a timeout, got \(String(describing: caught))")
            return
        }
        #expect(seconds == 6)
        // The guest was running the script when it was stopped: a timeout, not a boot failure.
        #expect(tail.contains("KEEL-RESULT started yes"), "\(tail)")
    }

    @Test func moduleThatDoesNotLoadIsABootFailure() throws {
        let error = #expect(throws: VirtualMachineLaneError.self) {
            try VirtualMachineLane.run(script: "echo KEEL-RESULT ran yes\n", modules: ["dummy", "numdummies=many"], timeout: .seconds(60))
        }
        guard case let .bootFailure(reason, tail) = error else {
            Issue.record("expected a boot failure, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("dummy.ko numdummies=many"), "\(reason)")
        #expect(!tail.contains("KEEL-RESULT ran yes"), "the script must not run when a module did not load: \(tail)")
    }

    @Test func unknownModuleStopsTheLaneBeforeBoot() throws {
        let error = #expect(throws: VirtualMachineLaneError.self) {
            try VirtualMachineLane.run(script: "exit 0\n", modules: ["no_such_module_keel"], timeout: .seconds(30))
        }
        guard case let .laneFailed(status, stderr) = error else {
            Issue.record("expected the lane to refuse, got \(String(describing: error))")
            return
        }
        #expect(status == 2)
        #expect(stderr.contains("no module no_such_module_keel"), "\(stderr)")
    }
}
