// The pprof format: building (symbolization reported apart), encoding, decoding and the memory
// an encode needs, for a profile of 100k samples over 10k distinct stacks of real addresses of
// this process (depth 20–40). Budget (DESIGN.md): encode ≤ 100 ms with ≤ 32 MiB extra memory.
// Times are CPU time of the measuring thread (everything here is single-threaded): median (and
// minimum) of 7 runs.
import Foundation
import Glibc
@_spi(Benchmarks) import Pprof

enum FormatBenchmarks {
    static let sampleCount = 100_000
    static let stackCount = 10_000
    static let repetitions = 7

    typealias SyntheticSample = (stack: [UInt], values: [Int64], labels: [ProfileData.Label])

    /// The benchmark's samples: 100k over 10k stacks of real addresses, with route/tenant labels.
    static func syntheticSamples() -> (
        types: [ProfileData.ValueType], samples: [SyntheticSample], description: String
    ) {
        // Real code addresses of this process, spread over the executable and the big libraries.
        let libraries = ["", "/libswiftCore.so", "/libFoundation.so", "/libFoundationEssentials.so", "/libc.so.6"]
        let pool = FormatBenchmarkSupport.codeAddresses(count: 15_000, imageSuffixes: libraries, seed: 1)
        var rng = SplitMix64(seed: 2)
        let shuffled = pool.shuffled(using: &rng)

        // Stacks shaped like a call tree: few distinct frames near the root, many near the leaves.
        var stacks: [[UInt]] = []
        var seen = Set<[UInt]>()
        while stacks.count < stackCount {
            let depth = Int.random(in: 20...40, using: &rng)
            var rootFirst: [UInt] = []
            for level in 0..<depth {
                let width = min(shuffled.count, 8 + level * level * 12)
                rootFirst.append(shuffled[Int.random(in: 0..<width, using: &rng)])
            }
            let stack = Array(rootFirst.reversed())
            if seen.insert(stack).inserted { stacks.append(stack) }
        }
        // 100k samples: each stack with 10 label sets, as a CPU profile keys samples by both. A
        // stack's samples are 10,000 apart, as they come out of a hash table (the builder groups them).
        let routes = (0..<5).map { ProfileData.Label(key: "route", string: "/api/v1/resource\($0)") }
        let tenants = (0..<2).map { ProfileData.Label(key: "tenant", string: "tenant-\($0)") }
        var samples: [SyntheticSample] = []
        samples.reserveCapacity(sampleCount)
        for index in 0..<sampleCount {
            let count = Int64.random(in: 1...5, using: &rng)
            let labels = [routes[index % 5], tenants[(index / 5) % 2]]
            samples.append((stacks[index % stackCount], [count, count * 10_000_000], labels))
        }
        let distinctAddresses = Set(stacks.joined()).count
        let types = [ProfileData.ValueType(type: "samples", unit: "count"), .init(type: "cpu", unit: "nanoseconds")]
        let description =
            ("  \(sampleCount) samples over \(stackCount) stacks (depth 20–40), \(distinctAddresses) distinct addresses"
                + " from \(pool.count) picked in: executable, libswiftCore, Foundation, FoundationEssentials, libc")
        return (types, samples, description)
    }

    static func run() throws {
        let (types, samples, description) = syntheticSamples()
        print(description)

        // `PPROF_BENCH_FORMAT_PHASE=build|encode|protobuf|decode` repeats one phase (for perf).
        if let phase = ProcessInfo.processInfo.environment["PPROF_BENCH_FORMAT_PHASE"] {
            try repeatPhase(phase, types: types, samples: samples)
            return
        }

        // Building: the first time symbolizes every distinct address; then only the builder's work.
        let symbols = FormatBenchmarkSupport.Symbols()
        let (coldBuild, profile) = measure { build(samples, types, symbols) }
        var built: [ProfileData] = []
        let warmBuild = timing(repetitions) { built.append(build(samples, types, symbols)) }
        built.removeAll()
        print(
            "  build: first (symbolizing \(profile.locations.count) locations, \(profile.functions.count) functions) "
                + "\(ms(coldBuild)), again with symbols cached \(ms(warmBuild)) → symbolization ≈ \(ms(coldBuild - warmBuild.median))"
        )

        // Encoding, streamed to a sink that only counts, and its parts.
        let sink = CountingSink()
        try profile.write(to: sink)
        let compressedBytes = sink.count
        let raw = try profile.encoded(compressed: false)
        let encode = try timing(repetitions) { try profile.write(to: CountingSink()) }
        let encodeRaw = try timing(repetitions) { _ = try profile.encoded(compressed: false) }
        let gzipOnly = try timing(repetitions) { _ = try FormatBenchmarkSupport.gzip(raw) }
        let gzipped = try profile.encoded()
        // Decoded profiles are kept until after the timing: freeing one is not decoding.
        var kept: [ProfileData] = []
        let decode = try timing(repetitions) { kept.append(try ProfileData(decoding: gzipped)) }
        kept.removeAll()
        let decodeRaw = try timing(repetitions) { kept.append(try ProfileData(decoding: raw)) }
        kept.removeAll()
        print("  encode (gzip level 1, streamed in 64 KiB chunks): \(ms(encode)) → \(kib(compressedBytes)) gzip")
        print(
            "    protobuf alone: \(ms(encodeRaw)) → \(kib(raw.count)) raw;  gzip of those bytes alone: \(ms(gzipOnly))"
        )
        print("  decode: gzip \(ms(decode)), raw \(ms(decodeRaw))")
        try CompressorBenchmarks.run(raw: raw, samples: profile.samples.count)

        // Memory: the streaming encode against encoding whole and then compressing whole.
        let streaming = try peakExtraMemory { try profile.write(to: CountingSink()) }
        let whole = try peakExtraMemory { _ = try FormatBenchmarkSupport.gzip(profile.encoded(compressed: false)) }
        let decodeMemory = try peakExtraMemory { _ = try ProfileData(decoding: gzipped) }
        print(
            "  peak extra resident memory: streaming encode \(mib(streaming)); "
                + "whole protobuf then gzip \(mib(whole)) (×\(ratio(whole, streaming))); "
                + "decode \(mib(decodeMemory)) (the decoded profile included)"
        )
        print(
            "  budget: encode \(ms(encode)) of 100 ms (\(percent(encode.median, 0.1)), min \(percent(encode.minimum, 0.1))), "
                + "memory \(mib(streaming)) of 32 MiB (\(percent(Double(streaming), 32 * 1_048_576)))"
        )
    }

