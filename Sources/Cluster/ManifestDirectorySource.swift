import Foundation
import Logging
import Synchronization

/// The cluster state from a folder of standard Kubernetes manifests, watched for changes, so that a
/// node without an API server (a lab, an edge box, the demo, the tests) works like one with it.
///
/// Every read takes the whole folder: all `*.yaml`, `*.yml` and `*.json` files, in subfolders too,
/// skipping names that start with a dot (editor and temp files, and the `..data` folders of a
/// ConfigMap volume, whose files are reached through their symlinks). Files are decoded by
/// ``ManifestDecoder`` in path order, including overlay files (`*.keel-overlay.yaml`).
///
/// Each read ends with ``ClusterStore/replaceAll(_:with:)`` for every kind this source both serves
/// (`kinds`) and can decode (``ManifestDecoder/supportedKinds``), so removed files and objects are
/// deleted from the store. A malformed object is logged and skipped; everything else is kept.
/// Writers should replace files atomically (write a temp file, then rename it over the old one):
/// a half-written file read in between would drop its objects until the next event.
public final class ManifestDirectorySource: ClusterSource {
    public let directory: String
    public let kinds: Set<ObjectKind>
    /// How long to wait after a change before re-reading, so a burst of writes is read once.
    public let debounce: Duration
    private let logger: Logger
    /// The problems of the last read: a problem that persists across reads is logged once.
    private let lastProblems = Mutex<Set<ManifestProblem>>([])

    public init(directory: String, logger: Logger, kinds: Set<ObjectKind> = Set(ObjectKind.allCases),
                debounce: Duration = .milliseconds(100)) {
        self.directory = directory
        self.logger = logger
        self.kinds = kinds
        self.debounce = debounce
    }

    /// The kinds this source lists into the store.
    public var listedKinds: [ObjectKind] {
        ObjectKind.allCases.filter { kinds.contains($0) && ManifestDecoder.supportedKinds.contains($0) }
    }

    /// One full read of the folder, problems logged (at `.warning`) and returned.
    ///
    /// If the folder itself cannot be read, the store is left as it was: an unmounted volume must not
    /// look like a cluster without nodes.
    @discardableResult
    public func loadOnce(into store: ClusterStore) -> [ManifestProblem] {
        load(into: store, watcher: nil)
    }

    /// ``loadOnce(into:)``, then re-reads after every change inotify reports, until cancelled.
    /// Throws if the folder cannot be watched.
    public func run(into store: ClusterStore) async throws {
        let watcher = try DirectoryWatcher()
        try watcher.watch(directory)
        let changes = watcher.changes()
        load(into: store, watcher: watcher)
        await withTaskCancellationHandler {
            for await _ in changes {
                do {
                    try await Task.sleep(for: debounce)
                } catch {
                    break   // cancelled while debouncing
                }
                watcher.acknowledge()
                load(into: store, watcher: watcher)
            }
        } onCancel: {
            watcher.stop()
        }
        watcher.stop()
    }

    @discardableResult
    private func load(into store: ClusterStore, watcher: DirectoryWatcher?) -> [ManifestProblem] {
        let read = readFolder(watcher: watcher)
        if let failure = read.folderError {
            logger.error("cannot read manifest folder; keeping the last state",
                         metadata: ["manifest.directory": "\(directory)", "error": "\(failure)"])
            let problem = ManifestProblem(file: directory, objectName: nil, kind: nil, field: "",
                                          reason: "cannot read folder: \(failure)")
            return [problem]
        }
        let decoded = ManifestDecoder.decode(files: read.files, kinds: kinds)
        let problems = read.problems + decoded.problems
        let previous = lastProblems.withLock { last in
            defer { last = Set(problems) }
            return last
        }
        for problem in problems where !previous.contains(problem) { logger.log(problem) }

        for kind in listedKinds {
            store.replaceAll(kind, with: decoded.objects.filter { $0.kind == kind })
        }
        logger.debug("read manifest folder", metadata: [
            "manifest.directory": "\(directory)", "manifest.files": "\(read.files.count)",
            "manifest.objects": "\(decoded.objects.count)", "manifest.problems": "\(problems.count)",
        ])
        return problems
    }

    private struct FolderRead {
        var files: [(name: String, text: String)] = []
        var problems: [ManifestProblem] = []
        var folderError: (any Error)?
    }

    /// Reads every manifest file under `directory`. Each folder is watched before it is listed, so a
    /// file created in a new subfolder is either listed now or reported by inotify.
    private func readFolder(watcher: DirectoryWatcher?) -> FolderRead {
        var result = FolderRead()
        let fm = FileManager.default
        // Bounds the walk through symlinked folders that point back up.
        let maxDepth = 16

        func walk(_ relative: String, depth: Int) throws {
            let path = relative.isEmpty ? directory : directory + "/" + relative
            if !relative.isEmpty, let watcher {
                do { try watcher.watch(path) } catch {
                    logger.warning("cannot watch manifest subfolder", metadata: ["manifest.file": "\(relative)", "error": "\(error)"])
                }
            }
            for name in try fm.contentsOfDirectory(atPath: path).sorted() where !name.hasPrefix(".") {
                let child = relative.isEmpty ? name : relative + "/" + name
                var isFolder: ObjCBool = false
                guard fm.fileExists(atPath: directory + "/" + child, isDirectory: &isFolder) else { continue } // dangling symlink
                if isFolder.boolValue {
                    guard depth < maxDepth else { continue }
                    do { try walk(child, depth: depth + 1) } catch {
                        result.problems.append(ManifestProblem(file: child, objectName: nil, kind: nil, field: "",
                                                               reason: "cannot read folder: \(error)"))
                    }
                } else if ManifestDecoder.isManifestFile(name) {
                    do {
                        let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + child))
                        guard let text = String(data: data, encoding: .utf8) else {
                            result.problems.append(ManifestProblem(file: child, objectName: nil, kind: nil, field: "",
                                                                   reason: "not UTF-8 text"))
                            continue
                        }
                        result.files.append((child, text))
                    } catch CocoaError.fileReadNoSuchFile {
                        continue   // removed since the listing: the next event re-reads
                    } catch {
                        result.problems.append(ManifestProblem(file: child, objectName: nil, kind: nil, field: "",
                                                               reason: "cannot read file: \(error)"))
                    }
                }
            }
        }

        do { try walk("", depth: 0) } catch { result.folderError = error }
        return result
    }
}
