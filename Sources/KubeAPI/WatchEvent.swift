import Foundation

/// One line of a watch stream: `{"type":"ADDED","object":{...}}`.
///
/// The object's own bytes are kept, not a parsed tree: ``ManifestDecoder`` decodes them with the same
/// validation as a manifest file, and only `metadata` (and a Status' fields for ERROR) is read here.
struct WatchEvent {
    enum EventType: String { case added = "ADDED", modified = "MODIFIED", deleted = "DELETED", bookmark = "BOOKMARK", error = "ERROR" }
    var type: String
    var object: ArraySlice<UInt8>
    var head: ObjectHead

    /// The parts of any object (or of a Status) that the reflector reads itself.
    struct ObjectHead: Decodable {
        struct Metadata: Decodable {
            var name: String?
            var namespace: String?
            var resourceVersion: String?
        }
        var metadata: Metadata?
        var code: Int?
        var reason: String?
        var message: String?
    }
    private struct Envelope: Decodable {
        var type: String
        var object: ObjectHead
    }

    /// Nil for a line that is not a watch event.
    init?(line: ArraySlice<UInt8>) {
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(line)),
              let object = JSONSpan.topLevelValue("object", in: line) else { return nil }
        type = envelope.type
        head = envelope.object
        self.object = object
    }
}

/// Finds the bytes of one member of a JSON object without building a tree.
enum JSONSpan {
    static func topLevelValue<Bytes: RandomAccessCollection<UInt8>>(_ key: String, in bytes: Bytes) -> Bytes.SubSequence?
        where Bytes.Index == Int {
        var i = bytes.startIndex
        let end = bytes.endIndex
        func skipSpace() { while i < end, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 } }
        func skipString() -> Bool {   // at the opening quote
            i += 1
            while i < end {
                switch bytes[i] {
                case UInt8(ascii: "\\"): i += 2
                case UInt8(ascii: "\""): i += 1; return true
                default: i += 1
                }
            }
            return false
        }
        func skipValue() -> Bool {
            guard i < end else { return false }
            switch bytes[i] {
            case UInt8(ascii: "\""): return skipString()
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while i < end {
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
                while i < end, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
                return true
            }
        }
        skipSpace()
        guard i < end, bytes[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        while true {
            skipSpace()
            guard i < end, bytes[i] == UInt8(ascii: "\"") else { return nil }
            let keyStart = i + 1
            guard skipString() else { return nil }
            let name = bytes[keyStart..<(i - 1)]
            skipSpace()
            guard i < end, bytes[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            skipSpace()
            let valueStart = i
            guard skipValue() else { return nil }
            if name.elementsEqual(key.utf8) { return bytes[valueStart..<i] }
            skipSpace()
            guard i < end, bytes[i] == UInt8(ascii: ",") else { return nil }
            i += 1
        }
    }
}
