import ArgumentParser

/// The lab tool behind scripts/demo, scripts/bench and scripts/test: everything it builds lives in
/// network namespaces it creates and removes (NetnsHarness), never in the caller's namespace.
@main
struct KeelLab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keel-lab",
        abstract: "Keel's namespace lab: demo, benchmarks, and checks used by the test command.",
        subcommands: [Demo.self, Bench.self, Cleanup.self, RootState.self])
}
