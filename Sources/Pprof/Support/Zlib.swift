import CPprof

/// gzip and zlib through the system zlib.
enum Zlib {
    struct Failure: Error, CustomStringConvertible {
        var operation: String
        var code: Int32
        var description: String { "zlib \(operation) failed (code \(code))" }
    }

    /// gzip-compresses `input` at `level` (Go writes profiles at `BestSpeed`, 1).
    static func gzip(_ input: UnsafeRawBufferPointer, level: Int32 = 1) throws -> [UInt8] {
        var stream = z_stream()
        let status = pp_deflate_init_gzip(&stream, level)
        guard status == Z_OK else { throw Failure(operation: "deflateInit", code: status) }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(input.count))) + 64
        var output = [UInt8](repeating: 0, count: bound)
        let written: Int = try output.withUnsafeMutableBytes { out in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(input.count)
            stream.next_out = out.baseAddress?.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(out.count)
            let result = deflate(&stream, Z_FINISH)
            guard result == Z_STREAM_END else { throw Failure(operation: "deflate", code: result) }
            return out.count - Int(stream.avail_out)
        }
        output.removeSubrange(written...)
        return output
    }

    static func gzip(_ input: [UInt8], level: Int32 = 1) throws -> [UInt8] {
        try input.withUnsafeBytes { try gzip($0, level: level) }
    }

    /// Decompresses zlib or gzip data. `limit` bounds the output so hostile input cannot exhaust
    /// memory.
    static func inflate(
        _ input: UnsafeRawBufferPointer,
        expectedSize: Int? = nil,
        limit: Int = 1 << 31
    ) throws -> [UInt8] {
        var stream = z_stream()
        let status = pp_inflate_init_auto(&stream)
        guard status == Z_OK else { throw Failure(operation: "inflateInit", code: status) }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        output.reserveCapacity(min(expectedSize ?? input.count * 4, limit))
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        while true {
            let (result, produced): (Int32, Int) = chunk.withUnsafeMutableBytes { out in
                stream.next_out = out.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(out.count)
                let result = zlib_inflate(&stream)
                return (result, out.count - Int(stream.avail_out))
            }
            output.append(contentsOf: chunk[0..<produced])
            guard output.count <= limit else {
                throw Failure(operation: "inflate (output over limit)", code: Z_BUF_ERROR)
            }
            if result == Z_STREAM_END { return output }
            guard result == Z_OK else { throw Failure(operation: "inflate", code: result) }
            if stream.avail_in == 0, produced == 0 {
                throw Failure(operation: "inflate (truncated input)", code: Z_BUF_ERROR)
            }
        }
    }

    static func isGzip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }
}

// `inflate` the zlib function is shadowed by `Zlib.inflate` inside the enum.
@inline(__always)
private func zlib_inflate(_ stream: UnsafeMutablePointer<z_stream>) -> Int32 {
    inflate(stream, Z_NO_FLUSH)
}
