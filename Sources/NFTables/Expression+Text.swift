/// A one-line rendering of kernel expressions in the notation of `nft --debug=netlink`, for logs,
/// golden files and test failure messages. It names registers and bytes exactly, so two renderings
/// differ exactly when the expressions do.
extension Expression: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .payload(base, offset, length, into):
            return "payload load \(length)b @ \(base) header + \(offset) => \(into)"
        case let .meta(key, into):
            return "meta load \(key) => \(into)"
        case let .setMeta(key, from):
            return "meta set \(key) with \(from)"
        case let .ct(key, direction, into):
            return "ct load \(key)\(direction.map { $0 == .original ? ", dir original" : ", dir reply" } ?? "") => \(into)"
        case let .cmp(register, op, bytes):
            return "cmp \(op) \(register) \(hexString(bytes))"
        case let .bitwise(source, into, mask, xor):
            return "bitwise \(into) = (\(source) & \(hexString(mask))) ^ \(hexString(xor))"
        case let .lookup(set, source, into, inverted):
            return "lookup \(source) set \(set)\(into.map { " dreg \($0)" } ?? "")\(inverted ? " inverted" : "")"
        case let .immediate(bytes, into):
            return "immediate \(into) \(hexString(bytes))"
        case let .verdict(v):
            return v.description
        case let .nat(n):
            var text = "nat \(n.type == .dnat ? "dnat" : "snat") \(n.family)"
            if let r = n.addressMin { text += " addr_min \(r)" }
            if let r = n.addressMax { text += " addr_max \(r)" }
            if let r = n.portMin { text += " proto_min \(r)" }
            if let r = n.portMax { text += " proto_max \(r)" }
            if !n.flags.isEmpty { text += " flags 0x\(String(n.flags.rawValue, radix: 16))" }
            return text
        case let .masquerade(portMin, portMax, flags):
            var text = "masq"
            if let portMin { text += " proto_min \(portMin)" }
            if let portMax { text += " proto_max \(portMax)" }
            if !flags.isEmpty { text += " flags 0x\(String(flags.rawValue, radix: 16))" }
            return text
        case let .numgen(mode, modulus, offset, into):
            return "numgen \(into) = \(mode == .random ? "random" : "inc") mod \(modulus) offset \(offset)"
        case .counter:
            return "counter"
        case let .reject(kind):
            switch kind {
            case .icmp(let code): return "reject icmp code \(code)"
            case .icmpx(let code): return "reject icmpx code \(code.rawValue)"
            case .tcpReset: return "reject tcp reset"
            }
        case let .limit(l):
            return "limit \(l.inverted ? "over " : "")rate \(l.rate)/\(l.unit) burst \(l.burst) \(l.kind)"
        case let .dynset(d):
            var text = "dynset \(d.op) \(d.keyRegister) set \(d.set)"
            if let r = d.dataRegister { text += " data \(r)" }
            if let t = d.timeout { text += " timeout \(t.milliseconds)ms" }
            return text
        case let .fib(f):
            return "fib flags 0x\(String(f.flags.rawValue, radix: 16)) result \(f.result) => \(f.into)"
        case let .unsupported(name):
            return "unsupported \(name)"
        }
    }
}

func hexString(_ bytes: [UInt8]) -> String {
    "0x" + bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

extension Rule {
    /// The expressions, each in brackets, as `nft --debug=netlink` prints them.
    public var expressionText: String {
        var text = expressions.map { "[ \($0) ]" }.joined(separator: " ")
        if let comment { text += " comment \"\(comment)\"" }
        return text
    }
}
