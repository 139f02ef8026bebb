import Testing

@testable import Pprof

/// LEB128 edge cases the DWARF reader meets in real binaries (glibc has 9-byte signed constants).
@Suite struct ByteReaderLEB128Tests {
    static func signed(_ value: Int64) -> [UInt8] {
        var value = value
        var bytes: [UInt8] = []
        while true {
            let byte = UInt8(value & 0x7f)
            value >>= 7
            let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0)
            bytes.append(done ? byte : byte | 0x80)
            if done { return bytes }
        }
    }

    static func unsigned(_ value: UInt64) -> [UInt8] {
        var value = value
        var bytes: [UInt8] = []
        repeat {
            let byte = UInt8(value & 0x7f)
            value >>= 7
            bytes.append(value == 0 ? byte : byte | 0x80)
        } while value != 0
        return bytes
    }

    @Test(
        arguments: [
            0, 1, -1, 63, -64, 64, -65, .max, .min, .min / 2, .min / 2 - 1, -(1 << 55), 1 << 62, -(1 << 62) - 3,
        ] as [Int64]
    )
    func signedRoundTrips(_ value: Int64) throws {
        let bytes = Self.signed(value)
        var reader = ByteReader(UnsafeRawBufferPointer(start: nil, count: 0))
        let decoded = try bytes.withUnsafeBytes { buffer in
            reader = ByteReader(buffer)
            return try reader.sleb128()
        }
        #expect(decoded == value, "\(bytes.count) bytes")
        #expect(reader.offset == bytes.count)
    }

    @Test(arguments: [0, 1, 127, 128, UInt64(Int64.max), .max, 1 << 63] as [UInt64])
    func unsignedRoundTrips(_ value: UInt64) throws {
        let bytes = Self.unsigned(value)
        #expect(
            try bytes.withUnsafeBytes {
                var reader = ByteReader($0); return try reader.uleb128()
            } == value
        )
    }

    @Test func overlongEncodingsThrow() {
        let overlong = [UInt8](repeating: 0xff, count: 11) + [0x01]
        overlong.withUnsafeBytes { buffer in
            var reader = ByteReader(buffer)
            #expect(throws: (any Error).self) { try reader.sleb128() }
            reader = ByteReader(buffer)
            #expect(throws: (any Error).self) { try reader.uleb128() }
        }
        ([0x80, 0x80] as [UInt8]).withUnsafeBytes { buffer in
            var reader = ByteReader(buffer)
            #expect(throws: (any Error).self) { try reader.sleb128() }
        }
    }
}
