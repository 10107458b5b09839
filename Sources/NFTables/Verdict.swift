/// What a rule (or a verdict-map element) decides for a packet.
public enum Verdict: Hashable, Sendable, CustomStringConvertible {
    case accept
    case drop
    /// Go on with the next rule (NFT_CONTINUE).
    case `continue`
    /// Return to the chain that jumped here (NFT_RETURN).
    case `return`
    /// Run `chain`, then come back (NFT_JUMP).
    case jump(String)
    /// Run `chain` and do not come back (NFT_GOTO).
    case goto(String)

    /// The kernel's verdict code: NF_DROP 0, NF_ACCEPT 1, NFT_CONTINUE -1, NFT_JUMP -3, NFT_GOTO -4, NFT_RETURN -5.
    var code: Int32 {
        switch self {
        case .drop: 0
        case .accept: 1
        case .continue: -1
        case .jump: -3
        case .goto: -4
        case .return: -5
        }
    }

    var chain: String? {
        switch self {
        case .jump(let c), .goto(let c): c
        default: nil
        }
    }

    init?(code: Int32, chain: String?) {
        switch code {
        case 0: self = .drop
        case 1: self = .accept
        case -1: self = .continue
        case -3: guard let chain else { return nil }; self = .jump(chain)
        case -4: guard let chain else { return nil }; self = .goto(chain)
        case -5: self = .return
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .accept: "accept"
        case .drop: "drop"
        case .continue: "continue"
        case .return: "return"
        case .jump(let c): "jump \(c)"
        case .goto(let c): "goto \(c)"
        }
    }
}
