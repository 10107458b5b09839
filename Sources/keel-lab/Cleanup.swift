import ArgumentParser
import NetnsHarness

struct Cleanup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove lab namespaces left by a crashed run (those whose process is gone, or all with --all).")

    @Option(help: "Namespace name prefix to clean up (keel-t: tests, keel-demo: demo, keel-bench: benchmarks).")
    var prefix: String = "keel-t"

    @Flag(help: "Remove every namespace under the prefix, also those of running processes.")
    var all = false

    func run() throws {
        NetnsLab.removeLeftovers(prefix: prefix, all: all)
    }
}
