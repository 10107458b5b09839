import Foundation
import Logging
import Synchronization

/// The cluster state from a folder of standard Kubernetes manifests, watched for changes, so that a
/// node without an API server (a lab, an edge box, the demo, the tests) works like one with it.
///
/// The folder holds all `*.yaml`, `*.yml` and `*.json` files, in subfolders too, skipping names that
/// start with a dot (editor and temp files, and the `..data` folders of a ConfigMap volume, whose
/// files are reached through their symlinks). Files are decoded by ``ManifestDecoder`` in path order,
/// including overlay files (`*.keel-overlay.yaml`).
///
/// Each read lists the folder and `stat`s every file, but reads and decodes only the files whose
/// identity, size or times changed; the decoded objects of the others are kept per file, indexed by
/// key. The first read lists every kind this source both serves (`kinds`) and can decode
/// (``ManifestDecoder/supportedKinds``) with ``ClusterStore/replaceAll(_:with:)``. After that, only the
/// keys a changed file held (before or after) are resolved again from the files that hold them (first
/// in file-name order wins, later ones are duplicates, overlays merged), and upserted or deleted: the
/// work of a change follows the change, not the folder. Nodes, which are validated against each
/// other, are listed again whenever one changes.
///
/// - A malformed object is logged and skipped; everything else is kept.
/// - A file that cannot be parsed (a YAML syntax error in any document, a file half written, one over
///   ``ManifestLimits``) or cannot be read keeps the objects of its last good read until it parses again
///   or is removed, and its problem is logged: `kubectl apply` changes nothing for a file it cannot parse,
///   and kubelet's static-pod source keeps the pod when a watched manifest is modified into one that
///   does not parse (its periodic re-list drops it; here it stays until the file parses or goes). Writers should still replace files atomically (write a temp file, then rename
///   it over the old one): a half-written file that happens to parse would drop its missing objects until
///   it is complete.
/// - A FIFO, socket or device is skipped with a problem saying so; it is never opened.
/// - A symlinked folder that leads back to a folder already being read (a loop) is one problem.
public final class ManifestDirectorySource: ClusterSource {
    public let directory: String
    public let kinds: Set<ObjectKind>
    /// How long to wait after a change before re-reading, so a burst of writes is read once.
    public let debounce: Duration
    public let limits: ManifestLimits
    private let logger: Logger
    /// What earlier reads found; one read at a time.
    private let state = Mutex(ReadState())

    public init(directory: String, logger: Logger, kinds: Set<ObjectKind> = Set(ObjectKind.allCases),
                debounce: Duration = .milliseconds(100), limits: ManifestLimits = .default) {
        self.directory = directory
        self.logger = logger
        self.kinds = kinds
        self.debounce = debounce
        self.limits = limits
    }

    /// The kinds this source lists into the store.
    public var listedKinds: [ObjectKind] {
        ObjectKind.allCases.filter { kinds.contains($0) && ManifestDecoder.supportedKinds.contains($0) }
    }

    /// One read of the folder (of the files changed since the last read), problems logged
    /// (at `.warning`, once while they persist) and all current problems returned.
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

    /// What a file was when it was last read: a change to any of these means "read it again". The
    /// inode catches a rename over it (and a ConfigMap's symlink swap), size and times an edit in place.
    private struct FileSignature: Equatable {
        var device: UInt64, inode: UInt64, size: Int64
        var modified: [Int], changed: [Int]   // seconds, nanoseconds

        init(_ s: stat) {
            device = UInt64(s.st_dev)
            inode = UInt64(s.st_ino)
            size = Int64(s.st_size)
            modified = [s.st_mtim.tv_sec, s.st_mtim.tv_nsec]
            changed = [s.st_ctim.tv_sec, s.st_ctim.tv_nsec]
        }
    }

