// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for Keel's decoders, built and run by scripts/fuzz (scratch path .build-fuzz).
// A package of its own: an `LLVMFuzzerTestOneInput` entry point has no `main` until it is linked with
// `-sanitize=fuzzer`, so these executables cannot be part of the normal `swift build`.
//
// The main package is a dependency by path; its identity is the name of the folder it is checked out
// in (a clone may be called anything), so it is read off this package's own location.
let keelPath = String(Context.packageDirectory.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
let keel = String(keelPath.split(separator: "/").last ?? "keel")

let fuzzSettings: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "KeelFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: keelPath)],
    targets: [
        // The declaration of libFuzzer's driver, which each target's entry point calls.
        .target(name: "CFuzzDriver"),
        // ManifestDecoder: manifest files (YAML and JSON, overlays) and JSON API objects.
        .executableTarget(name: "fuzz-manifest", dependencies: ["CFuzzDriver", .product(name: "Cluster", package: keel)],
                          swiftSettings: fuzzSettings),
        // NetworkConfig / NetworkConfigList: what a runtime gives a CNI plugin on stdin.
        .executableTarget(name: "fuzz-cni-config", dependencies: ["CFuzzDriver", .product(name: "CNI", package: keel)],
                          swiftSettings: fuzzSettings),
        // WatchEvent lines of a watch stream, and the object each carries.
        .executableTarget(name: "fuzz-watch-event", dependencies: ["CFuzzDriver", .product(name: "Cluster", package: keel)],
                          swiftSettings: fuzzSettings),
    ]
)
