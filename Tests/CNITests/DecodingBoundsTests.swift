import CNI
import Foundation
import Testing

/// What the config decoders say about input that is not a config: where the syntax breaks, what
/// was expected, and no crash or megabyte-long message for input built to cause one.
struct DecodingBoundsTests {
    func decodeError(_ json: String) -> CNIError? {
        do {
            _ = try NetworkConfig.decode(bytes(json))
            return nil
        } catch {
            return error as? CNIError
        }
    }

    @Test(arguments: [
        ("", "empty input, expected a JSON object"),
        ("{\"name\": \"n\",\n \"type\": bridge}", "unexpected 'b', expected a value at line 2, column 10"),
        ("{\"name\": \"n\"\n \"type\": \"bridge\"}", "unexpected '\"', expected ',' or '}' at line 2, column 2"),
        ("{\"name\": \"n\", }", "unexpected '}', expected a key (a string in double quotes) at line 1, column 15"),
        ("{\"name\" \"n\"}", "unexpected '\"', expected ':' after the key at line 1, column 9"),
        ("{'name': 'n'}", "unexpected ''', expected a key (a string in double quotes) or '}' at line 1, column 2"),
        ("{\"name\": [1, 2}", "unexpected '}', expected ',' or ']' at line 1, column 15"),
        ("{\"name\": \"n", "unterminated string at line 1, column 10"),
        ("{\"name\": \"a\tb\"}", "unexpected byte 0x9, control character in a string (escape it) at line 1, column 12"),
        ("{\"name\": \"\\x\"}", "unexpected 'x', invalid escape in a string at line 1, column 12"),
        ("{\"name\": \"\\u12\"}", "invalid \\u escape in a string (four hex digits expected) at line 1, column 11"),
        ("{\"mtu\": 01}", "unexpected '1', expected ',' or '}' at line 1, column 10"),
        ("{\"mtu\": -}", "unexpected '}', expected a digit in a number at line 1, column 10"),
        ("{\"mtu\": 1.}", "unexpected '}', expected a digit after '.' at line 1, column 11"),
        ("{\"ok\": tru}", "unexpected '}', expected true at line 1, column 11"),
        ("{\"name\": \"n\"", "unexpected end of input, expected ',' or '}' at line 1, column 13"),
        ("{\"name\": \"n\"} {}", "unexpected '{', expected nothing after the end of the JSON value at line 1, column 15"),
        ("\n\n   {\"a\": [\n  nul", "unexpected end of input in null at line 4, column 6"),
    ])
    func syntaxErrorsSayWhereAndWhat(_ json: String, _ expected: String) throws {
        let error = try #require(decodeError(json))
        #expect(error.knownCode == .decodingFailure)
        #expect(error.msg == "error decoding network config: \(expected)")
    }

