import Cluster
import CFuzzDriver
import Foundation

/// One input, decoded as each kind of manifest file keeld reads and as an API object. The first
/// byte picks the file name (YAML, JSON, overlay) so one corpus covers them all.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let names = ["fuzz.yaml", "fuzz.json", "fuzz.keel-overlay.yaml"]
    let name = names[Int(bytes.first ?? 0) % names.count]
    let text = String(decoding: bytes, as: UTF8.self)
    _ = ManifestDecoder.decode(files: [(name: name, text: text), (name: "other.yaml", text: text)])
    _ = ManifestDecoder.combine([ManifestDecoder.decodeJSON(Data(bytes), origin: "apiserver", impliedKind: .service)])
    return 0
}

/// The entry point SwiftPM links `main` to: runs libFuzzer's driver on ``fuzzManifest(_:_:)``.
@_cdecl("fuzz_manifest_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzManifest(data, size) }
}