    private struct FileEntry {
        var signature: FileSignature
        /// What this file contributes now: its last good decode, with the problems of the latest read.
        var decoded: ManifestDecoder.DecodedFile
        /// The last read that parsed completely, kept while later reads fail.
        var lastGood: ManifestDecoder.DecodedFile?
        /// `decoded`'s objects and overlays by key, in document order.
        var objects: [ObjectKey: [ClusterObject]] = [:]
        var overlays: [ObjectKey: [MetadataOverlay]] = [:]

        init(signature: FileSignature, decoded: ManifestDecoder.DecodedFile, lastGood: ManifestDecoder.DecodedFile?) {
            self.signature = signature
            self.decoded = decoded
            self.lastGood = lastGood
            for object in decoded.objects { objects[object.key, default: []].append(object) }
            for overlay in decoded.overlays { overlays[overlay.key, default: []].append(overlay) }
        }

        var keys: Set<ObjectKey> { Set(objects.keys).union(overlays.keys) }
    }

    private struct ReadState {
        var files: [String: FileEntry] = [:]
        /// The files holding an object or overlay of each key: what one key's object is resolved from.
        var holders: [ObjectKey: Set<String>] = [:]
        /// Duplicate-key problems, by key; and the Nodes' cross-object problems (overlapping pod CIDRs).
        var keyProblems: [ObjectKey: [ManifestProblem]] = [:]
        var nodeProblems: [ManifestProblem] = []
        /// The problems of the last read: a problem that persists across reads is logged once.
        var lastProblems: Set<ManifestProblem> = []
        var listedOnce = false
    }

    @discardableResult
    private func load(into store: ClusterStore, watcher: DirectoryWatcher?) -> [ManifestProblem] {
        state.withLock { state in
            let walk = walkFolder(watcher: watcher)
            if let failure = walk.folderError {
                logger.error("cannot read manifest folder; keeping the last state",
                             metadata: ["manifest.directory": "\(directory)", "error": "\(failure)"])
                return [ManifestProblem(file: directory, objectName: nil, kind: nil, field: "", reason: "cannot read folder: \(failure)")]
            }

            // Read what changed, and note the keys that changed files held before or hold now.
            var touched = Set<ObjectKey>()
            var files: [String: FileEntry] = [:]
            var readCount = 0
            func replace(_ name: String, _ old: FileEntry?, with new: FileEntry?) {
                for key in old?.keys ?? [] {
                    touched.insert(key)
                    state.holders[key]?.remove(name)
                    if state.holders[key]?.isEmpty == true { state.holders[key] = nil }
                }
                for key in new?.keys ?? [] {
                    touched.insert(key)
                    state.holders[key, default: []].insert(name)
                }
            }
            for (name, signature) in walk.files {
                let old = state.files[name]
                if let old, old.signature == signature {
                    files[name] = old
                    continue
                }
                readCount += 1
                let entry = readFile(name, signature: signature, previous: old)   // nil: gone since the listing
                replace(name, old, with: entry)
                files[name] = entry
            }
            for (name, old) in state.files where files[name] == nil { replace(name, old, with: nil) }
            state.files = files

            let listed = Set(listedKinds)
            if !state.listedOnce {
                touched = Set(state.holders.keys)
            }
            touched = touched.filter { listed.contains($0.kind) }

            // Nodes are checked against each other (overlapping pod CIDRs): all of them, when one changed.
            if listed.contains(.node), !state.listedOnce || touched.contains(where: { $0.kind == .node }) {
                let parts = files.keys.sorted().map { files[$0]!.decoded }
                let nodes = ManifestDecoder.combine(parts, kinds: [.node])
                let own = Set(parts.flatMap(\.problems))
                state.nodeProblems = nodes.problems.filter { !own.contains($0) }
                store.replaceAll(.node, with: nodes.objects)
            }
            // Every other kind: each changed key resolved from the files that hold it, as combine would.
            var resolved: [ObjectKind: [ClusterObject]] = [:]
            for key in touched where key.kind != .node {
                let (object, problems) = resolve(key, state: state)
                state.keyProblems[key] = problems.isEmpty ? nil : problems
                if !state.listedOnce {
                    if let object { resolved[key.kind, default: []].append(object) }
                } else if let object {
                    store.upsert(object)
                } else {
                    store.delete(key)
                }
            }
            if !state.listedOnce {
                for kind in listedKinds where kind != .node { store.replaceAll(kind, with: resolved[kind] ?? []) }
                state.listedOnce = true
            }

            var problems = walk.problems
            for name in files.keys.sorted() {
                problems += files[name]!.decoded.problems.filter { p in p.kind.flatMap(ObjectKind.init(rawValue:)).map(kinds.contains) ?? true }
            }
            problems += state.nodeProblems
            problems += state.keyProblems.values.joined().sorted { ($0.file, $0.description) < ($1.file, $1.description) }
            let previous = state.lastProblems
            state.lastProblems = Set(problems)
            for problem in problems where !previous.contains(problem) { logger.log(problem) }
            logger.debug("read manifest folder", metadata: [
                "manifest.directory": "\(directory)", "manifest.files": "\(files.count)", "manifest.filesRead": "\(readCount)",
                "manifest.keysChanged": "\(touched.count)", "manifest.problems": "\(problems.count)",
            ])
            return problems
        }
    }

