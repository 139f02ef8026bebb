/// A bounds-checked little-endian reader over raw bytes, shared by the ELF, DWARF, unwind-table
/// and protobuf readers. Reading past the end throws `ByteReader.Truncated`; nothing traps on bad
/// input.
struct ByteReader {
    struct Truncated: Error, CustomStringConvertible {
        var offset: Int
        var description: String { "input ends early (at byte \(offset))" }
    }

    struct Malformed: Error, CustomStringConvertible {
        var offset: Int
        var reason: String
        var description: String { "\(reason) (at byte \(offset))" }
    }

    let bytes: UnsafeRawBufferPointer
    var offset: Int = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var remaining: Int { bytes.count - offset }
    var isAtEnd: Bool { offset >= bytes.count }

    @inline(__always)
    private mutating func advance(_ count: Int) throws -> Int {
        guard count >= 0, offset >= 0, count <= bytes.count - offset else { throw Truncated(offset: offset) }
        let start = offset
        offset += count
        return start
    }

    mutating func u8() throws -> UInt8 { bytes[try advance(1)] }
    mutating func u16() throws -> UInt16 {
        UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: try advance(2), as: UInt16.self))
    }
    mutating func u32() throws -> UInt32 {
        UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: try advance(4), as: UInt32.self))
    }
    mutating func u24() throws -> UInt64 {
        let start = try advance(3)
        return UInt64(bytes[start]) | UInt64(bytes[start + 1]) << 8 | UInt64(bytes[start + 2]) << 16
    }
    mutating func u64() throws -> UInt64 {
        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: try advance(8), as: UInt64.self))
    }
    mutating func i8() throws -> Int8 { Int8(bitPattern: try u8()) }
    mutating func i16() throws -> Int16 { Int16(bitPattern: try u16()) }
    mutating func i32() throws -> Int32 { Int32(bitPattern: try u32()) }
    mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }

    /// An unsigned integer of `size` bytes (1, 2, 4 or 8).
    mutating func unsigned(size: Int) throws -> UInt64 {
        switch size {
        case 1: return UInt64(try u8())
        case 2: return UInt64(try u16())
        case 4: return UInt64(try u32())
        case 8: return try u64()
        default: throw Malformed(offset: offset, reason: "unsupported integer size \(size)")
        }
    }

    /// Unsigned LEB128 (DWARF) — the same encoding as a protobuf varint.
    mutating func uleb128() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try u8()
            if shift < 64 { result |= UInt64(byte & 0x7f) << shift }
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift >= 70 { throw Malformed(offset: offset, reason: "varint longer than 10 bytes") }
        }
    }

    mutating func sleb128() throws -> Int64 {
        var result: Int64 = 0
        var shift: Int64 = 0
        while true {
            let byte = try u8()
            if shift < 64 { result |= Int64(byte & 0x7f) << shift }
            shift += 7
            if byte & 0x80 == 0 {
                // Sign-extend. (Not `-(1 << shift)`: that overflows, and traps, for shift 63.)
                if shift < 64, byte & 0x40 != 0 { result |= Int64(bitPattern: UInt64.max << UInt64(shift)) }
                return result
            }
            if shift >= 70 { throw Malformed(offset: offset, reason: "varint longer than 10 bytes") }
        }
    }

    mutating func bytes(_ count: Int) throws -> UnsafeRawBufferPointer {
        let start = try advance(count)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<start + count])
    }

    /// A NUL-terminated string; the terminator is consumed.
    mutating func cString() throws -> String {
        let rest = bytes[offset...]
        guard let end = rest.firstIndex(of: 0) else { throw Truncated(offset: offset) }
        let string = String(decoding: bytes[offset..<end], as: UTF8.self)
        offset = end + 1
        return string
    }
}
