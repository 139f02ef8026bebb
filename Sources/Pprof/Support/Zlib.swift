import CPprof

/// gzip and zlib through the system zlib.
enum Zlib {
    struct Failure: Error, CustomStringConvertible {
        var operation: String
        var code: Int32
        var description: String { "zlib \(operation) failed (code \(code))" }
    }

    /// gzip-compresses `input` at `level` (Go writes profiles at `BestSpeed`, 1).
    static func gzip(_ input: UnsafeRawBufferPointer, level: Int32 = 1, memLevel: Int32 = 8) throws -> [UInt8] {
        var output: [UInt8] = []
        let compressor = try GzipCompressor(level: level, memLevel: memLevel)
        try compressor.compress(input) { output.append(contentsOf: $0) }
        try compressor.finish { output.append(contentsOf: $0) }
        return output
    }

    static func gzip(_ input: [UInt8], level: Int32 = 1, memLevel: Int32 = 8) throws -> [UInt8] {
        try input.withUnsafeBytes { try gzip($0, level: level, memLevel: memLevel) }
    }

    /// Decompresses zlib or gzip data; concatenated gzip members are read one after another, as
    /// Go's `gzip.Reader` does. `limit` bounds the output so hostile input (a "gzip bomb") cannot
    /// exhaust memory.
    static func inflate(
        _ input: UnsafeRawBufferPointer,
        expectedSize: Int? = nil,
        limit: Int = 1 << 31
    ) throws -> [UInt8] {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deallocate() }
        // zlib keeps a pointer back to the stream, so it must not move: it lives on the heap.
        let status = pp_inflate_init_auto(stream)
        guard status == Z_OK else { throw Failure(operation: "inflateInit", code: status) }
        defer { inflateEnd(stream) }
        var output: [UInt8] = []
        output.reserveCapacity(max(0, min(expectedSize ?? input.count * 4, limit, 64 << 20)))
        let chunkSize = 64 * 1024
        let chunk = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize)
        defer { chunk.deallocate() }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(clamping: input.count)
        while true {
            stream.pointee.next_out = chunk
            stream.pointee.avail_out = uInt(chunkSize)
            let result = zlibInflate(stream)
            let produced = chunkSize - Int(stream.pointee.avail_out)
            guard produced <= limit - output.count else {
                throw Failure(operation: "inflate (output over \(limit) bytes)", code: Z_BUF_ERROR)
            }
            output.append(contentsOf: UnsafeBufferPointer(start: chunk, count: produced))
            if result == Z_STREAM_END {
                // Another gzip member may follow (Go reads multistream input by default).
                let rest = Int(stream.pointee.avail_in)
                guard rest >= 2, let next = stream.pointee.next_in, next[0] == 0x1f, next[1] == 0x8b else {
                    return output
                }
                let reset = inflateReset(stream)
                guard reset == Z_OK else { throw Failure(operation: "inflateReset", code: reset) }
                continue
            }
            guard result == Z_OK else { throw Failure(operation: "inflate", code: result) }
            if stream.pointee.avail_in == 0, produced == 0 {
                throw Failure(operation: "inflate (truncated input)", code: Z_BUF_ERROR)
            }
        }
    }

    static func isGzip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }
}

/// A streaming gzip compressor: bytes go in piece by piece and compressed output comes out in
/// chunks of at most `chunkSize` bytes, so neither the input nor the output is ever held whole.
/// The header is Go's (no name, zero mtime).
final class GzipCompressor {
    private let stream: UnsafeMutablePointer<z_stream>
    private let output: UnsafeMutablePointer<UInt8>
    private let chunkSize: Int
    private var isFinished = false

    init(level: Int32 = 1, memLevel: Int32 = 8, chunkSize: Int = 64 * 1024) throws {
        self.chunkSize = chunkSize
        // zlib keeps a pointer back to the stream, so it must not move: it lives on the heap.
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = pp_deflate_init_gzip(stream, level, memLevel)
        guard status == Z_OK else {
            stream.deallocate()
            throw Zlib.Failure(operation: "deflateInit", code: status)
        }
        output = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize)
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
        output.deallocate()
    }

    /// Compresses `input`; full output chunks are handed to `emit` (whose errors are rethrown).
    func compress(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !isFinished else { throw Zlib.Failure(operation: "deflate after finish", code: Z_STREAM_ERROR) }
        guard let base = input.baseAddress, input.count > 0 else { return }
        var remaining = input.count
        var next = base.assumingMemoryBound(to: Bytef.self)
        while remaining > 0 {
            // avail_in is 32-bit; feed huge inputs in slices.
            let slice = min(remaining, Int(UInt32.max))
            stream.pointee.next_in = UnsafeMutablePointer(mutating: next)
            stream.pointee.avail_in = uInt(slice)
            try run(Z_NO_FLUSH, emitFullChunksOnly: true, emit: emit)
            next += slice
            remaining -= slice
        }
    }

    /// Flushes everything, writes the gzip trailer and hands the rest of the output to `emit`.
    func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !isFinished else { return }
        stream.pointee.next_in = nil
        stream.pointee.avail_in = 0
        try run(Z_FINISH, emitFullChunksOnly: false, emit: emit)
        isFinished = true
    }

    private func run(
        _ flush: Int32,
        emitFullChunksOnly: Bool,
        emit: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        while true {
            if stream.pointee.next_out == nil {
                stream.pointee.next_out = output
                stream.pointee.avail_out = uInt(chunkSize)
            }
            let result = deflate(stream, flush)
            guard result == Z_OK || result == Z_STREAM_END || result == Z_BUF_ERROR else {
                throw Zlib.Failure(operation: "deflate", code: result)
            }
            let pending = chunkSize - Int(stream.pointee.avail_out)
            let full = stream.pointee.avail_out == 0
            if full || (!emitFullChunksOnly && pending > 0) {
                stream.pointee.next_out = nil
                try emit(UnsafeRawBufferPointer(start: output, count: pending))
            }
            if flush == Z_FINISH {
                if result == Z_STREAM_END { return }
                continue
            }
            // Z_NO_FLUSH: done once the input is consumed and the output buffer has room left.
            if stream.pointee.avail_in == 0 && !full { return }
        }
    }
}

// `inflate` the zlib function is shadowed by `Zlib.inflate` inside the enum.
@inline(__always)
private func zlibInflate(_ stream: UnsafeMutablePointer<z_stream>) -> Int32 {
    inflate(stream, Z_NO_FLUSH)
}
