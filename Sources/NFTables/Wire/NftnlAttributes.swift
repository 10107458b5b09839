import CNftnl

// libnftnl declares its attribute numbers in named enums (imported as structs) and anonymous ones
// (imported as Int); these turn either into the uint16_t its setters take.
@inline(__always) func attr(_ value: Int) -> UInt16 { UInt16(value) }
@inline(__always) func attr<T: RawRepresentable>(_ value: T) -> UInt16 where T.RawValue: BinaryInteger { UInt16(value.rawValue) }

/// nf_tables message types (enum nf_tables_msg_types).
enum NFTMessage: UInt16 {
    case newTable = 0, getTable, delTable, newChain, getChain, delChain, newRule, getRule, delRule
    case newSet, getSet, delSet, newSetElem, getSetElem, delSetElem
}

/// The NFPROTO_* number of a table family, as libnftnl's FAMILY attributes take it.
extension TableFamily {
    var nftnlFamily: UInt32 { UInt32(nfproto) }
}

/// Copies a libnftnl string (owned by the object) into a Swift String.
func nftnlString(_ pointer: UnsafePointer<CChar>?) -> String? {
    pointer.map { String(cString: $0) }
}

/// Reads a byte attribute through a getter of libnftnl's `const void *get(obj, attr, uint32_t *len)` shape.
func nftnlBytes(_ get: (UnsafeMutablePointer<UInt32>) -> UnsafeRawPointer?) -> [UInt8]? {
    var length: UInt32 = 0
    guard let p = get(&length) else { return nil }
    return Array(UnsafeRawBufferPointer(start: p, count: Int(length)))
}
