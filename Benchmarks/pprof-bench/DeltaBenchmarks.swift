import CPprof
import Foundation
import Pprof

/// The delta profilers against the cumulative profile they are computed from, side by side on one
/// block profile of 8192 distinct stacks (pp_contention_block_event from every path of a binary
/// call tree, so the stacks are real and symbolized):
/// 1. thread CPU time of one call, interleaved rounds: the cumulative profile, a delta when 1 % of
///    the stacks changed, a delta when nothing changed, and a new instance's first delta
///    (everything);
/// 2. what an instance keeps between calls: malloc'd bytes per remembered stack (mallinfo2).
enum DeltaBenchmarks {
    static let depth = 13

    static func run() throws {
        BlockProfile.rate = 1
        defer { BlockProfile.rate = 0 }
        for path in 0..<(1 << depth) { record(path: path, level: depth) }

        let steady = DeltaBlockProfiler()
        try steady.profile(to: ProfileBuffer())  // the baseline, and warm symbol caches
        var cumulative: [Double] = []
        var changedOnePercent: [Double] = []
        var unchanged: [Double] = []
        var first: [Double] = []
        var sizes: (cumulative: Int, changed: Int, unchanged: Int, first: Int) = (0, 0, 0, 0)
        for round in 0..<9 {
            let order = round % 2 == 0 ? [0, 1, 2, 3] : [3, 2, 1, 0]
            for variant in order {
                let buffer = ProfileBuffer()
                switch variant {
                case 0:
                    cumulative.append(try cpuMillis { try Profile.lookup("block")!.write(to: buffer, debug: 0) })
                    sizes.cumulative = buffer.bytes.count
                case 1:
                    for path in stride(from: round, to: 1 << depth, by: 100) { record(path: path, level: depth) }
                    changedOnePercent.append(try cpuMillis { try steady.profile(to: buffer) })
                    sizes.changed = buffer.bytes.count
                case 2:
                    unchanged.append(try cpuMillis { try steady.profile(to: buffer) })
                    sizes.unchanged = buffer.bytes.count
                default:
                    first.append(try cpuMillis { try DeltaBlockProfiler().profile(to: buffer) })
                    sizes.first = buffer.bytes.count
                }
            }
        }
        let base = ContentionBenchmarks.median(cumulative)
        func line(_ what: String, _ values: [Double], _ bytes: Int) {
            let median = ContentionBenchmarks.median(values)
            print(
                String(
                    format: "%@: %.1f ms CPU (%.2fx the cumulative profile), %d bytes gzip",
                    what,
                    median,
                    median / base,
                    bytes
                )
            )
        }
        print("block profile of \(1 << depth) distinct stacks, median of 9 interleaved rounds, thread CPU time:")
        line("  cumulative profile            ", cumulative, sizes.cumulative)
        line("  delta, 1% of stacks changed   ", changedOnePercent, sizes.changed)
        line("  delta, nothing changed        ", unchanged, sizes.unchanged)
        line("  first delta of a new instance ", first, sizes.first)
    }

    struct DiscardingSink: ProfileSink {
        func write(_ bytes: UnsafeRawBufferPointer) throws {}
    }

    static func cpuMillis(_ body: () throws -> Void) rethrows -> Double {
        let start = ContentionBenchmarks.threadCPUNanos()
        try body()
        return Double(ContentionBenchmarks.threadCPUNanos() - start) / 1e6
    }

    /// Descends `level` more levels, left or right by the bits of `path`, then records an event:
    /// one distinct stack per path.
    @inline(never) static func record(path: Int, level: Int) {
        if level == 0 {
            pp_contention_block_event(1000, 0)
        } else if path & (1 << (level - 1)) != 0 {
            left(path: path, level: level - 1)
        } else {
            right(path: path, level: level - 1)
        }
    }

    @inline(never) static func left(path: Int, level: Int) {
        record(path: path, level: level)
        ContentionBenchmarks.blackHole(UInt64(level))
    }

    @inline(never) static func right(path: Int, level: Int) {
        record(path: path, level: level)
        ContentionBenchmarks.blackHole(UInt64(level) + 1)
    }
}
