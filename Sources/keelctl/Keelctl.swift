import ArgumentParser

/// keelctl: the operator's tool. Everything it prints comes from the same pure code keeld runs
/// (manifest decoding, proxy state, rule generation), over the same manifests, without a kernel.
@main
struct Keelctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keelctl",
        abstract: "Validate manifests and show what keeld would program, without touching the kernel.",
        subcommands: [Validate.self, Render.self, Policy.self, IPVS.self])
}

/// `--output text|json`, shared by the subcommands.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}