    /// The object of `key`: the first in file-name, then document order, with the overlays of every
    /// file merged in that order; later objects with the key are duplicate problems.
    private func resolve(_ key: ObjectKey, state: ReadState) -> (ClusterObject?, [ManifestProblem]) {
        var winner: (object: ClusterObject, file: String)?
        var problems: [ManifestProblem] = []
        var overlays: [MetadataOverlay] = []
        for name in (state.holders[key] ?? []).sorted() {
            guard let entry = state.files[name] else { continue }
            for object in entry.objects[key] ?? [] {
                if let winner {
                    problems.append(ManifestDecoder.duplicateProblem(object, file: name, firstFile: winner.file))
                } else {
                    winner = (object, name)
                }
            }
            overlays += entry.overlays[key] ?? []
        }
        guard var object = winner?.object else { return (nil, problems) }
        for overlay in overlays { ManifestDecoder.merge(overlay, into: &object) }
        return (object, problems)
    }

    /// Reads and decodes one file; nil if it is gone. A file that does not parse (or cannot be read)
    /// keeps `previous`'s last good objects, with the new problems.
    private func readFile(_ name: String, signature: FileSignature, previous: FileEntry?) -> FileEntry? {
        var decoded: ManifestDecoder.DecodedFile
        var readSignature = signature
        switch readText(directory + "/" + name) {
        case .gone:
            return nil
        case .text(let text, let s):
            readSignature = s
            decoded = ManifestDecoder.decodeFile(text, file: name, limits: limits)
        case .failed(let reason):
            decoded = ManifestDecoder.DecodedFile(file: name)
            decoded.problems = [ManifestProblem(file: name, objectName: nil, kind: nil, field: "", reason: reason)]
            decoded.parseFailure = reason
        }
        guard decoded.parseFailure != nil else {
            return FileEntry(signature: readSignature, decoded: decoded, lastGood: decoded)
        }
        guard let lastGood = previous?.lastGood else {
            return FileEntry(signature: readSignature, decoded: decoded, lastGood: nil)
        }
        var kept = lastGood
        kept.problems = decoded.problems + [ManifestProblem(file: name, objectName: nil, kind: nil, field: "",
            reason: "keeping the \(lastGood.objectCount) objects of its last good read until it parses again")]
        kept.parseFailure = decoded.parseFailure
        return FileEntry(signature: readSignature, decoded: kept, lastGood: lastGood)
    }

    private enum ReadResult {
        case text(String, FileSignature)
        case gone
        case failed(String)
    }

