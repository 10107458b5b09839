import Foundation
import Synchronization

/// The bearer token of a configuration: fixed, or read from a file and read again when the file's
/// modification time or size changes (the kubelet rotates projected service-account tokens).
final class BearerToken: Sendable {
    private let fixed: String?
    private let path: String?
    private struct Stamp: Hashable, Sendable { var modified: Double?; var size: Int? }
    private struct Cached: Sendable { var stamp: Stamp?; var token: String? }
    private let cache = Mutex(Cached())

    init(fixed: String?, path: String?) {
        self.fixed = fixed
        self.path = path
    }

    /// The token for the next request; nil when there is none. A file that cannot be read keeps the
    /// last token: a failed read during the kubelet's atomic swap must not drop authentication.
    func current() -> String? {
        guard let path else { return fixed }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let stamp = attributes.map { a in
            Stamp(modified: (a[.modificationDate] as? Date)?.timeIntervalSince1970, size: (a[.size] as? NSNumber)?.intValue)
        }
        return cache.withLock { c in
            if c.token == nil || stamp != c.stamp,
               let text = try? String(contentsOfFile: path, encoding: .utf8) {
                c.token = text.trimmingCharacters(in: .whitespacesAndNewlines)
                c.stamp = stamp
            }
            return c.token ?? fixed
        }
    }
}
