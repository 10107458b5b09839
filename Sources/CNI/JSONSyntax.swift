/// Checks that bytes are one JSON value (RFC 8259) within Keel's bounds before a decoder sees them,
/// without recursion, so that a config nested thousands of levels deep is an error and not a stack
/// overflow, and a syntax error names its line and column. Decoding proper stays with JSONDecoder.
public enum JSONSyntax {
    /// Containers (objects and arrays) nested deeper than this are refused. A conflist with a
    /// prevResult and runtimeConfig annotations needs about ten.
    public static let maximumDepth = 128
    /// Bigger input is refused before it is parsed. A config carries pod annotations at most
    /// (Kubernetes caps those at 256 KiB); GC's valid-attachments list is ~100 bytes per pod.
    public static let maximumSize = 4 << 20

    /// Throws `JSONSyntaxError` (which `CNIError(mapping:)` turns into code 6) for the first problem.
    public static func check(_ bytes: some Collection<UInt8>) throws(JSONSyntaxError) {
        guard bytes.count <= maximumSize else {
            throw JSONSyntaxError(what: "input is \(bytes.count) bytes, more than the limit of \(maximumSize)", line: nil, column: nil)
        }
        guard !bytes.isEmpty else { throw JSONSyntaxError(what: "empty input, expected a JSON object", line: nil, column: nil) }
        var scanner = Scanner(Array(bytes))
        try scanner.run()
    }

    private struct Scanner {
        let bytes: [UInt8]
        var i = 0
        var line = 1
        var lineStart = 0
        /// `{` or `[` for each open container.
        var open: [UInt8] = []

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        enum Expect { case value, valueOrClose, key, keyOrClose, colon, commaOrClose, end }

        mutating func run() throws(JSONSyntaxError) {
            var expect = Expect.value
            while true {
                skipWhitespace()
                guard i < bytes.count else {
                    if expect == .end { return }
                    throw failure("unexpected end of input, \(describe(expect))")
                }
                let c = bytes[i]
                switch expect {
                case .value, .valueOrClose:
                    if c == UInt8(ascii: "]"), expect == .valueOrClose { close(); expect = afterValue(); continue }
                    switch c {
                    case UInt8(ascii: "{"), UInt8(ascii: "["):
                        guard open.count < maximumDepth else { throw failure("nested more than \(maximumDepth) levels deep") }
                        open.append(c)
                        i += 1
                        expect = c == UInt8(ascii: "{") ? .keyOrClose : .valueOrClose
                    case UInt8(ascii: "\""): try string(); expect = afterValue()
                    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number(); expect = afterValue()
                    case UInt8(ascii: "t"): try literal("true"); expect = afterValue()
                    case UInt8(ascii: "f"): try literal("false"); expect = afterValue()
                    case UInt8(ascii: "n"): try literal("null"); expect = afterValue()
                    default: throw unexpected(describe(expect))
                    }
                case .key, .keyOrClose:
                    if c == UInt8(ascii: "}"), expect == .keyOrClose { close(); expect = afterValue(); continue }
                    guard c == UInt8(ascii: "\"") else { throw unexpected(describe(expect)) }
                    try string()
                    expect = .colon
                case .colon:
                    guard c == UInt8(ascii: ":") else { throw unexpected(describe(expect)) }
                    i += 1
                    expect = .value
                case .commaOrClose:
                    let object = open.last == UInt8(ascii: "{")
                    if c == UInt8(ascii: ",") {
                        i += 1
                        expect = object ? .key : .value
                    } else if c == (object ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                        close()
                        expect = afterValue()
                    } else {
                        throw unexpected(describe(expect))
                    }
                case .end:
                    throw unexpected("expected nothing after the end of the JSON value")
                }
            }
        }

        func afterValue() -> Expect { open.isEmpty ? .end : .commaOrClose }
        mutating func close() { open.removeLast(); i += 1 }

        func describe(_ expect: Expect) -> String {
            switch expect {
            case .value: "expected a value"
            case .valueOrClose: "expected a value or ']'"
            case .key: "expected a key (a string in double quotes)"
            case .keyOrClose: "expected a key (a string in double quotes) or '}'"
            case .colon: "expected ':' after the key"
            case .commaOrClose: open.last == UInt8(ascii: "{") ? "expected ',' or '}'" : "expected ',' or ']'"
            case .end: "expected the end of input"
            }
        }

