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
        .library(name: "Cluster", targets: ["Cluster"]),   // Fuzz/ (scripts/fuzz) links the decoders
        .library(name: "CNI", targets: ["CNI"]),
        .executable(name: "keel-lab", targets: ["keel-lab"]),
        .executable(name: "keeld", targets: ["keeld"]),
        .executable(name: "keelctl", targets: ["keelctl"]),
        .executable(name: "bridge", targets: ["bridge"]),
        .executable(name: "host-local", targets: ["host-local"]),
        .executable(name: "loopback", targets: ["loopback"]),
        .executable(name: "host-gw", targets: ["host-gw"]),
        .executable(name: "vxlan", targets: ["vxlan"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),   // NetnsHarness's fake API server
    ],
    targets: [
        .systemLibrary(name: "CMnl", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        .systemLibrary(name: "CNftnl", pkgConfig: "libnftnl", providers: [.apt(["libnftnl-dev"])]),
        .target(name: "NetAddress"),
        .target(name: "Netlink", dependencies: ["CMnl", "NetAddress", .product(name: "SystemPackage", package: "swift-system")]),
        .target(name: "NFTables", dependencies: ["CNftnl", "CMnl", "Netlink", "NetAddress"]),
        // The CNI protocol (spec 1.1.0 and older result versions). Foundation-light: plugins are started
        // once per pod, so they link FoundationEssentials only, never NIO, HTTP or YAML.
        .target(name: "CNI", dependencies: ["NetAddress"]),
        .target(name: "IPAM", dependencies: ["CNI", "NetAddress"]),
        .target(name: "PodNetwork", dependencies: ["CNI", "Netlink", "NFTables", "NetAddress"]),
        .executableTarget(name: "bridge", dependencies: ["CNI", "IPAM", "PodNetwork"]),
        .executableTarget(name: "host-local", dependencies: ["CNI", "IPAM"]),
        .executableTarget(name: "loopback", dependencies: ["CNI", "PodNetwork"]),
        .executableTarget(name: "host-gw", dependencies: ["CNI", "IPAM", "PodNetwork"]),
        .executableTarget(name: "vxlan", dependencies: ["CNI", "IPAM", "PodNetwork"]),
        // Kubernetes objects Keel reads, the store and its sources (manifest folder; later the API).
        // keeld only: plugins never link it (YAML).
        .target(name: "Cluster", dependencies: [
            "NetAddress", .product(name: "Yams", package: "Yams"), .product(name: "Logging", package: "swift-log"),
        ]),
        // The Kubernetes API source (list + watch over HTTPS). keeld only, later: plugins never link it (NIO, HTTP).
        .target(name: "KubeAPI", dependencies: [
            "Cluster", "NetAddress", .product(name: "Yams", package: "Yams"), .product(name: "Logging", package: "swift-log"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // Pure: (services, endpoint slices, node) -> desired nftables state; plus its sync.
        .target(name: "ServiceProxy", dependencies: [
            "NFTables", "Netlink", "NetAddress", "Cluster", .product(name: "Logging", package: "swift-log"),
        ]),
        // Pure: (policies, pods, namespaces, node) -> desired nftables state and the flow evaluation
        // behind keelctl's explain/matrix; plus its sync.
        .target(name: "PolicyEnforcer", dependencies: [
            "NFTables", "NetAddress", "Cluster", .product(name: "Logging", package: "swift-log"),
        ]),
        // Pure: (nodes, this node) -> peer routes / FDB / neighbours; plus the sync that applies them.
        .target(name: "Routes", dependencies: [
            "Netlink", "NetAddress", "Cluster", .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "keeld", dependencies: [
            "Cluster", "KubeAPI", "Routes", "ServiceProxy", "PolicyEnforcer", "PodNetwork", "Netlink", "NFTables", "NetAddress",
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "keelctl", dependencies: [
            "Cluster", "ServiceProxy", "PolicyEnforcer", "NFTables", "Netlink", "NetAddress",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Namespaces, veth between them, processes and traffic probes inside them. Used by the
        // integration tests, the demo and the benchmark alike: one implementation, never linked by plugins.
        .target(name: "NetnsHarness", dependencies: [
            "Netlink", "NFTables", "NetAddress",
            // FakeKubeAPI: the API server's wire protocol (HTTPS, chunked watches) for tests and the bench.
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        .executableTarget(name: "keel-lab", dependencies: [
            "NetnsHarness", "Netlink", "NFTables", "NetAddress", "Routes", "PodNetwork",   // Routes, PodNetwork: bench overlay
            "ServiceProxy", .product(name: "Logging", package: "swift-log"),   // bench proxy
            "PolicyEnforcer", "Cluster",   // bench policy
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "NetAddressTests", dependencies: ["NetAddress"]),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink", "NetAddress", "CMnl", .product(name: "SystemPackage", package: "swift-system")]),
        .testTarget(name: "NFTablesTests", dependencies: ["NFTables", "NetAddress"]),
        .testTarget(name: "CNITests", dependencies: ["CNI", "NetAddress"]),
        .testTarget(name: "IPAMTests", dependencies: ["IPAM", "CNI", "NetAddress"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster", "NetAddress"]),
        // deploy/keel.yaml against the code: keeld's flags and ports, the RBAC rules, the conflist.
        .testTarget(name: "DeployTests", dependencies: ["CNI", "Cluster", "KubeAPI", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "KubeAPITests", dependencies: ["KubeAPI", "Cluster", "NetnsHarness", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "PolicyEnforcerTests", dependencies: ["PolicyEnforcer", "Cluster", "NFTables", "NetAddress"],
                    exclude: ["Golden"]),   // read through #filePath, not bundled
        .testTarget(name: "ServiceProxyTests", dependencies: ["ServiceProxy", "Cluster", "NFTables", "NetAddress"],
                    exclude: ["Golden"]),   // read through #filePath, not bundled
        .testTarget(name: "RoutesTests", dependencies: ["Routes", "Netlink", "NetAddress"]),
        .testTarget(name: "PodNetworkTests", dependencies: ["PodNetwork", "CNI", "NFTables", "NetAddress"]),
        .testTarget(name: "IntegrationTests", dependencies: ["NetnsHarness", "Netlink", "NFTables", "NetAddress", "ServiceProxy", "PolicyEnforcer", .product(name: "SystemPackage", package: "swift-system")]),
    ]
)
