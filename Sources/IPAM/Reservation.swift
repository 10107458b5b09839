import NetAddress

/// Who holds an address: the CNI attachment (container ID + interface name).
public struct AttachmentID: Hashable, Sendable, CustomStringConvertible {
    public var containerID: String
    public var ifName: String
    public init(containerID: String, ifName: String) {
        self.containerID = containerID
        self.ifName = ifName
    }
    public var description: String { "\(containerID)/\(ifName)" }
}

/// One reserved address as the store holds it. `ifName` is nil for files written by host-local
/// versions before 0.7 (they hold only the container ID).
public struct Reservation: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var containerID: String
    public var ifName: String?

    public init(address: IPAddress, containerID: String, ifName: String?) {
        self.address = address
        self.containerID = containerID
        self.ifName = ifName
    }

    public var description: String { "\(address) → \(containerID)" + (ifName.map { "/\($0)" } ?? "") }

    /// The reference's rule: a current file matches container ID and interface; an old file, the ID alone.
    public func isHeld(by attachment: AttachmentID) -> Bool {
        containerID == attachment.containerID && (ifName == nil || ifName == attachment.ifName)
    }
    /// Held by exactly this attachment, in the current format.
    func isHeldExactly(by attachment: AttachmentID) -> Bool {
        containerID == attachment.containerID && ifName == attachment.ifName
    }

    /// The reservation file's content, byte-identical to the reference: `<id>\r\n<ifname>`.
    public static func fileContent(for attachment: AttachmentID) -> String {
        attachment.containerID.trimmingWhitespace() + "\r\n" + attachment.ifName
    }
    /// Parses a reservation file: `<id>\r\n<ifname>` (current), `<id>\n<ifname>`, or `<id>` (old).
    public init(address: IPAddress, fileContent: String) {
        let text = fileContent.trimmingWhitespace()
        if let newline = text.firstIndex(where: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            containerID = String(text[..<newline]).trimmingWhitespace()
            ifName = String(text[text.index(after: newline)...]).trimmingWhitespace()
        } else {
            containerID = text
            ifName = nil
        }
        self.address = address
    }
}

extension String {
    /// Go's `strings.TrimSpace` for the ASCII whitespace these files can hold.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" || $0 == "\u{0B}" || $0 == "\u{0C}" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
