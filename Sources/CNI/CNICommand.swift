/// `CNI_COMMAND`.
public enum CNICommand: String, Sendable, CaseIterable {
    case add = "ADD", del = "DEL", check = "CHECK", version = "VERSION", gc = "GC", status = "STATUS"

    /// The variables the command cannot run without (SPEC.md, "Parameters"; skel's table).
    /// CNI_NETNS is optional for DEL: the runtime may call DEL after the namespace is gone.
    public var requiredEnvironment: [String] {
        switch self {
        case .add, .check: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]
        case .del: ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"]
        case .gc, .status: ["CNI_PATH"]
        case .version: []
        }
    }

    /// The lowest config `cniVersion` the command exists in.
    var minimumVersion: CNIVersion? {
        switch self {
        case .check: .v040
        case .gc, .status: .v110
        case .add, .del, .version: nil
        }
    }
}