    /// The text of a regular file of at most `limits.maxBytes`, with the signature of what was read.
    private func readText(_ path: String) -> ReadResult {
        // O_NONBLOCK: if a FIFO took the file's place since the listing, open does not wait for a writer.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            return e == ENOENT ? .gone : .failed("cannot read file: \(String(cString: strerror(e)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .failed("cannot read file: \(String(cString: strerror(errno)))") }
        guard info.st_mode & S_IFMT == S_IFREG else { return .failed("not a regular file: skipped") }
        if let problem = limits.sizeProblem(Int(info.st_size)) { return .failed("file is \(problem)") }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size) + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { return .failed("cannot read file: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            count += n
            // Grown since fstat: read on, up to the limit.
            if count == bytes.count {
                guard count <= limits.maxBytes else { return .failed("file is larger than the limit of \(limits.maxBytes) bytes") }
                bytes += [UInt8](repeating: 0, count: min(bytes.count, limits.maxBytes + 1 - count))
            }
        }
        guard let text = String(validating: bytes[..<count], as: UTF8.self) else { return .failed("not UTF-8 text") }
        return .text(text, FileSignature(info))
    }

    private struct FolderWalk {
        /// Regular manifest files (relative path, signature), in path order.
        var files: [(name: String, signature: FileSignature)] = []
        var problems: [ManifestProblem] = []
        var folderError: (any Error)?
    }

    /// Lists every manifest file under `directory` and `stat`s it (following symlinks). Each folder is
    /// watched before it is listed, so a file created in a new subfolder is either listed now or
    /// reported by inotify.
    private func walkFolder(watcher: DirectoryWatcher?) -> FolderWalk {
        var result = FolderWalk()
        let fm = FileManager.default
        // Bounds the walk however the folders are linked; loops are caught by the folder identities.
        let maxDepth = 16
        var folders: [String: String] = [:]   // "device:inode" of each folder read -> its path

        func problem(_ file: String, _ reason: String) {
            result.problems.append(ManifestProblem(file: file, objectName: nil, kind: nil, field: "", reason: reason))
        }
        func walk(_ relative: String, depth: Int) throws {
            let path = relative.isEmpty ? directory : directory + "/" + relative
            if !relative.isEmpty, let watcher {
                do { try watcher.watch(path) } catch {
                    logger.warning("cannot watch manifest subfolder", metadata: ["manifest.file": "\(relative)", "error": "\(error)"])
                }
            }
            for name in try fm.contentsOfDirectory(atPath: path).sorted() where !name.hasPrefix(".") {
                let child = relative.isEmpty ? name : relative + "/" + name
                var info = stat()
                guard stat(directory + "/" + child, &info) == 0 else {
                    switch errno {
                    case ELOOP: problem(child, "symlink loop: skipped")
                    case ENOENT: break   // a dangling symlink, or removed since the listing
                    default: if ManifestDecoder.isManifestFile(name) { problem(child, "cannot read file: \(String(cString: strerror(errno)))") }
                    }
                    continue
                }
                switch info.st_mode & S_IFMT {
                case S_IFDIR:
                    let id = "\(info.st_dev):\(info.st_ino)"
                    if let first = folders[id] {
                        problem(child, "symlink loop (or a second link to one folder): the same folder as \(first.isEmpty ? "the manifest folder" : first), skipped")
                        continue
                    }
                    guard depth < maxDepth else { problem(child, "folder nested deeper than \(maxDepth) levels: skipped"); continue }
                    folders[id] = child
                    do { try walk(child, depth: depth + 1) } catch {
                        problem(child, "cannot read folder: \(error)")
                    }
                case S_IFREG:
                    if ManifestDecoder.isManifestFile(name) { result.files.append((child, FileSignature(info))) }
                default:
                    if ManifestDecoder.isManifestFile(name) { problem(child, "not a regular file (\(Self.fileType(info.st_mode))): skipped") }
                }
            }
        }

        var top = stat()
        if stat(directory, &top) == 0 { folders["\(top.st_dev):\(top.st_ino)"] = "" }
        do { try walk("", depth: 0) } catch { result.folderError = error }
        return result
    }

    private static func fileType(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        default: "mode \(String(mode, radix: 8))"
        }
    }
}
