import Cluster
import CFuzzDriver
import Foundation

/// One input as a chunk of a watch stream: each line is read as KubeAPISource reads it, and the
/// object of each event decoded as the watched kind.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWatchEvent(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for line in bytes.split(separator: UInt8(ascii: "\n")) {
        guard let event = WatchEvent(line: line) else {
            _ = WatchEvent.ObjectHead(json: line)   // what a Status body goes through
            continue
        }
        _ = ManifestDecoder.combine([ManifestDecoder.decodeJSON(Data(event.object), origin: "apiserver", impliedKind: .pod)])
    }
    return 0
}

/// The entry point SwiftPM links `main` to: runs libFuzzer's driver on ``fuzzWatchEvent(_:_:)``.
@_cdecl("fuzz_watch_event_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzWatchEvent(data, size) }
}
