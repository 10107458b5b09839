import Glibc

/// Checks of the identifiers a runtime passes, with the codes the reference uses.
public enum CNIValidation {
    /// Container IDs and network names: a letter or digit, then letters, digits, `_`, `.`, `-`.
    static func isValidName(_ s: String) -> Bool {
        guard let first = s.utf8.first, isAlnum(first) else { return false }
        return s.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }
    private static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
    }

    /// Empty → 3 (unknown container); bad characters → 4 (invalid environment).
    public static func validateContainerID(_ id: String) throws {
        guard !id.isEmpty else { throw CNIError(.unknownContainer, "missing containerID") }
        guard isValidName(id) else { throw CNIError(.invalidEnvironment, "invalid characters in containerID", details: CNIError.quoting(id)) }
    }

    /// The Linux limits: 1–15 bytes (IFNAMSIZ - 1), not `.` or `..`, no `/`, `:` or whitespace. → 4.
    public static func validateInterfaceName(_ name: String) throws {
        guard !name.isEmpty else { throw CNIError(.invalidEnvironment, "interface name is empty") }
        guard name.utf8.count <= 15 else {
            throw CNIError(.invalidEnvironment, "interface name is too long", details: "\(quoted: name) is \(name.utf8.count) bytes, at most 15 allowed")
        }
        guard name != ".", name != ".." else { throw CNIError(.invalidEnvironment, "interface name is . or ..", details: CNIError.quoting(name)) }
        guard !name.contains(where: { $0 == "/" || $0 == ":" || $0.isWhitespace }) else {
            throw CNIError(.invalidEnvironment, "interface name contains / or : or whitespace", details: CNIError.quoting(name))
        }
    }

    /// Network names follow the container-ID alphabet. → 7.
    public static func validateNetworkName(_ name: String) throws {
        guard !name.isEmpty else { throw CNIError(.invalidNetworkConfig, "missing network name") }
        guard isValidName(name) else { throw CNIError(.invalidNetworkConfig, "invalid characters found in network name", details: CNIError.quoting(name)) }
    }

    /// CNI_NETNS: an absolute path; with `mustExist`, one that exists (ADD and CHECK). → 4 for a relative
    /// path, 8 for a path that is not there. DEL passes `mustExist: false`: a namespace that is already
    /// gone is what DEL is for.
    public static func validateNetnsPath(_ path: String, mustExist: Bool) throws {
        guard path.hasPrefix("/") else { throw CNIError(.invalidEnvironment, "CNI_NETNS must be an absolute path", details: CNIError.quoting(path)) }
        guard mustExist else { return }
        var st = stat()
        if stat(path, &st) != 0 {
            let err = errno
            throw CNIError(.invalidNetNS, "failed to open netns \"\(quoted: path)\"", details: String(cString: strerror(err)))
        }
    }
}
