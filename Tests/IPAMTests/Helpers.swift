#if canImport(Glibc)
import Glibc
#endif
import NetAddress
@testable import IPAM

func ip(_ text: String) -> IPAddress { IPAddress(text)! }
func cidr(_ text: String) -> CIDR { CIDR(text)! }
func attachment(_ id: String, _ ifName: String = "eth0") -> AttachmentID { AttachmentID(containerID: id, ifName: ifName) }

/// A range set of whole subnets with the reference's defaults.
func rangeSet(_ subnets: String...) throws -> RangeSet {
    try RangeSet(subnets.map { try AddressRange(subnet: cidr($0)) })
}

/// A fresh directory under /tmp, removed (with everything in it) when `body` returns or throws.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    var template = Array("/tmp/keel-ipam-test-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw IPAMError.io(operation: "mkdtemp", path: "/tmp", errno: errno) }
    let path = String(cString: made)
    defer { removeTree(path) }
    return try body(path)
}

func removeTree(_ path: String) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if info.st_mode & S_IFMT == S_IFDIR, let dir = opendir(path) {
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        for name in names { removeTree(path + "/" + name) }
        rmdir(path)
    } else {
        unlink(path)
    }
}

func writeFile(_ path: String, _ text: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    precondition(fd >= 0, "open \(path)")
    _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

func readFile(_ path: String) -> String? { try? readTextFile(path) ?? nil }

func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

func fileMode(_ path: String) -> UInt32 {
    var info = stat()
    return stat(path, &info) == 0 ? UInt32(info.st_mode & 0o777) : 0
}

func directoryListing(_ path: String) throws -> [String] { try listFiles(path).sorted() }
