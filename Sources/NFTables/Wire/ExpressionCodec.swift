import CNftnl

/// Expression ↔ libnftnl `nftnl_expr`. Every attribute written here is read back the same way, so
/// that a rule dumped from the kernel decodes into the `Expression`s it was built from.
enum ExpressionCodec {
    /// A new `nftnl_expr`, owned by the caller (usually handed to `nftnl_rule_add_expr`).
    static func make(_ expression: Expression) -> OpaquePointer {
        func alloc(_ name: String) -> OpaquePointer { nftnl_expr_alloc(name)! }
        func bytes(_ e: OpaquePointer, _ a: Int, _ value: [UInt8]) {
            _ = value.withUnsafeBytes { nftnl_expr_set(e, attr(a), $0.baseAddress, UInt32($0.count)) }
        }
        func u32(_ e: OpaquePointer, _ a: Int, _ value: UInt32) { nftnl_expr_set_u32(e, attr(a), value) }
        switch expression {
        case let .payload(base, offset, length, into):
            let e = alloc("payload")
            u32(e, NFTNL_EXPR_PAYLOAD_DREG, into.rawValue)
            u32(e, NFTNL_EXPR_PAYLOAD_BASE, base.rawValue)
            u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset)
            u32(e, NFTNL_EXPR_PAYLOAD_LEN, length)
            return e
        case let .meta(key, into):
            let e = alloc("meta")
            u32(e, NFTNL_EXPR_META_KEY, key.rawValue)
            u32(e, NFTNL_EXPR_META_DREG, into.rawValue)
            return e
        case let .setMeta(key, from):
            let e = alloc("meta")
            u32(e, NFTNL_EXPR_META_KEY, key.rawValue)
            u32(e, NFTNL_EXPR_META_SREG, from.rawValue)
            return e
        case let .ct(key, direction, into):
            let e = alloc("ct")
            u32(e, NFTNL_EXPR_CT_KEY, key.rawValue)
            u32(e, NFTNL_EXPR_CT_DREG, into.rawValue)
            if let direction { nftnl_expr_set_u8(e, attr(NFTNL_EXPR_CT_DIR), direction.rawValue) }
            return e
        case let .cmp(register, op, data):
            let e = alloc("cmp")
            u32(e, NFTNL_EXPR_CMP_SREG, register.rawValue)
            u32(e, NFTNL_EXPR_CMP_OP, op.rawValue)
            bytes(e, NFTNL_EXPR_CMP_DATA, data)
            return e
        case let .bitwise(source, into, mask, xor):
            let e = alloc("bitwise")
            u32(e, NFTNL_EXPR_BITWISE_SREG, source.rawValue)
            u32(e, NFTNL_EXPR_BITWISE_DREG, into.rawValue)
            u32(e, NFTNL_EXPR_BITWISE_LEN, UInt32(mask.count))
            bytes(e, NFTNL_EXPR_BITWISE_MASK, mask)
            bytes(e, NFTNL_EXPR_BITWISE_XOR, xor)
            return e
        case let .lookup(set, source, into, inverted):
            let e = alloc("lookup")
            nftnl_expr_set_str(e, attr(NFTNL_EXPR_LOOKUP_SET), set)
            u32(e, NFTNL_EXPR_LOOKUP_SREG, source.rawValue)
            if let into { u32(e, NFTNL_EXPR_LOOKUP_DREG, into.rawValue) }
            if inverted { u32(e, NFTNL_EXPR_LOOKUP_FLAGS, 1) }   // NFT_LOOKUP_F_INV
            return e
        case let .immediate(data, into):
            let e = alloc("immediate")
            u32(e, NFTNL_EXPR_IMM_DREG, into.rawValue)
            bytes(e, NFTNL_EXPR_IMM_DATA, data)
            return e
        case let .verdict(verdict):
            let e = alloc("immediate")
            u32(e, NFTNL_EXPR_IMM_DREG, Register.verdict.rawValue)
            u32(e, NFTNL_EXPR_IMM_VERDICT, UInt32(bitPattern: verdict.code))
            if let chain = verdict.chain { nftnl_expr_set_str(e, attr(NFTNL_EXPR_IMM_CHAIN), chain) }
            return e
        case let .nat(nat):
            let e = alloc("nat")
            u32(e, NFTNL_EXPR_NAT_TYPE, nat.type.rawValue)
            u32(e, NFTNL_EXPR_NAT_FAMILY, nat.family.nftnlFamily)
            if let r = nat.addressMin { u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, r.rawValue) }
            if let r = nat.addressMax { u32(e, NFTNL_EXPR_NAT_REG_ADDR_MAX, r.rawValue) }
            if let r = nat.portMin { u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, r.rawValue) }
            if let r = nat.portMax { u32(e, NFTNL_EXPR_NAT_REG_PROTO_MAX, r.rawValue) }
            if !nat.flags.isEmpty { u32(e, NFTNL_EXPR_NAT_FLAGS, nat.flags.rawValue) }
            return e
        case let .masquerade(portMin, portMax, flags):
            let e = alloc("masq")
            if let r = portMin { u32(e, NFTNL_EXPR_MASQ_REG_PROTO_MIN, r.rawValue) }
            if let r = portMax { u32(e, NFTNL_EXPR_MASQ_REG_PROTO_MAX, r.rawValue) }
            if !flags.isEmpty { u32(e, NFTNL_EXPR_MASQ_FLAGS, flags.rawValue) }
            return e
        case let .numgen(mode, modulus, offset, into):
            let e = alloc("numgen")
            u32(e, NFTNL_EXPR_NG_DREG, into.rawValue)
            u32(e, NFTNL_EXPR_NG_MODULUS, modulus)
            u32(e, NFTNL_EXPR_NG_TYPE, mode.rawValue)
            u32(e, NFTNL_EXPR_NG_OFFSET, offset)
            return e
        case .counter:
            return alloc("counter")
        case let .reject(kind):
            let e = alloc("reject")
            u32(e, NFTNL_EXPR_REJECT_TYPE, kind.kernelType)
            switch kind {
            case .icmp(let code): nftnl_expr_set_u8(e, attr(NFTNL_EXPR_REJECT_CODE), code)
            case .icmpx(let code): nftnl_expr_set_u8(e, attr(NFTNL_EXPR_REJECT_CODE), code.rawValue)
            case .tcpReset: break   // the kernel dumps no code for a reset
            }
            return e
        case let .limit(limit):
            let e = alloc("limit")
            nftnl_expr_set_u64(e, attr(NFTNL_EXPR_LIMIT_RATE), limit.rate)
            nftnl_expr_set_u64(e, attr(NFTNL_EXPR_LIMIT_UNIT), limit.unit.rawValue)
            u32(e, NFTNL_EXPR_LIMIT_BURST, limit.burst)
            u32(e, NFTNL_EXPR_LIMIT_TYPE, limit.kind.rawValue)
            if limit.inverted { u32(e, NFTNL_EXPR_LIMIT_FLAGS, 1) }   // NFT_LIMIT_F_INV
            return e
        case let .dynset(d):
            let e = alloc("dynset")
            nftnl_expr_set_str(e, attr(NFTNL_EXPR_DYNSET_SET_NAME), d.set)
            u32(e, NFTNL_EXPR_DYNSET_OP, d.op.rawValue)
            u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, d.keyRegister.rawValue)
            if let r = d.dataRegister { u32(e, NFTNL_EXPR_DYNSET_SREG_DATA, r.rawValue) }
            if let t = d.timeout { nftnl_expr_set_u64(e, attr(NFTNL_EXPR_DYNSET_TIMEOUT), t.milliseconds) }
            return e
        case let .fib(f):
            let e = alloc("fib")
            u32(e, NFTNL_EXPR_FIB_DREG, f.into.rawValue)
            u32(e, NFTNL_EXPR_FIB_RESULT, f.result.rawValue)
            u32(e, NFTNL_EXPR_FIB_FLAGS, f.flags.rawValue)
            return e
        case let .unsupported(name):
            preconditionFailure("cannot write unsupported expression \(name); Transaction validation rejects it")
        }
    }

    /// Decodes one `nftnl_expr` of a parsed rule.
    static func decode(_ e: OpaquePointer) -> Expression {
        let name = nftnlString(nftnl_expr_get_str(e, attr(NFTNL_EXPR_NAME))) ?? "?"
        func has(_ a: Int) -> Bool { nftnl_expr_is_set(e, attr(a)) }
        func u32(_ a: Int) -> UInt32 { nftnl_expr_get_u32(e, attr(a)) }
        func reg(_ a: Int) -> Register { Register(rawValue: u32(a)) }
        func optionalReg(_ a: Int) -> Register? { has(a) ? reg(a) : nil }
        func bytes(_ a: Int) -> [UInt8] { nftnlBytes { nftnl_expr_get(e, attr(a), $0) } ?? [] }
        switch name {
        case "payload":
            guard has(NFTNL_EXPR_PAYLOAD_DREG), let base = PayloadBase(rawValue: u32(NFTNL_EXPR_PAYLOAD_BASE)) else { break }
            return .payload(base, offset: u32(NFTNL_EXPR_PAYLOAD_OFFSET), length: u32(NFTNL_EXPR_PAYLOAD_LEN),
                            into: reg(NFTNL_EXPR_PAYLOAD_DREG))
        case "meta":
            let key = MetaKey(rawValue: u32(NFTNL_EXPR_META_KEY))
            if has(NFTNL_EXPR_META_DREG) { return .meta(key, into: reg(NFTNL_EXPR_META_DREG)) }
            return .setMeta(key, from: reg(NFTNL_EXPR_META_SREG))
        case "ct":
            guard has(NFTNL_EXPR_CT_DREG) else { break }
            let direction = has(NFTNL_EXPR_CT_DIR) ? CtDirection(rawValue: nftnl_expr_get_u8(e, attr(NFTNL_EXPR_CT_DIR))) : nil
            return .ct(CtKey(rawValue: u32(NFTNL_EXPR_CT_KEY)), direction: direction, into: reg(NFTNL_EXPR_CT_DREG))
        case "cmp":
            guard let op = CmpOp(rawValue: u32(NFTNL_EXPR_CMP_OP)) else { break }
            return .cmp(reg(NFTNL_EXPR_CMP_SREG), op, bytes(NFTNL_EXPR_CMP_DATA))
        case "bitwise":
            // Only the boolean form (NFT_BITWISE_BOOL = 0) is modelled; shifts are not.
            if has(NFTNL_EXPR_BITWISE_OP), u32(NFTNL_EXPR_BITWISE_OP) != 0 { break }
            return .bitwise(source: reg(NFTNL_EXPR_BITWISE_SREG), into: reg(NFTNL_EXPR_BITWISE_DREG),
                            mask: bytes(NFTNL_EXPR_BITWISE_MASK), xor: bytes(NFTNL_EXPR_BITWISE_XOR))
        case "lookup":
            let set = nftnlString(nftnl_expr_get_str(e, attr(NFTNL_EXPR_LOOKUP_SET))) ?? ""
            let inverted = has(NFTNL_EXPR_LOOKUP_FLAGS) && u32(NFTNL_EXPR_LOOKUP_FLAGS) & 1 != 0
            return .lookup(set: set, source: reg(NFTNL_EXPR_LOOKUP_SREG), into: optionalReg(NFTNL_EXPR_LOOKUP_DREG), inverted: inverted)
        case "immediate":
            let dreg = reg(NFTNL_EXPR_IMM_DREG)
            if dreg == .verdict {
                let chain = has(NFTNL_EXPR_IMM_CHAIN) ? nftnlString(nftnl_expr_get_str(e, attr(NFTNL_EXPR_IMM_CHAIN))) : nil
                guard let v = Verdict(code: Int32(bitPattern: u32(NFTNL_EXPR_IMM_VERDICT)), chain: chain) else { break }
                return .verdict(v)
            }
            return .immediate(bytes(NFTNL_EXPR_IMM_DATA), into: dreg)
        case "nat":
            guard let type = NATType(rawValue: u32(NFTNL_EXPR_NAT_TYPE)),
                  let family = TableFamily(nfproto: u32(NFTNL_EXPR_NAT_FAMILY)) else { break }
            let flags = has(NFTNL_EXPR_NAT_FLAGS) ? NATFlags(rawValue: u32(NFTNL_EXPR_NAT_FLAGS)).intersection(.modelled) : []
            return .nat(NATExpression(type, family: family, addressMin: optionalReg(NFTNL_EXPR_NAT_REG_ADDR_MIN),
                                      addressMax: optionalReg(NFTNL_EXPR_NAT_REG_ADDR_MAX),
                                      portMin: optionalReg(NFTNL_EXPR_NAT_REG_PROTO_MIN),
                                      portMax: optionalReg(NFTNL_EXPR_NAT_REG_PROTO_MAX), flags: flags))
        case "masq":
            let flags = has(NFTNL_EXPR_MASQ_FLAGS) ? NATFlags(rawValue: u32(NFTNL_EXPR_MASQ_FLAGS)).intersection(.modelled) : []
            let portMin = optionalReg(NFTNL_EXPR_MASQ_REG_PROTO_MIN), portMax = optionalReg(NFTNL_EXPR_MASQ_REG_PROTO_MAX)
            return .masquerade(portMin: portMin, portMax: portMax == portMin ? nil : portMax, flags: flags)
        case "numgen":
            guard let mode = NumgenMode(rawValue: u32(NFTNL_EXPR_NG_TYPE)) else { break }
            return .numgen(mode, modulus: u32(NFTNL_EXPR_NG_MODULUS), offset: u32(NFTNL_EXPR_NG_OFFSET), into: reg(NFTNL_EXPR_NG_DREG))
        case "counter":
            return .counter
        case "reject":
            let code = nftnl_expr_get_u8(e, attr(NFTNL_EXPR_REJECT_CODE))
            switch u32(NFTNL_EXPR_REJECT_TYPE) {
            case 1: return .reject(.tcpReset)
            case 2: return .reject(.icmpx(ICMPXCode(rawValue: code) ?? .portUnreachable))
            default: return .reject(.icmp(code: code))
            }
        case "limit":
            guard let unit = Limit.Unit(rawValue: nftnl_expr_get_u64(e, attr(NFTNL_EXPR_LIMIT_UNIT))),
                  let kind = Limit.Kind(rawValue: u32(NFTNL_EXPR_LIMIT_TYPE)) else { break }
            return .limit(Limit(rate: nftnl_expr_get_u64(e, attr(NFTNL_EXPR_LIMIT_RATE)), per: unit, burst: u32(NFTNL_EXPR_LIMIT_BURST),
                                kind: kind, inverted: has(NFTNL_EXPR_LIMIT_FLAGS) && u32(NFTNL_EXPR_LIMIT_FLAGS) & 1 != 0))
        case "dynset":
            guard let op = DynsetOp(rawValue: u32(NFTNL_EXPR_DYNSET_OP)) else { break }
            // The kernel always dumps a timeout; 0 means none.
            let ms = has(NFTNL_EXPR_DYNSET_TIMEOUT) ? nftnl_expr_get_u64(e, attr(NFTNL_EXPR_DYNSET_TIMEOUT)) : 0
            return .dynset(DynamicSetUpdate(op, set: nftnlString(nftnl_expr_get_str(e, attr(NFTNL_EXPR_DYNSET_SET_NAME))) ?? "",
                                            keyRegister: reg(NFTNL_EXPR_DYNSET_SREG_KEY),
                                            dataRegister: optionalReg(NFTNL_EXPR_DYNSET_SREG_DATA),
                                            timeout: ms == 0 ? nil : .milliseconds(Int64(ms))))
        case "fib":
            guard let result = FibLookup.Result(rawValue: u32(NFTNL_EXPR_FIB_RESULT)) else { break }
            return .fib(FibLookup(flags: FibLookup.Flags(rawValue: u32(NFTNL_EXPR_FIB_FLAGS)), result: result, into: reg(NFTNL_EXPR_FIB_DREG)))
        default:
            break
        }
        return .unsupported(name)
    }
}
