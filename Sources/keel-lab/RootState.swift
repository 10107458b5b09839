import ArgumentParser
import NFTables
import Netlink
import NetnsHarness

struct RootState: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "root-state",
        abstract: "Print a read-only fingerprint of this process's network namespace (links, addresses, routes, sysctls, nftables tables).",
        discussion: "scripts/test prints it before and after the suite and fails on any difference. It only reads.")

    func run() throws {
        let socket = try RouteSocket()
        let tables = try NFTablesSocket().tableNames().map { "nft table \($0)" }
        for line in try NamespaceFingerprint.read(socket, extra: tables).lines { print(line) }
    }
}
