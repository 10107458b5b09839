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
/// identity, size or times changed; the decoded objects of the others are kept per file and
/// recombined. Only the kinds that a changed file held (before or after) go through
/// ``ClusterStore/replaceAll(_:with:)``, for every kind this source both serves (`kinds`) and can
/// decode (``ManifestDecoder/supportedKinds``): removed files and objects are deleted from the store,
/// and a change to one kind does not make every controller recompute the others.
///
/// - A malformed object is logged and skipped; everything else is kept.
/// - A file that cannot be parsed (a YAML syntax error in any document, a file half written, one over
///   ``ManifestLimits``) or cannot be read keeps the objects of its last good read until it parses again
///   or is removed, as kubelet's static-pod file source keeps a pod whose manifest fails to parse. Its
///   problem is logged. Writers should still replace files atomically (write a temp file, then rename
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
    }

    private struct ReadState {
        var files: [String: FileEntry] = [:]
        /// Cross-file problems (duplicates, overlapping node CIDRs) of each kind, from its last recombination.
        var crossProblems: [ObjectKind: [ManifestProblem]] = [:]
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

            // Read what changed; note the kinds that changed files held before or hold now.
            var touched = Set<ObjectKind>()
            func note(_ part: ManifestDecoder.DecodedFile?) {
                guard let part else { return }
                for object in part.objects { touched.insert(object.kind) }
                for overlay in part.overlays { touched.insert(overlay.key.kind) }
            }
            var files: [String: FileEntry] = [:]
            var readCount = 0
            for (name, signature) in walk.files {
                let old = state.files[name]
                if let old, old.signature == signature {
                    files[name] = old
                    continue
                }
                readCount += 1
                guard let entry = readFile(name, signature: signature, previous: old) else { continue }   // gone since the listing
                note(old?.decoded)
                note(entry.decoded)
                files[name] = entry
            }
            for (name, old) in state.files where files[name] == nil { note(old.decoded) }
            state.files = files

            let recombine = state.listedOnce ? Set(listedKinds).intersection(touched) : Set(listedKinds)
            let parts = files.keys.sorted().map { files[$0]!.decoded }
            var fileProblems = walk.problems
            for part in parts { fileProblems += part.problems.filter { p in p.kind.flatMap(ObjectKind.init(rawValue:)).map(kinds.contains) ?? true } }
            if !recombine.isEmpty {
                let combined = ManifestDecoder.combine(parts, kinds: recombine)
                let own = Set(fileProblems)
                for kind in recombine { state.crossProblems[kind] = [] }
                for problem in combined.problems where !own.contains(problem) {
                    if let kind = problem.kind.flatMap(ObjectKind.init(rawValue:)) { state.crossProblems[kind, default: []].append(problem) }
                }
                var byKind: [ObjectKind: [ClusterObject]] = [:]
                for object in combined.objects { byKind[object.kind, default: []].append(object) }
                for kind in listedKinds where recombine.contains(kind) { store.replaceAll(kind, with: byKind[kind] ?? []) }
                state.listedOnce = true
            }

            let problems = fileProblems + listedKinds.flatMap { state.crossProblems[$0] ?? [] }
            let previous = state.lastProblems
            state.lastProblems = Set(problems)
            for problem in problems where !previous.contains(problem) { logger.log(problem) }
            logger.debug("read manifest folder", metadata: [
                "manifest.directory": "\(directory)", "manifest.files": "\(files.count)", "manifest.filesRead": "\(readCount)",
                "manifest.kindsListed": "\(recombine.map(\.rawValue).sorted())", "manifest.problems": "\(problems.count)",
            ])
            return problems
        }
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
