import Foundation

/// One line of a watch stream: `{"type":"ADDED","object":{...}}`.
///
/// The object's own bytes are kept, not a parsed tree: ``ManifestDecoder`` decodes them with the same
/// validation as a manifest file, and only `metadata` (and a Status' fields for ERROR) is read here.
/// It lives in `Cluster`, not in `KubeAPI`, so that it can be fuzzed and tested without NIO and HTTP.
public struct WatchEvent: Sendable {
    public enum EventType: String, Sendable {
        case added = "ADDED", modified = "MODIFIED", deleted = "DELETED", bookmark = "BOOKMARK", error = "ERROR"
    }
    public var type: String
    public var object: ArraySlice<UInt8>
    public var head: ObjectHead

    /// The parts of any object (or of a Status) that the reflector reads itself.
    public struct ObjectHead: Decodable, Sendable {
        public struct Metadata: Decodable, Sendable {
            public var name: String?
            public var namespace: String?
            public var resourceVersion: String?
        }
        public var metadata: Metadata?
        public var code: Int?
        public var reason: String?
        public var message: String?

        public init() {}

        /// Reads a Status or an object's head from bytes nested no deeper than `limits` allow, else nil.
        public init?<Bytes: Collection<UInt8>>(json bytes: Bytes, limits: ManifestLimits = .default) {
            guard limits.jsonProblem(bytes) == nil, let head = try? JSONDecoder().decode(Self.self, from: Data(bytes)) else {
                return nil
            }
            self = head
        }
    }
    private struct Envelope: Decodable {
        var type: String
        var object: ObjectHead
    }

    /// Nil for a line that is not a watch event.
    ///
    /// A line nested deeper than `limits.maxDepth` is never given to the JSON decoder whole: its type
    /// and the object's `metadata` are read on their own (each within the limit), and the object's
    /// bytes are kept, so that ``ManifestDecoder/decodeJSON(_:origin:impliedKind:limits:)`` reports
    /// it as a skipped object with its name.
    public init?(line: ArraySlice<UInt8>, limits: ManifestLimits = .default) {
        guard let object = JSONSpan.topLevelValue("object", in: line) else { return nil }
        if !JSONSpan.depth(of: line, exceeds: limits.maxDepth) {
            guard let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(line)) else { return nil }
            type = envelope.type
            head = envelope.object
        } else {
            guard let typeSpan = JSONSpan.topLevelValue("type", in: line), limits.jsonProblem(typeSpan) == nil,
                  let type = try? JSONDecoder().decode(String.self, from: Data(typeSpan)) else { return nil }
            self.type = type
            head = ObjectHead()
            // Only the object's metadata is decoded, and only if it is itself within the limits.
            if let span = JSONSpan.topLevelValue("metadata", in: object), limits.jsonProblem(span) == nil {
                head.metadata = try? JSONDecoder().decode(ObjectHead.Metadata.self, from: Data(span))
            }
        }
        self.object = object
    }
}

/// Reads JSON bytes without building a tree and without recursion: finds the bytes of one member
/// of an object, the elements of an array, or whether nesting goes deeper than a limit.
public enum JSONSpan {
    /// The bytes of the value of `key` in the top-level object of `bytes`, or nil.
    public static func topLevelValue<Bytes: RandomAccessCollection<UInt8>>(_ key: String, in bytes: Bytes) -> Bytes.SubSequence?
        where Bytes.Index == Int {
        var scanner = Scanner(bytes: bytes)
        scanner.skipSpace()
        guard scanner.take(UInt8(ascii: "{")) else { return nil }
        while true {
            scanner.skipSpace()
            guard scanner.peek == UInt8(ascii: "\"") else { return nil }
            let keyStart = scanner.i + 1
            guard scanner.skipString() else { return nil }
            let name = bytes[keyStart..<(scanner.i - 1)]
            scanner.skipSpace()
            guard scanner.take(UInt8(ascii: ":")) else { return nil }
            scanner.skipSpace()
            let valueStart = scanner.i
            guard scanner.skipValue() else { return nil }
            if name.elementsEqual(key.utf8) { return bytes[valueStart..<scanner.i] }
            scanner.skipSpace()
            guard scanner.take(UInt8(ascii: ",")) else { return nil }
        }
    }

    /// The bytes of each element of the array `bytes`, or nil if `bytes` is not one array.
    public static func arrayElements<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes) -> [Bytes.SubSequence]?
        where Bytes.Index == Int {
        var scanner = Scanner(bytes: bytes)
        var elements: [Bytes.SubSequence] = []
        scanner.skipSpace()
        guard scanner.take(UInt8(ascii: "[")) else { return nil }
        scanner.skipSpace()
        if scanner.take(UInt8(ascii: "]")) { return elements }
        while true {
            scanner.skipSpace()
            let start = scanner.i
            guard scanner.skipValue() else { return nil }
            elements.append(bytes[start..<scanner.i])
            scanner.skipSpace()
            if scanner.take(UInt8(ascii: "]")) { return elements }
            guard scanner.take(UInt8(ascii: ",")) else { return nil }
        }
    }

    /// True if arrays and objects in `bytes` nest more than `limit` levels deep (brackets inside
    /// strings do not count).
    public static func depth<Bytes: Collection<UInt8>>(of bytes: Bytes, exceeds limit: Int) -> Bool {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > limit { return true }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return false
    }

    private struct Scanner<Bytes: RandomAccessCollection<UInt8>> where Bytes.Index == Int {
        let bytes: Bytes
        var i: Int

        init(bytes: Bytes) {
            self.bytes = bytes
            i = bytes.startIndex
        }

        var peek: UInt8? { i < bytes.endIndex ? bytes[i] : nil }

        mutating func take(_ byte: UInt8) -> Bool {
            guard peek == byte else { return false }
            i += 1
            return true
        }

        mutating func skipSpace() { while let b = peek, [0x20, 0x09, 0x0A, 0x0D].contains(b) { i += 1 } }

        /// At the opening quote: moves past the closing one.
        mutating func skipString() -> Bool {
            i += 1
            while i < bytes.endIndex {
                switch bytes[i] {
                case UInt8(ascii: "\\"): i += 2
                case UInt8(ascii: "\""): i += 1; return true
                default: i += 1
                }
            }
            return false
        }

        /// Moves past one value; a nested value is skipped by counting brackets, not by recursion.
        mutating func skipValue() -> Bool {
            guard let first = peek else { return false }
            switch first {
            case UInt8(ascii: "\""): return skipString()
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while i < bytes.endIndex {
                    switch bytes[i] {
                    case UInt8(ascii: "\""): if !skipString() { return false }; continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 { i += 1; return true }
                    default: break
                    }
                    i += 1
                }
                return false
            default:
                while let b = peek, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D].contains(b) { i += 1 }
                return true
            }
        }
    }
}
