import CNftnl

/// Sets, maps and their elements ↔ libnftnl. Key and value bytes follow nft's layout: a single field
/// is its own width, a concatenation pads every field to 32 bits (`[DataType].kernelLength`).
enum SetCodec {
    static let mapFlag: UInt32 = 0x8      // NFT_SET_MAP
    static let concatFlag: UInt32 = 0x80  // NFT_SET_CONCAT
    static let intervalEndFlag: UInt32 = 0x1   // NFT_SET_ELEM_INTERVAL_END

    /// A set object naming table and set only (for delete, flush and element messages).
    static func makeReference(_ table: Table, _ name: String) -> OpaquePointer {
        let o = nftnl_set_alloc()!
        nftnl_set_set_str(o, attr(NFTNL_SET_TABLE), table.name)
        nftnl_set_set_str(o, attr(NFTNL_SET_NAME), name)
        nftnl_set_set_u32(o, attr(NFTNL_SET_FAMILY), table.family.nftnlFamily)
        return o
    }

    static func makeSet(_ s: NFTSet, id: UInt32) -> OpaquePointer {
        let o = makeReference(s.table, s.name)
        var flags = s.flags.rawValue
        if s.isMap { flags |= mapFlag }
        if s.isConcatInterval { flags |= concatFlag }
        nftnl_set_set_u32(o, attr(NFTNL_SET_FLAGS), flags)
        nftnl_set_set_u32(o, attr(NFTNL_SET_KEY_TYPE), s.keyType.kernelType)
        nftnl_set_set_u32(o, attr(NFTNL_SET_KEY_LEN), UInt32(s.keyType.kernelLength))
        if let mapping = s.mapping {
            nftnl_set_set_u32(o, attr(NFTNL_SET_DATA_TYPE), mapping.kernelType)
            nftnl_set_set_u32(o, attr(NFTNL_SET_DATA_LEN), UInt32(mapping.kernelLength))
        }
        nftnl_set_set_u32(o, attr(NFTNL_SET_ID), id)
        if let timeout = s.timeout { nftnl_set_set_u64(o, attr(NFTNL_SET_TIMEOUT), timeout.milliseconds) }
        if let size = s.maxElements { nftnl_set_set_u32(o, attr(NFTNL_SET_DESC_SIZE), size) }
        if s.isConcatInterval {
            // The pipapo backend needs each field's width (NFTA_SET_DESC_CONCAT); libnftnl takes them as u8s.
            let lengths = s.keyType.map { UInt8($0.byteLength) }
            _ = lengths.withUnsafeBytes { nftnl_set_set_data(o, attr(NFTNL_SET_DESC_CONCAT), $0.baseAddress, UInt32($0.count)) }
        }
        return o
    }

    /// Decodes a set from a GETSET dump; nil for anonymous sets and key types this module cannot read.
    static func decodeSet(_ o: OpaquePointer) -> NFTSet? {
        let flags = nftnl_set_get_u32(o, attr(NFTNL_SET_FLAGS))
        guard flags & 0x1 == 0,   // NFT_SET_ANONYMOUS: owned by a rule, not part of the model
              let family = TableFamily(nfproto: nftnl_set_get_u32(o, attr(NFTNL_SET_FAMILY))),
              let tableName = nftnlString(nftnl_set_get_str(o, attr(NFTNL_SET_TABLE))),
              let name = nftnlString(nftnl_set_get_str(o, attr(NFTNL_SET_NAME))),
              let key = [DataType](kernelType: nftnl_set_get_u32(o, attr(NFTNL_SET_KEY_TYPE)),
                                   length: Int(nftnl_set_get_u32(o, attr(NFTNL_SET_KEY_LEN))))
        else { return nil }
        var mapping: SetMapping?
        if flags & mapFlag != 0 {
            let dataType = nftnl_set_get_u32(o, attr(NFTNL_SET_DATA_TYPE))
            if dataType == 0xffff_ff00 {
                mapping = .verdict
            } else {
                guard let types = [DataType](kernelType: dataType, length: Int(nftnl_set_get_u32(o, attr(NFTNL_SET_DATA_LEN)))) else { return nil }
                mapping = .data(types)
            }
        }
        let timeout = nftnl_set_is_set(o, attr(NFTNL_SET_TIMEOUT)) ? nftnl_set_get_u64(o, attr(NFTNL_SET_TIMEOUT)) : 0
        let size = nftnl_set_is_set(o, attr(NFTNL_SET_DESC_SIZE)) ? nftnl_set_get_u32(o, attr(NFTNL_SET_DESC_SIZE)) : 0
        return NFTSet(Table(family, tableName), name, key: key, mapping: mapping,
                      flags: SetFlags(rawValue: flags).intersection(.modelled),
                      timeout: timeout == 0 ? nil : .milliseconds(Int64(timeout)), maxElements: size == 0 ? nil : size)
    }

