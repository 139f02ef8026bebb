/// What `pprof-bench format` needs from inside the module (release builds cannot use
/// `@testable`): real code addresses, the builder with a symbolizer of its own, and raw gzip.
@_spi(Benchmarks) public enum FormatBenchmarkSupport {
    /// A symbolizer with its own caches, so a benchmark can measure cold and warm symbolization.
    public final class Symbols: Sendable {
        let symbolizer = Symbolizer()
        public init() {}
    }

    /// Up to `count` distinct stack entries (code address + 1, like return addresses) in the
    /// executable images whose paths end with one of `imageSuffixes` ("" is the main executable),
    /// each inside a function the symbolizer knows, spread over the images' text.
    public static func codeAddresses(count: Int, imageSuffixes: [String], seed: UInt64) -> [UInt] {
        let images = LoadedImages.current()
        let chosen = imageSuffixes.compactMap { suffix in
            suffix.isEmpty ? images.first(where: \.isMainExecutable) : images.first { $0.path.hasSuffix(suffix) }
        }
        let probe = Symbolizer()
        var random = SplitMix64(seed: seed)
        func next() -> UInt64 { random.next() }
        var result = Set<UInt>()
        let perImage = max(1, count / max(1, chosen.count))
        for image in chosen {
            let ranges = image.executableRanges.filter { !$0.isEmpty }
            let total = ranges.reduce(0) { $0 + UInt64($1.count) }
            guard total > 0 else { continue }
            var found = 0
            var attempts = 0
            while found < perImage && attempts < perImage * 20 {
                attempts += 1
                var offset = next() % total
                for range in ranges {
                    if offset < UInt64(range.count) {
                        let address = range.lowerBound + UInt(offset)
                        if !probe.frames(at: address).isEmpty, result.insert(address + 1).inserted { found += 1 }
                        break
                    }
                    offset -= UInt64(range.count)
                }
            }
        }
        return Array(result).sorted()
    }

    /// A profile built the way every profiler builds one: each distinct entry symbolized once by
    /// `symbols`, mappings from `/proc/self/maps` with build IDs.
    public static func buildProfile(
        sampleTypes: [ProfileData.ValueType],
        periodType: ProfileData.ValueType?,
        period: Int64,
        samples: [(stack: [UInt], values: [Int64], labels: [ProfileData.Label])],
        symbols: Symbols
    ) -> ProfileData {
        var builder = ProfileBuilder(
            sampleTypes: sampleTypes,
            periodType: periodType,
            period: period,
            symbolizer: symbols.symbolizer
        )
        for sample in samples {
            builder.addSample(stack: sample.stack, values: sample.values, labels: sample.labels)
        }
        return builder.build()
    }

    /// gzip at Go's level (1) of bytes already in memory, with zlib's `memLevel` (8 as profiles use).
    public static func gzip(_ bytes: [UInt8], memLevel: Int32 = 8) throws -> [UInt8] {
        try Zlib.gzip(bytes, memLevel: memLevel)
    }
}

/// SplitMix64: a small, fast, seedable generator, so the benchmarks' and tests' random inputs are
/// the same on every run.
@_spi(Benchmarks)
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
