import CNI
import Testing

struct CNIArgsTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var raw: String
        var pairs: [String: String]
        var ignoreUnknown: Bool
        var testDescription: String { name }
    }

    @Test(arguments: [
        Case(name: "empty", raw: "", pairs: [:], ignoreUnknown: false),
        Case(name: "kubelet style", raw: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=7f0e-11",
             pairs: ["IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web-0",
                     "K8S_POD_INFRA_CONTAINER_ID": "abc123", "K8S_POD_UID": "7f0e-11"], ignoreUnknown: true),
        Case(name: "IgnoreUnknown=true", raw: "IgnoreUnknown=true;FOO=bar", pairs: ["IgnoreUnknown": "true", "FOO": "bar"], ignoreUnknown: true),
        Case(name: "IgnoreUnknown=0", raw: "IgnoreUnknown=0", pairs: ["IgnoreUnknown": "0"], ignoreUnknown: false),
        Case(name: "empty value", raw: "IP=", pairs: ["IP": ""], ignoreUnknown: false),
        Case(name: "= inside value", raw: "A=b=c", pairs: ["A": "b=c"], ignoreUnknown: false),
        Case(name: "trailing ;", raw: "A=1;", pairs: ["A": "1"], ignoreUnknown: false),
        Case(name: "repeated key keeps the last", raw: "A=1;A=2", pairs: ["A": "2"], ignoreUnknown: false),
    ])
    func parses(_ c: Case) throws {
        let args = try CNIArgs(parsing: c.raw)
        #expect(args.pairs == c.pairs)
        #expect(args.ignoreUnknown == c.ignoreUnknown)
        #expect(args.raw == c.raw)
    }

    @Test func kubernetesAccessors() throws {
        let args = try CNIArgs(parsing: "K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1;K8S_POD_UID=u-1;K8S_POD_INFRA_CONTAINER_ID=c1")
        #expect(args.podName == "coredns-1")
        #expect(args.podNamespace == "kube-system")
        #expect(args.podUID == "u-1")
        #expect(args.podInfraContainerID == "c1")
        #expect(args["K8S_POD_NAME"] == "coredns-1")
        #expect(try CNIArgs(parsing: "").podName == nil)
    }

    @Test(arguments: ["novalue", "A=1;bad", "=value", "A=1;;=x", "IgnoreUnknown=maybe"])
    func malformedIsInvalidEnvironment(_ raw: String) {
        #expect {
            try CNIArgs(parsing: raw)
        } throws: { ($0 as? CNIError)?.knownCode == .invalidEnvironment }
    }

    @Test func unknownKeysAreTheCallersChoice() throws {
        let strict = try CNIArgs(parsing: "K8S_POD_NAME=a;IP=10.0.0.5;COLOR=blue")
        #expect(throws: CNIError(.unsupportedField, "CNI_ARGS: unknown args [\"COLOR\"]", details: "set IgnoreUnknown=1 to ignore them")) {
            try strict.checkKnown(["IP"])
        }
        try strict.checkKnown(["IP", "COLOR"])
        try CNIArgs(parsing: "IgnoreUnknown=1;COLOR=blue").checkKnown([])
    }
}