    // MARK: - Elements

    /// The bytes of a key or value: one field as is, a concatenation with each field padded to 32 bits.
    static func bytes(_ values: [DataValue]) -> [UInt8] {
        guard values.count > 1 else { return values.first?.bytes ?? [] }
        var out: [UInt8] = []
        for v in values {
            out += v.bytes
            out += [UInt8](repeating: 0, count: v.type.registerLength - v.type.byteLength)
        }
        return out
    }

    static func values(_ bytes: [UInt8], _ types: [DataType]) -> [DataValue]? {
        guard bytes.count == types.kernelLength else { return nil }
        if types.count == 1 { return [DataValue(type: types[0], bytes: bytes)] }
        var out: [DataValue] = []
        var offset = 0
        for t in types {
            out.append(DataValue(type: t, bytes: Array(bytes[offset..<(offset + t.byteLength)])))
            offset += t.registerLength
        }
        return out
    }

    /// Big-endian increment; nil when it overflows (the range reaches the top of the type).
    static func successor(_ bytes: [UInt8]) -> [UInt8]? {
        var b = bytes
        for i in b.indices.reversed() {
            if b[i] == 0xff { b[i] = 0; continue }
            b[i] += 1
            return b
        }
        return nil
    }

    /// The kernel elements for one `SetElement`. A range in a one-field interval set (the rbtree
    /// backend) is two elements: the start, and `end + 1` flagged INTERVAL_END; a concatenated
    /// interval set (pipapo) takes one element with KEY and KEY_END (inclusive).
    static func makeElements(_ e: SetElement, in s: NFTSet) -> [OpaquePointer] {
        let start = nftnl_set_elem_alloc()!
        setBytes(start, NFTNL_SET_ELEM_KEY, bytes(e.key))
        if s.isConcatInterval { setBytes(start, NFTNL_SET_ELEM_KEY_END, bytes(e.keyEnd ?? e.key)) }
        switch e.value {
        case .verdict(let v)?:
            nftnl_set_elem_set_u32(start, attr(NFTNL_SET_ELEM_VERDICT), UInt32(bitPattern: v.code))
            if let chain = v.chain { nftnl_set_elem_set_str(start, attr(NFTNL_SET_ELEM_CHAIN), chain) }
        case .data(let d)?:
            setBytes(start, NFTNL_SET_ELEM_DATA, bytes(d))
        case nil:
            break
        }
        if let t = e.timeout { nftnl_set_elem_set_u64(start, attr(NFTNL_SET_ELEM_TIMEOUT), t.milliseconds) }
        guard s.flags.contains(.interval), !s.isConcatInterval,
              let end = successor(bytes(e.keyEnd ?? e.key)) else { return [start] }
        let endElement = nftnl_set_elem_alloc()!
        setBytes(endElement, NFTNL_SET_ELEM_KEY, end)
        nftnl_set_elem_set_u32(endElement, attr(NFTNL_SET_ELEM_FLAGS), intervalEndFlag)
        return [start, endElement]
    }

    private static func setBytes(_ o: OpaquePointer, _ a: Int, _ value: [UInt8]) {
        _ = value.withUnsafeBytes { nftnl_set_elem_set(o, attr(a), $0.baseAddress, UInt32($0.count)) }
    }

