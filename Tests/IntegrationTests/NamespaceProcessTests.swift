import Foundation
import NetnsHarness
import Testing

/// Processes the harness starts (keeld, plugins, qemu) must get a clean signal state: the test thread that
/// spawns them blocks most signals, and an inherited mask made keeld ignore SIGTERM.
struct NamespaceProcessTests {
    @Test func childrenStartWithNoBlockedOrIgnoredSignal() throws {
        let status = try NamespaceProcess.check(["cat", "/proc/self/status"])
        func field(_ name: String) -> String? {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }.map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
        }
        #expect(field("SigBlk") == "0000000000000000")
        // Signals 1–31 (glibc keeps its own two real-time signals, 32 and 33, as they are).
        let ignored = UInt64(field("SigIgn") ?? "", radix: 16)
        #expect(ignored.map { $0 & 0x7fff_ffff } == 0, "SigIgn \(field("SigIgn") ?? "?")")
    }

    @Test func aStartedProcessEndsOnSIGTERM() throws {
        let process = try NamespaceProcess.start(["sleep", "30"])
        let start = ContinuousClock.now
        let exit = process.stop()   // SIGTERM first, SIGKILL only after 5 s
        #expect(exit == 128 + SIGTERM)
        #expect(ContinuousClock.now - start < .seconds(2), "sleep ended on SIGTERM, not on the SIGKILL fallback")
    }
}
