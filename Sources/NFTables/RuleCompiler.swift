import NetAddress

/// Expands statements into kernel expressions the way nft's linearizer does: each statement starts
/// allocating at register 1 again; a concatenation puts field after field in 32-bit registers
/// (NFT_REG32_00, _01, …, each field padded to 4 bytes), which is also how set keys are laid out.
/// Protocol matches a field needs are emitted once per rule, before the first field that needs them.
struct RuleCompiler {
    let family: TableFamily
    private(set) var expressions: [Expression] = []
    private var satisfied: Set<Field.Requirement> = []

    init(family: TableFamily) { self.family = family }

    mutating func compile(_ statements: [Statement]) -> [Expression] {
        for s in statements { add(s) }
        return expressions
    }

    private mutating func require(_ fields: [Field]) {
        for requirement in fields.compactMap(\.requirement) where !satisfied.contains(requirement) {
            satisfied.insert(requirement)
            switch requirement {
            case .ipv4, .ipv6:
                let v4 = requirement == .ipv4
                switch family {
                case .ip, .ip6, .arp:
                    continue   // the family says it already
                case .inet:
                    expressions += [.meta(.nfproto, into: .r1), .cmp(.r1, .eq, [v4 ? 2 : 10])]
                case .bridge, .netdev:
                    expressions += [.meta(.protocol, into: .r1), .cmp(.r1, .eq, v4 ? [0x08, 0x00] : [0x86, 0xdd])]
                }
            case .transport(let p):
                expressions += [.meta(.l4proto, into: .r1), .cmp(.r1, .eq, [p.rawValue])]
            }
        }
    }

    /// Loads `fields` into consecutive 32-bit registers from slot 0; returns the first register.
    private mutating func loadConcatenation(_ fields: [Field]) -> Register {
        var slot = 0
        for f in fields {
            expressions.append(f.load(into: .slot(slot)))
            slot += f.type.registerLength / 4
        }
        precondition(slot <= 16, "a key of \(slot * 4) bytes does not fit the 64 bytes of registers")
        return .slot(0)
    }

    private mutating func add(_ statement: Statement) {
        switch statement {
        case let .compare(field, op, value):
            precondition(value.type.byteLength == field.type.byteLength, "comparing \(field.type) with a \(value.type)")
            require([field])
            expressions += [field.load(into: .r1), .cmp(.r1, op, value.bytes)]
            if op == .eq, field == .l4proto { satisfied.insert(.transport(IPProtocol(rawValue: value.bytes[0]))) }
            if op == .eq, field == .nfproto { satisfied.insert(value.bytes[0] == 2 ? .ipv4 : .ipv6) }
        case let .range(field, low, high):
            precondition(!field.type.isHostOrder, "a range over \(field.type) would compare host-order bytes")
            require([field])
            expressions += [field.load(into: .r1), .cmp(.r1, .gte, low.bytes), .cmp(.r1, .lte, high.bytes)]
        case let .prefix(field, network, length, negated):
            require([field])
            let width = network.bytes.count
            let mask = (0..<width).map { i -> UInt8 in
                let bits = min(8, max(0, length - i * 8))
                return bits == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            }
            expressions.append(field.load(into: .r1))
            if length < width * 8 {
                expressions.append(.bitwise(source: .r1, into: .r1, mask: mask, xor: [UInt8](repeating: 0, count: width)))
            }
            expressions.append(.cmp(.r1, negated ? .neq : .eq, zip(network.bytes, mask).map { $0 & $1 }))
        case let .lookup(key, set, negated):
            require(key)
            let source = loadConcatenation(key)
            expressions.append(.lookup(set: set, source: source, into: nil, inverted: negated))
        case let .verdictMap(key, map):
            require(key)
            let source = loadConcatenation(key)
            expressions.append(.lookup(set: map, source: source, into: .verdict, inverted: false))
        case let .ctState(states):
            expressions += [
                .ct(.state, direction: nil, into: .r1),
                .bitwise(source: .r1, into: .r1, mask: DataValue.hostBytes(states.rawValue), xor: [0, 0, 0, 0]),
                .cmp(.r1, .neq, [0, 0, 0, 0]),
            ]
        case let .nat(type, address, port, flags):
            let natFamily: TableFamily = address.isIPv4 ? .ip : .ip6
            expressions.append(.immediate(address.bytes, into: .r1))
            if let port { expressions.append(.immediate([UInt8(port >> 8), UInt8(port & 0xff)], into: .r2)) }
            expressions.append(.nat(NATExpression(type, family: natFamily, addressMin: .r1, portMin: port == nil ? nil : .r2, flags: flags)))
        case let .natMap(type, addressFamily, key, map, withPort):
            require(key)
            let source = loadConcatenation(key)
            expressions.append(.lookup(set: map, source: source, into: .r1, inverted: false))
            // The value is `addr . port`: the port starts in the 32-bit register after the address.
            let portRegister: Register = .slot(addressFamily.byteCount / 4)
            expressions.append(.nat(NATExpression(type, family: addressFamily == .ipv4 ? .ip : .ip6, addressMin: .r1,
                                                  portMin: withPort ? portRegister : nil)))
        case let .masquerade(flags):
            expressions.append(.masquerade(portMin: nil, portMax: nil, flags: flags))
        case .counter:
            expressions.append(.counter)
        case let .limit(limit):
            expressions.append(.limit(limit))
        case let .reject(kind):
            expressions.append(.reject(kind))
        case let .verdict(v):
            expressions.append(.verdict(v))
        case let .setMark(mark):
            expressions += [.immediate(DataValue.hostBytes(mark), into: .r1), .setMeta(.mark, from: .r1)]
        case let .updateSet(op, key, set, timeout):
            require(key)
            let source = loadConcatenation(key)
            expressions.append(.dynset(DynamicSetUpdate(op, set: set, keyRegister: source, timeout: timeout)))
        case let .expressions(list):
            expressions += list
        }
    }
}