    /// An upper bound of one element's size in a NEWSETELEM message, to split big element lists.
    static func estimatedSize(_ e: SetElement, in s: NFTSet) -> Int {
        let key = 8 + ((s.keyType.kernelLength + 3) & ~3)
        var size = 4 + 2 * (key + 8) + 12 + 8   // nest, key (+end or end element), timeout, flags
        switch e.value {
        case .verdict(let v)?: size += 24 + ((v.chain?.utf8.count ?? 0) + 4) & ~3
        case .data(let d)?: size += 8 + ((bytes(d).count + 3) & ~3)
        case nil: break
        }
        return size + 16
    }

    /// Decodes the elements of a set object filled by `nftnl_set_elems_nlmsg_parse`.
    static func decodeElements(_ o: OpaquePointer, of s: NFTSet) -> Set<SetElement> {
        struct Raw { var key: [UInt8]; var keyEnd: [UInt8]?; var isEnd: Bool; var value: ElementValue?; var timeout: Duration? }
        var raws: [Raw] = []
        let iter = nftnl_set_elems_iter_create(o)
        defer { nftnl_set_elems_iter_destroy(iter) }
        while let e = nftnl_set_elems_iter_next(iter) {
            func has(_ a: Int) -> Bool { nftnl_set_elem_is_set(e, attr(a)) }
            func data(_ a: Int) -> [UInt8]? { has(a) ? nftnlBytes { nftnl_set_elem_get(e, attr(a), $0) } : nil }
            var value: ElementValue?
            if has(NFTNL_SET_ELEM_VERDICT) {
                let chain = has(NFTNL_SET_ELEM_CHAIN) ? nftnlString(nftnl_set_elem_get_str(e, attr(NFTNL_SET_ELEM_CHAIN))) : nil
                value = Verdict(code: Int32(bitPattern: nftnl_set_elem_get_u32(e, attr(NFTNL_SET_ELEM_VERDICT))), chain: chain).map { .verdict($0) }
            } else if case .data(let types)? = s.mapping, let d = data(NFTNL_SET_ELEM_DATA), let vs = values(d, types) {
                value = .data(vs)
            }
            // The kernel reports a per-element timeout only when it differs from the set's default.
            var timeout: Duration?
            if has(NFTNL_SET_ELEM_TIMEOUT) {
                let ms = nftnl_set_elem_get_u64(e, attr(NFTNL_SET_ELEM_TIMEOUT))
                let t = Duration.milliseconds(Int64(ms))
                if ms != 0, t != s.timeout { timeout = t }
            }
            let flags = has(NFTNL_SET_ELEM_FLAGS) ? nftnl_set_elem_get_u32(e, attr(NFTNL_SET_ELEM_FLAGS)) : 0
            raws.append(Raw(key: data(NFTNL_SET_ELEM_KEY) ?? [], keyEnd: data(NFTNL_SET_ELEM_KEY_END),
                            isEnd: flags & intervalEndFlag != 0, value: value, timeout: timeout))
        }

        var out = Set<SetElement>()
        func add(_ key: [UInt8], _ end: [UInt8]?, _ r: Raw) {
            guard let k = values(key, s.keyType) else { return }
            let e = end.flatMap { values($0, s.keyType) }
            out.insert(SetElement(k, to: e, value: r.value, timeout: r.timeout))
        }
        guard s.flags.contains(.interval), !s.isConcatInterval else {
            for r in raws where !r.isEnd { add(r.key, r.keyEnd, r) }
            return out
        }
        // rbtree: walk in key order; each start runs until the next end marker (exclusive).
        let sorted = raws.sorted { a, b in a.key == b.key ? (a.isEnd && !b.isEnd) : a.key.lexicographicallyPrecedes(b.key) }
        var i = 0
        while i < sorted.count {
            let r = sorted[i]
            i += 1
            if r.isEnd { continue }   // nft's leading "0 interval end" marker, or a stray end
            if i < sorted.count, sorted[i].isEnd {
                add(r.key, predecessor(sorted[i].key), r)
                i += 1
            } else {
                add(r.key, [UInt8](repeating: 0xff, count: r.key.count), r)   // open to the top of the type
            }
        }
        return out
    }

    static func predecessor(_ bytes: [UInt8]) -> [UInt8] {
        var b = bytes
        for i in b.indices.reversed() {
            if b[i] == 0 { b[i] = 0xff; continue }
            b[i] -= 1
            return b
        }
        return b
    }
}
