import Foundation
import NetAddress
import NetnsHarness
import Testing

// host-local SIGKILLed at every moment of an ADD, as a runtime's timeout or the OOM killer does:
// the store must hold only complete reservations afterwards and no other file (no temporary one).
// (The delegate's stdin file that bridge makes has no name at all: IPAMDelegateTests.)
// host-local needs no namespace of its own (its ADD only writes the store), so this runs unprivileged.
@Suite(.serialized)
struct PluginKillTests {
    let keel = CNIRunner.keelPluginDirectory

    /// Starts host-local ADD for `containerID`, feeds it `config` and kills it after `delay` µs.
    func killedAdd(containerID: String, config: String, delay: UInt32) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: keel + "/host-local")
        p.environment = ["CNI_COMMAND": "ADD", "CNI_CONTAINERID": containerID, "CNI_NETNS": "/proc/self/ns/net",
                         "CNI_IFNAME": "eth0", "CNI_PATH": keel]
        let input = Pipe()
        p.standardInput = input
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        try input.fileHandleForWriting.write(contentsOf: Data(config.utf8))
        try input.fileHandleForWriting.close()
        usleep(delay)
        kill(p.processIdentifier, SIGKILL)   // ours, by PID; it may have finished already
        p.waitUntilExit()
    }

    @Test func hostLocalKilledAtAnyMomentLeavesOnlyCompleteReservations() throws {
        try withScratchDirectory("kill") { dataDir in
            var net = BridgeNet(dataDir: dataDir)
            net.subnet = "10.250.0.0/16"
            let config = try net.json()
            // How long a whole ADD takes here, so the kills spread over all of it.
            let start = DispatchTime.now().uptimeNanoseconds
            try killedAdd(containerID: "probe", config: config, delay: 200_000)
            let span = UInt32(min(max((DispatchTime.now().uptimeNanoseconds - start) / 1000, 2000), 50_000))

            let runs = 200
            for i in 0..<runs {
                try killedAdd(containerID: "c\(i)", config: config, delay: span * UInt32(i) / UInt32(runs))
            }

            var complete = 0
            for name in try FileManager.default.contentsOfDirectory(atPath: net.reservationDirectory) {
                if name == "lock" || name == "last_reserved_ip.0" { continue }
                #expect(IPAddress(name) != nil, "unexpected file \(name) in the store")
                let content = try String(contentsOfFile: net.reservationDirectory + "/" + name, encoding: .utf8)
                #expect(content.wholeMatch(of: /(c\d+|probe)\r\neth0/) != nil, "\(name) holds \(content.debugDescription)")
                complete += 1
            }
            // Some ran to the end and some were killed early: the kills covered the whole ADD.
            #expect(complete > 0 && complete < runs + 1, "\(complete) reservations")
        }
    }
}
