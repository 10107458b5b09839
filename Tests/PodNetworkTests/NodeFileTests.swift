import Foundation
import PodNetwork
import Testing

/// The node file's reader: bounded in size, never blocked by what sits at its path.
@Suite struct NodeFileTests {
    func withFolder(_ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.path + "/keel-nodefile-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir)
    }

    @Test func roundTrip() throws {
        try withFolder { dir in
            let file = NodeFile(subnets: [], mtu: 1450, backend: "vxlan", vni: 1, port: 8472)
            try file.write(dir + "/node.env")
            #expect(try NodeFile.read(dir + "/node.env") == file)
        }
    }

    @Test func aFileOverTheLimitIsRefusedNamingTheLimit() throws {
        try withFolder { dir in
            let text = "KEEL_MTU=1450\n" + String(repeating: "# padding\n", count: NodeFile.maxBytes / 10 + 1)
            try text.write(toFile: dir + "/node.env", atomically: false, encoding: .utf8)
            #expect { try NodeFile.read(dir + "/node.env") } throws: { error in
                "\(error)".contains("larger than the limit of \(NodeFile.maxBytes) bytes")
            }
        }
    }

    @Test func aFIFOIsRefusedWithoutWaitingForAWriter() throws {
        try withFolder { dir in
            #expect(mkfifo(dir + "/node.env", 0o644) == 0)
            #expect { try NodeFile.read(dir + "/node.env") } throws: { error in "\(error)".contains("not a regular file") }
        }
    }
}
