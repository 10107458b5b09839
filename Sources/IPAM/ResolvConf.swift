/// DNS settings for the ADD result, read from the file named by `ipam.resolvConf`.
public struct DNSSettings: Hashable, Sendable {
    public var nameservers: [String] = []
    public var domain: String?
    public var search: [String] = []
    public var options: [String] = []
    public init(nameservers: [String] = [], domain: String? = nil, search: [String] = [], options: [String] = []) {
        self.nameservers = nameservers
        self.domain = domain
        self.search = search
        self.options = options
    }

    /// Parses resolv.conf text as the reference's `parseResolvConf`: `nameserver`, `domain`, `search`
    /// and `options` lines; comments (`#`, `;`), blank lines and other keywords are skipped.
    public init(resolvConf text: String) {
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = String(line).trimmingWhitespace()
            guard let first = trimmed.first, first != "#", first != ";" else { continue }
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard fields.count >= 2 else { continue }
            switch fields[0] {
            case "nameserver": nameservers.append(fields[1])
            case "domain": domain = fields[1]
            case "search": search += fields[1...]
            case "options": options += fields[1...]
            default: continue
            }
        }
    }

    /// Reads and parses the resolv.conf at `path`.
    public init(contentsOfResolvConf path: String) throws {
        guard let text = try readTextFile(path) else {
            throw IPAMError.io(operation: "open", path: path, errno: 2 /* ENOENT */)
        }
        self.init(resolvConf: text)
    }
}
