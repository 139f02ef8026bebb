// Issue 18 part 4: the compressors a profile's gzip could come from, on the format benchmark's
// protobuf bytes, side by side: zlib level 1 as the encoder uses it (memLevel 8, streamed), zlib
// level 1 with memLevel 9, and libdeflate level 1 (loaded with dlopen where the system has it;
// it compresses a whole buffer at once, so either the whole protobuf is held or each 1 MiB is a
// gzip member of its own). Every output is read back through `ProfileData(decoding:)`.
import Foundation
import Glibc
@_spi(Benchmarks) import Pprof

enum CompressorBenchmarks {
    static func run(raw: [UInt8], samples: Int) throws {
        print("  compressors on the \(FormatBenchmarks.kib(raw.count)) of protobuf (CPU time, median and min of 7):")
        func report(_ name: String, _ timing: FormatBenchmarks.Timing, _ output: [UInt8], note: String) throws {
            let decoded = try ProfileData(decoding: output)
            guard decoded.samples.count == samples else {
                throw PprofError.malformedProfile("\(name): \(decoded.samples.count) samples read back, not \(samples)")
            }
            print(
                "    \(name): \(FormatBenchmarks.ms(timing)) → \(FormatBenchmarks.kib(output.count)); \(note)"
            )
        }
        var output: [UInt8] = []
        let zlib8 = try FormatBenchmarks.timing(FormatBenchmarks.repetitions) {
            output = try FormatBenchmarkSupport.gzip(raw)
        }
        try report(
            "zlib 1, memLevel 8 (the encoder's)",
            zlib8,
            output,
            note: "streams (its peak memory is the streaming encode's below)"
        )
        let zlib9 = try FormatBenchmarks.timing(FormatBenchmarks.repetitions) {
            output = try FormatBenchmarkSupport.gzip(raw, memLevel: 9)
        }
        try report("zlib 1, memLevel 9", zlib9, output, note: "streams")
        guard let deflate = Libdeflate() else {
            print("    libdeflate: not measured (libdeflate.so.0 is not on this system)")
            return
        }
        let whole = FormatBenchmarks.timing(FormatBenchmarks.repetitions) { output = deflate.gzip(raw[...]) }
        try report(
            "libdeflate 1, whole",
            whole,
            output,
            note: "holds the whole protobuf (the 'whole' peak below) and its output"
        )
        let membered = FormatBenchmarks.timing(FormatBenchmarks.repetitions) {
            output = []
            var start = 0
            while start < raw.count {
                let end = min(start + 1 << 20, raw.count)
                output += deflate.gzip(raw[start..<end])
                start = end
            }
        }
        try report(
            "libdeflate 1, a gzip member per MiB",
            membered,
            output,
            note: "concatenated members: readers that stop after the first member would lose data"
        )
    }

    /// libdeflate's gzip compressor, found at run time (a benchmark of it must not make the
    /// package need it).
    struct Libdeflate {
        typealias Allocate = @convention(c) (Int32) -> OpaquePointer?
        typealias Bound = @convention(c) (OpaquePointer?, Int) -> Int
        typealias Compress =
            @convention(c) (OpaquePointer?, UnsafeRawPointer?, Int, UnsafeMutableRawPointer?, Int) -> Int
        let compressor: OpaquePointer
        let bound: Bound
        let compress: Compress

        init?() {
            guard let library = dlopen("libdeflate.so.0", RTLD_NOW),
                let allocate = dlsym(library, "libdeflate_alloc_compressor"),
                let bound = dlsym(library, "libdeflate_gzip_compress_bound"),
                let compress = dlsym(library, "libdeflate_gzip_compress"),
                let compressor = unsafeBitCast(allocate, to: Allocate.self)(1)
            else { return nil }
            self.compressor = compressor
            self.bound = unsafeBitCast(bound, to: Bound.self)
            self.compress = unsafeBitCast(compress, to: Compress.self)
        }

        func gzip(_ input: ArraySlice<UInt8>) -> [UInt8] {
            var output = [UInt8](repeating: 0, count: bound(compressor, input.count))
            let produced = input.withUnsafeBytes { input in
                output.withUnsafeMutableBytes {
                    compress(compressor, input.baseAddress, input.count, $0.baseAddress, $0.count)
                }
            }
            output.removeLast(output.count - produced)
            return output
        }
    }
}
