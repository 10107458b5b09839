import CNI
import Testing

struct CNIErrorTests {
    @Test(arguments: [
        (CNIError(.incompatibleCNIVersion, "incompatible CNI versions", details: "config is \"0.2.0\""),
         #"{"cniVersion":"1.1.0","code":1,"details":"config is \"0.2.0\"","msg":"incompatible CNI versions"}"#),
        (CNIError(.unsupportedField, "unknown field"), #"{"cniVersion":"1.1.0","code":2,"msg":"unknown field"}"#),
        (CNIError(.unknownContainer, "missing containerID"), #"{"cniVersion":"1.1.0","code":3,"msg":"missing containerID"}"#),
        (CNIError(.invalidEnvironment, "required env variables [CNI_NETNS] missing", details: "CNI_NETNS"),
         #"{"cniVersion":"1.1.0","code":4,"details":"CNI_NETNS","msg":"required env variables [CNI_NETNS] missing"}"#),
        (CNIError(.ioFailure, "read"), #"{"cniVersion":"1.1.0","code":5,"msg":"read"}"#),
        (CNIError(.decodingFailure, "bad json"), #"{"cniVersion":"1.1.0","code":6,"msg":"bad json"}"#),
        (CNIError(.invalidNetworkConfig, "missing plugin type"), #"{"cniVersion":"1.1.0","code":7,"msg":"missing plugin type"}"#),
        (CNIError(.invalidNetNS, "failed to open netns"), #"{"cniVersion":"1.1.0","code":8,"msg":"failed to open netns"}"#),
        (CNIError(.tryAgainLater, "store locked"), #"{"cniVersion":"1.1.0","code":11,"msg":"store locked"}"#),
        (CNIError(.pluginNotAvailable, "bridge down"), #"{"cniVersion":"1.1.0","code":50,"msg":"bridge down"}"#),
        (CNIError(.pluginNotAvailableLimited, "no uplink"), #"{"cniVersion":"1.1.0","code":51,"msg":"no uplink"}"#),
        (CNIError(.internalError, "boom"), #"{"cniVersion":"1.1.0","code":999,"msg":"boom"}"#),
        (CNIError(pluginCode: 100, "range exhausted", details: "10.244.1.0/24"),
         #"{"cniVersion":"1.1.0","code":100,"details":"10.244.1.0/24","msg":"range exhausted"}"#),
        (CNIError(pluginCode: 117, "quote \" and / slash"), #"{"cniVersion":"1.1.0","code":117,"msg":"quote \" and / slash"}"#),
    ])
    func json(_ error: CNIError, _ expected: String) throws {
        #expect(text(error.json(cniVersion: "1.1.0")) == expected)
        #expect(try JSONValue.decodeError(expected) == error)
    }

    @Test func jsonCarriesTheRequestVersion() {
        #expect(text(CNIError(.ioFailure, "x").json(cniVersion: "0.3.1")) == #"{"cniVersion":"0.3.1","code":5,"msg":"x"}"#)
    }

    struct Unclassified: Error, CustomStringConvertible { var description: String { "veth kp1 exists" } }
    struct Payload: Decodable { var subnet: String; var count: Int }

    @Test func mapping() {
        let passthrough = CNIError(pluginCode: 123, "mine", details: "d")
        #expect(CNIError(mapping: passthrough) == passthrough)
        #expect(CNIError(mapping: Unclassified()) == CNIError(.internalError, "veth kp1 exists"))
    }

    @Test(arguments: [
        ("not json", CNIError.Code.decodingFailure, "error decoding"),
        ("[1,2]", .decodingFailure, "error decoding"),
        (#"{"count":1}"#, .invalidNetworkConfig, "subnet"),
        (#"{"subnet":"a","count":"1"}"#, .invalidNetworkConfig, "count"),
        (#"{"subnet":null,"count":1}"#, .invalidNetworkConfig, "subnet"),
    ])
    func decodingErrors(_ json: String, _ code: CNIError.Code, _ field: String) {
        do {
            _ = try JSONValue(parsing: bytes(json)).decode(Payload.self)
            Issue.record("decoded")
        } catch {
            let e = CNIError(mapping: error)
            #expect(e.knownCode == code, "\(e)")
            #expect(e.msg.contains(field))
        }
    }
}
