import CFuzzDriver
import CNI

/// One input, decoded as a plugin's network config and as a config list (a .conflist).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCNIConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? NetworkConfig.decode(bytes)
    _ = try? NetworkConfigList.decode(bytes)
    return 0
}

/// The entry point SwiftPM links `main` to: runs libFuzzer's driver on ``fuzzCNIConfig(_:_:)``.
@_cdecl("fuzz_cni_config_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzCNIConfig(data, size) }
}