    /// Invalid UTF-8 inside a string, reported at its first byte (Foundation says only "not valid JSON").
    @Test(arguments: [
        ([0xC3, 0x28], 11),             // a lead byte without its continuation
        ([0xC0, 0xAF], 11),             // overlong "/"
        ([0xED, 0xA0, 0x80], 11),       // a UTF-16 surrogate
        ([0xF4, 0x90, 0x80, 0x80], 11), // above U+10FFFF
        ([0x61, 0x80], 12),             // a lone continuation byte
    ] as [([UInt8], Int)])
    func invalidUTF8SaysWhere(_ garbage: [UInt8], _ column: Int) throws {
        let json = bytes(#"{"name": ""#) + garbage + bytes(#""}"#)
        do {
            _ = try NetworkConfig.decode(json)
            Issue.record("decoded")
        } catch let error as CNIError {
            #expect(error.knownCode == .decodingFailure)
            #expect(error.msg.hasSuffix("invalid UTF-8 in a string at line 1, column \(column)"), "\(error)")
        }
        // What is valid passes: 2-, 3- and 4-byte sequences at their limits.
        try JSONSyntax.check(bytes(#"{"a": ""#) + [0xC2, 0x80, 0xDF, 0xBF, 0xE0, 0xA0, 0x80, 0xED, 0x9F, 0xBF, 0xF0, 0x90, 0x80, 0x80, 0xF4, 0x8F, 0xBF, 0xBF] + bytes(#""}"#))
    }

    /// The checker accepts what RFC 8259 allows, so a valid config never fails on it.
    @Test(arguments: [
        #"{"a": [1, -0, 0.5, -1.25e+10, 3E-2, 1e5, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9", {}, [], [[]]]}"#,
        " \t\r\n{}\n ",
        #"{"ü": "ä", "emoji": "😀"}"#,
    ])
    func validJSONPassesTheChecker(_ json: String) throws {
        try JSONSyntax.check(bytes(json))
        _ = try JSONSerialization.jsonObject(with: Data(json.utf8))   // the yardstick agrees it is JSON
    }

    @Test func deepNestingIsADecodingErrorNotACrash() throws {
        let depth = 5000
        let deep = "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"bridge\",\"x\":" + String(repeating: "[", count: depth)
            + String(repeating: "]", count: depth) + "}"
        let error = try #require(decodeError(deep))
        #expect(error.knownCode == .decodingFailure)
        #expect(error.msg == "error decoding network config: nested more than 128 levels deep at line 1, column 181")
        // Objects as well as arrays, and through every entry point that decodes a config.
        let objects = String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth)
        #expect(decodeError(objects)?.knownCode == .decodingFailure)
        #expect(performing: { try NetworkConfigList.decode(bytes(objects)) },
                throws: { ($0 as? CNIError)?.knownCode == .decodingFailure })
        #expect(performing: { try JSONValue(parsing: bytes(deep)) }, throws: { ($0 as? CNIError)?.knownCode == .decodingFailure })
        let request = CNIRequest(command: .add, containerID: "c", netns: "/x", ifName: "eth0", path: [],
                                 config: NetworkConfig(name: "n", type: "t"), rawConfig: bytes(deep))
        #expect(performing: { try request.decodeConfig(JSONValue.self) }, throws: { ($0 as? CNIError)?.knownCode == .decodingFailure })
    }

    @Test func nestingUpToTheBoundDecodes() throws {
        let depth = JSONSyntax.maximumDepth - 1   // the config object itself is one level
        let json = "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"bridge\",\"x\":" + String(repeating: "[", count: depth)
            + String(repeating: "]", count: depth) + "}"
        _ = try NetworkConfig.decode(bytes(json))
        let oneDeeper = json.replacingOccurrences(of: "\"x\":[", with: "\"x\":[[").replacingOccurrences(of: "]}", with: "]]}")
        _ = try JSONSerialization.jsonObject(with: Data(oneDeeper.utf8))   // still valid JSON, only deeper
        #expect(decodeError(oneDeeper)?.msg.contains("nested more than 128 levels deep") == true)
    }

    @Test func oversizedInputIsRefusedBeforeParsing() throws {
        let padding = String(repeating: " ", count: JSONSyntax.maximumSize)
        let error = try #require(decodeError("{\"name\":\"n\",\"type\":\"t\"}" + padding))
        #expect(error.knownCode == .decodingFailure)
        #expect(error.msg.contains("more than the limit of \(JSONSyntax.maximumSize)"))
    }

    /// No message or detail repeats more than the quoting limit of what was written, however long
    /// the bad value, key or variable is.
    @Test(arguments: [
        #"{"cniVersion":"1.0.0","name":"LONG!","type":"bridge"}"#,
        #"{"cniVersion":"LONG","name":"n","type":"bridge"}"#,
        #"{"cniVersion":"1.0.0","name":"n","type":"bridge","prevResult":{"ips":[{"address":"LONG"}]}}"#,
        #"{"cniVersion":"1.0.0","name":"n","type":"bridge","LONG":{"x":1},"capabilities":{"LONG":"yes"}}"#,
    ])
    func messagesRepeatAtMostTheQuotingLimit(_ template: String) throws {
        let long = String(repeating: "x", count: 50_000)
        let json = template.replacingOccurrences(of: "LONG", with: long)
        var environment = ["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0",
                           "CNI_PATH": "/nonexistent"]
        var out: [UInt8] = []
        struct Refusing: CNIPlugin {
            func add(_ request: CNIRequest) throws -> CNIResult { throw CNIError(.internalError, "unreachable") }
            func del(_ request: CNIRequest) throws {}
            func check(_ request: CNIRequest) throws {}
        }
        let status = CNIEntry.run(Refusing(), environment: environment, stdin: bytes(json), stdout: { out += $0 }, stderr: { _ in }, about: "")
        #expect(status == 1)
        let reply = try #require(try JSONSerialization.jsonObject(with: Data(out)) as? [String: Any])
        let text = "\(reply["msg"] as? String ?? "") \(reply["details"] as? String ?? "")"
        #expect(text.count < 2 * CNIError.quotedInputLimit + 300, "\(text.count) characters: \(text.prefix(400))")
        #expect(reply["msg"] as? String != "unreachable", "\(text.prefix(400))")

        // And the same for the environment: a long container ID, interface name and CNI_ARGS pair.
        for (key, value) in [("CNI_CONTAINERID", long + "!"), ("CNI_IFNAME", long), ("CNI_ARGS", long), ("CNI_COMMAND", long)] {
            environment[key] = value
            out = []
            _ = CNIEntry.run(Refusing(), environment: environment, stdin: bytes(#"{"cniVersion":"1.0.0","name":"n","type":"t"}"#),
                             stdout: { out += $0 }, stderr: { _ in }, about: "")
            #expect(out.count < 2 * CNIError.quotedInputLimit + 300, "\(key): \(out.count) bytes")
            environment[key] = key == "CNI_COMMAND" ? "ADD" : key == "CNI_IFNAME" ? "eth0" : key == "CNI_ARGS" ? "" : "c1"
        }
    }

    /// Mutated configs (bytes flipped, cut, duplicated; a fixed seed, so a failure reproduces): every
    /// one decodes or fails with code 6 or 7, and the syntax checker agrees with Foundation's parser
    /// on what is JSON at all.
    @Test func mutatedConfigsFailCleanly() throws {
        let good = bytes(#"{"cniVersion":"1.0.0","name":"n","type":"bridge","mtu":1450,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]]},"prevResult":{"ips":[{"address":"10.244.1.5/24"}]},"runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":8080}]}}"#)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state % UInt64(bound))
        }
        let alphabet = Array(#"{}[]:,"\ 0123456789.eE+-truefalsn"#.utf8) + [0x00, 0x0A, 0xFF]
        for round in 0..<3000 {
            var b = good
            for _ in 0...next(3) {
                switch next(4) {
                case 0: b[next(b.count)] = alphabet[next(alphabet.count)]
                case 1: b.removeSubrange(next(b.count)..<b.count)
                case 2: let i = next(b.count); b.insert(contentsOf: b[i..<min(b.count, i + next(20))], at: next(b.count))
                default: b.remove(at: next(b.count))
                }
                if b.isEmpty { b = [UInt8(ascii: "{")] }
            }
            let foundationSaysJSON = (try? JSONSerialization.jsonObject(with: Data(b), options: [.fragmentsAllowed])) != nil
            let checkerSaysJSON = (try? JSONSyntax.check(b)) != nil
            #expect(checkerSaysJSON == foundationSaysJSON, "round \(round): \(text(b))")
            do {
                _ = try NetworkConfig.decode(b)
            } catch let error as CNIError {
                #expect(error.knownCode == .decodingFailure || error.knownCode == .invalidNetworkConfig, "round \(round): \(error)")
            }
        }
    }

    @Test func quotingClipsAndSaysHowMuchWasLeftOut() {
        #expect(CNIError.quoting("short") == "short")
        let clipped = CNIError.quoting(String(repeating: "a", count: 250))
        #expect(clipped == String(repeating: "a", count: 200) + "… (50 more characters)")
        #expect("\(quoted: String(repeating: "b", count: 201))".hasSuffix("… (1 more characters)"))
    }
}