        mutating func skipWhitespace() {
            while i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"): i += 1
                case UInt8(ascii: "\n"): i += 1; line += 1; lineStart = i
                default: return
                }
            }
        }

        mutating func string() throws(JSONSyntaxError) {
            let start = i
            i += 1
            while i < bytes.count {
                let c = bytes[i]
                switch c {
                case UInt8(ascii: "\""): i += 1; return
                case UInt8(ascii: "\\"):
                    guard i + 1 < bytes.count else { i = bytes.count; continue }   // unterminated, below
                    switch bytes[i + 1] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                         UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        i += 2
                    case UInt8(ascii: "u"):
                        guard i + 6 <= bytes.count, bytes[(i + 2)..<(i + 6)].allSatisfy(Self.isHexDigit) else {
                            throw failure("invalid \\u escape in a string (four hex digits expected)")
                        }
                        i += 6
                    default:
                        i += 1
                        throw unexpected("invalid escape in a string")
                    }
                case 0..<0x20: throw unexpected("control character in a string (escape it)")
                case 0x80...: try utf8Sequence()
                default: i += 1
                }
            }
            i = start
            throw failure("unterminated string")
        }

        /// One multi-byte UTF-8 sequence starting at `i` (RFC 3629: no overlong forms, no surrogates,
        /// nothing above U+10FFFF), so that invalid text is reported where it is.
        mutating func utf8Sequence() throws(JSONSyntaxError) {
            let lead = bytes[i]
            let (count, second): (Int, ClosedRange<UInt8>)
            switch lead {
            case 0xC2...0xDF: (count, second) = (2, 0x80...0xBF)
            case 0xE0: (count, second) = (3, 0xA0...0xBF)
            case 0xED: (count, second) = (3, 0x80...0x9F)
            case 0xE1...0xEF: (count, second) = (3, 0x80...0xBF)
            case 0xF0: (count, second) = (4, 0x90...0xBF)
            case 0xF1...0xF3: (count, second) = (4, 0x80...0xBF)
            case 0xF4: (count, second) = (4, 0x80...0x8F)
            default: throw unexpected("invalid UTF-8 in a string")
            }
            for k in 1..<count {
                guard i + k < bytes.count, k == 1 ? second.contains(bytes[i + k]) : (0x80...0xBF).contains(bytes[i + k]) else {
                    throw unexpected("invalid UTF-8 in a string")
                }
            }
            i += count
        }

        mutating func number() throws(JSONSyntaxError) {
            func digits() -> Int {
                let from = i
                while i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) { i += 1 }
                return i - from
            }
            if bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) else {
                throw i < bytes.count ? unexpected("expected a digit in a number") : failure("unexpected end of input in a number")
            }
            if bytes[i] == UInt8(ascii: "0") { i += 1 } else { _ = digits() }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits() > 0 else { throw i < bytes.count ? unexpected("expected a digit after '.'") : failure("unexpected end of input in a number") }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { throw i < bytes.count ? unexpected("expected a digit in the exponent") : failure("unexpected end of input in a number") }
            }
        }

        mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
            let expected = word.withUTF8Buffer { Array($0) }
            for b in expected {
                guard i < bytes.count, bytes[i] == b else {
                    throw i < bytes.count ? unexpected("expected \(word)") : failure("unexpected end of input in \(word)")
                }
                i += 1
            }
        }

        static func isHexDigit(_ b: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(b)
                || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(b)
        }

        func failure(_ what: String) -> JSONSyntaxError {
            JSONSyntaxError(what: what, line: line, column: i - lineStart + 1)
        }

        /// The byte at the current position and what was expected instead.
        func unexpected(_ expected: String) -> JSONSyntaxError {
            let b = bytes[i]
            let shown = b >= 0x20 && b < 0x7f ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x\(String(b, radix: 16, uppercase: true))"
            return failure("unexpected \(shown), \(expected)")
        }
    }
}

/// A JSON syntax error or an exceeded bound, with its 1-based line and (byte) column.
public struct JSONSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var what: String
    public var line: Int?
    public var column: Int?
    public var description: String {
        guard let line, let column else { return what }
        return "\(what) at line \(line), column \(column)"
    }
}
