/// Undo steps for what an ADD has created so far, run newest-first if the ADD throws.
public struct Rollback {
    fileprivate var steps: [(what: String, undo: () throws -> Void)] = []
    /// Registers how to undo the step just taken. Put it on the line after the create.
    public mutating func onFailure(_ what: String, undo: @escaping () throws -> Void) { steps.append((what, undo)) }
}

/// Runs `body`; if it throws, undoes every registered step (newest first) and rethrows the original
/// error. A failing undo step is reported to `warn` and the rest still run.
public func withRollback<R>(warn: (String) -> Void = PluginLog.warning, _ body: (inout Rollback) throws -> R) throws -> R {
    var rollback = Rollback()
    do {
        return try body(&rollback)
    } catch {
        for step in rollback.steps.reversed() {
            do { try step.undo() } catch let undoError { warn("rollback step '\(step.what)' failed: \(undoError)") }
        }
        throw error   // the caller sees the failure that caused the rollback, not the cleanup noise
    }
}

/// Plugin logging goes to stderr: stdout carries the CNI result.
public enum PluginLog {
    public static func warning(_ message: String) {
        var line = Array("keel: warning: \(message)\n".utf8)
        line.withUnsafeMutableBytes { _ = writeStderr($0.baseAddress!, $0.count) }
    }
}

#if canImport(Glibc)
import Glibc
private func writeStderr(_ p: UnsafeMutableRawPointer, _ n: Int) -> Int { write(2, p, n) }
#endif
