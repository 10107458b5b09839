import ArgumentParser
import Cluster
import Logging

/// Reads a manifest folder the way keeld does (same decoder, same validation), into a snapshot.
func loadManifests(_ directory: String) -> (ClusterSnapshot, [ManifestProblem]) {
    let store = ClusterStore()
    var logger = Logger(label: "keelctl")
    logger.logLevel = .critical   // problems are returned and printed by the caller, not logged twice
    let source = ManifestDirectorySource(directory: directory, logger: logger)
    let problems = source.loadOnce(into: store)
    return (store.snapshot(), problems)
}

/// A problem for stderr: what keeld does with its object, then the problem.
func problemLine(_ p: ManifestProblem) -> String {
    "\(p.isError ? "problem (object skipped)" : "warning (object kept)"): \(p)"
}

/// Escapes a string for JSON output.
func jsonString(_ s: String) -> String {
    var out = "\""
    for c in s.unicodeScalars {
        switch c {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default: out += c.value < 0x20 ? String(format4(c.value)) : String(c)
        }
    }
    return out + "\""
}

private func format4(_ v: UInt32) -> String {
    let hex = String(v, radix: 16)
    return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
}
