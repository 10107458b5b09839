import CNI
import Testing

struct ValidationTests {
    @Test(arguments: [
        ("eth0", nil), ("net1", nil), ("a", nil), ("veth-12345678ab", nil) /* 15 bytes */,
        ("", CNIError.Code.invalidEnvironment), ("veth-12345678abc", .invalidEnvironment) /* 16 */,
        (".", .invalidEnvironment), ("..", .invalidEnvironment), ("eth/0", .invalidEnvironment),
        ("eth:0", .invalidEnvironment), ("eth 0", .invalidEnvironment), ("eth\t0", .invalidEnvironment),
        ("ééééééééé", .invalidEnvironment) /* 9 characters, 18 bytes */,
    ] as [(String, CNIError.Code?)])
    func interfaceName(_ name: String, _ expected: CNIError.Code?) {
        #expect(code { try CNIValidation.validateInterfaceName(name) } == expected)
    }

    @Test(arguments: [
        ("ctr-1", nil), ("0123abcdef", nil), ("a_b.c-d", nil), ("X", nil),
        ("", CNIError.Code.unknownContainer), ("-leading", .invalidEnvironment), ("_x", .invalidEnvironment),
        ("has space", .invalidEnvironment), ("a/b", .invalidEnvironment), ("ctr;rm", .invalidEnvironment),
    ] as [(String, CNIError.Code?)])
    func containerID(_ id: String, _ expected: CNIError.Code?) {
        #expect(code { try CNIValidation.validateContainerID(id) } == expected)
    }

    @Test(arguments: [
        ("keelnet", nil), ("k8s-pod-network", nil), ("n.1_2", nil),
        ("", CNIError.Code.invalidNetworkConfig), ("bad name", .invalidNetworkConfig), (".hidden", .invalidNetworkConfig),
    ] as [(String, CNIError.Code?)])
    func networkName(_ name: String, _ expected: CNIError.Code?) {
        #expect(code { try CNIValidation.validateNetworkName(name) } == expected)
    }

    @Test(arguments: [
        ("/proc/self/ns/net", true, nil), ("/nonexistent/netns/x", false, nil),
        ("/nonexistent/netns/x", true, CNIError.Code.invalidNetNS), ("relative/netns", false, .invalidEnvironment),
    ] as [(String, Bool, CNIError.Code?)])
    func netnsPath(_ path: String, _ mustExist: Bool, _ expected: CNIError.Code?) {
        #expect(code { try CNIValidation.validateNetnsPath(path, mustExist: mustExist) } == expected)
    }

    private func code(_ body: () throws -> Void) -> CNIError.Code? {
        do { try body(); return nil } catch { return (error as? CNIError)?.knownCode ?? .internalError }
    }
}
