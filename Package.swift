// swift-tools-version:6.1
import PackageDescription

// Dependency direction: executables -> feature modules -> Netlink / NFTables -> CMnl / CNftnl.
// NetAddress holds the address/CIDR value types that every layer shares.
let package = Package(
    name: "Keel",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Netlink", targets: ["Netlink"]),
        .library(name: "NFTables", targets: ["NFTables"]),
        .library(name: "NetnsHarness", targets: ["NetnsHarness"]),
        .executable(name: "keel-lab", targets: ["keel-lab"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        .systemLibrary(name: "CMnl", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        .systemLibrary(name: "CNftnl", pkgConfig: "libnftnl", providers: [.apt(["libnftnl-dev"])]),
        .target(name: "NetAddress"),
        .target(name: "Netlink", dependencies: ["CMnl", "NetAddress", .product(name: "SystemPackage", package: "swift-system")]),
        .target(name: "NFTables", dependencies: ["CNftnl", "CMnl", "Netlink", "NetAddress"]),
        // Namespaces, veth between them, processes and traffic probes inside them. Used by the
        // integration tests, the demo and the benchmark alike: one implementation, never linked by plugins.
        .target(name: "NetnsHarness", dependencies: ["Netlink", "NFTables", "NetAddress"]),
        .executableTarget(name: "keel-lab", dependencies: [
            "NetnsHarness", "Netlink", "NFTables", "NetAddress",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "NetAddressTests", dependencies: ["NetAddress"]),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink", "NetAddress", "CMnl", .product(name: "SystemPackage", package: "swift-system")]),
        .testTarget(name: "NFTablesTests", dependencies: ["NFTables", "NetAddress"]),
        .testTarget(name: "IntegrationTests", dependencies: ["NetnsHarness", "Netlink", "NFTables", "NetAddress", .product(name: "SystemPackage", package: "swift-system")]),
    ]
)