    static func repeatPhase(
        _ phase: String,
        types: [ProfileData.ValueType],
        samples: [(stack: [UInt], values: [Int64], labels: [ProfileData.Label])]
    ) throws {
        let symbols = FormatBenchmarkSupport.Symbols()
        let profile = build(samples, types, symbols)
        let gzipped = try profile.encoded()
        if let path = ProcessInfo.processInfo.environment["PPROF_BENCH_FORMAT_DUMP"] {
            try Data(profile.encoded(compressed: false)).write(to: URL(fileURLWithPath: path))
        }
        let repeats = Int(ProcessInfo.processInfo.environment["PPROF_BENCH_FORMAT_REPEAT"] ?? "") ?? 20
        var kept: [ProfileData] = []
        let time = try median(repeats) {
            switch phase {
            case "build": kept.append(build(samples, types, symbols))
            case "encode": try profile.write(to: CountingSink())
            case "protobuf": _ = try profile.encoded(compressed: false)
            case "decode": kept.append(try ProfileData(decoding: gzipped))
            default: break
            }
        }
        print("  \(phase): \(ms(time)) (median of \(repeats))")
    }

    /// A CPU-like profile: period type cpu/nanoseconds at 100 Hz.
    static func build(
        _ samples: [(stack: [UInt], values: [Int64], labels: [ProfileData.Label])],
        _ types: [ProfileData.ValueType],
        _ symbols: FormatBenchmarkSupport.Symbols
    ) -> ProfileData {
        FormatBenchmarkSupport.buildProfile(
            sampleTypes: types,
            periodType: types[1],
            period: 10_000_000,
            samples: samples,
            symbols: symbols
        )
    }

    // MARK: - Measuring

    /// CPU time of this thread spent in `body`, in seconds: the machine these figures are taken
    /// on is shared, and wall time would mostly measure the other tenants.
    static func measure<T>(_ body: () throws -> T) rethrows -> (Double, T) {
        let start = threadCPUTime()
        let result = try body()
        return (threadCPUTime() - start, result)
    }

    static func threadCPUTime() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9
    }

    /// The median and the minimum of `count` runs. On a shared machine the minimum is the run
    /// least disturbed by other tenants, the closer estimate of the cost on an idle one.
    struct Timing {
        var median: Double
        var minimum: Double
    }

    static func timing(_ count: Int, _ body: () throws -> Void) rethrows -> Timing {
        var times: [Double] = []
        for _ in 0..<count { times.append(try measure(body).0) }
        times.sort()
        return Timing(median: times[count / 2], minimum: times[0])
    }

    static func median(_ count: Int, _ body: () throws -> Void) rethrows -> Double {
        try timing(count, body).median
    }

    static func ms(_ timing: Timing) -> String {
        String(format: "%.1f ms (min %.1f)", timing.median * 1000, timing.minimum * 1000)
    }

    /// Peak resident memory above what was resident before `body` (VmHWM, reset just before).
    /// Free heap memory is returned to the kernel first (malloc_trim), so memory the body
    /// allocates must be touched anew and shows up as resident.
    static func peakExtraMemory(_ body: () throws -> Void) rethrows -> Int {
        mallocTrim()
        let before = resetResidentPeak()
        try body()
        return max(0, ProcessStatus.bytes("VmHWM") - before)
    }

    /// glibc's `malloc_trim(0)` (its header is not importable into Swift).
    static func mallocTrim() {
        typealias Trim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }

    /// Resets VmHWM to the current resident size (Linux ≥ 4.0) and returns that size.
    static func resetResidentPeak() -> Int {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        if fd >= 0 {
            _ = write(fd, "5", 1)
            close(fd)
        }
        return ProcessStatus.bytes("VmRSS")
    }

    static func ms(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }
    static func kib(_ bytes: Int) -> String { String(format: "%.0f KiB", Double(bytes) / 1024) }
    static func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
    static func ratio(_ a: Int, _ b: Int) -> String { String(format: "%.1f", Double(a) / Double(max(b, 1))) }
    static func percent(_ value: Double, _ budget: Double) -> String { String(format: "%.0f%%", value / budget * 100) }
}

/// Discards what it is given and counts it.
final class CountingSink: ProfileSink, @unchecked Sendable {
    private(set) var count = 0
    func write(_ bytes: UnsafeRawBufferPointer) throws { count += bytes.count }
}
