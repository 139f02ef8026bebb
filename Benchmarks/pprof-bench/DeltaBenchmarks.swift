import CPprof
import Foundation
import Pprof

/// The delta profilers against the cumulative profiles they are computed from, side by side on
/// 8192 distinct stacks (every path of a binary call tree, so the stacks are real and symbolized):
/// 1. thread CPU time of one call, interleaved rounds: the cumulative profile, a delta when 1 % of
///    the stacks changed, a delta when nothing changed, and a new instance's first delta
///    (everything); for the block profile and for the heap profile (half of its stacks in use);
/// 2. what an instance keeps between calls: malloc'd bytes per remembered stack (mallinfo2).
enum DeltaBenchmarks {
    static let depth = 13
    static let stacks = 1 << depth

    static func run() throws {
        try block()
        try heap()
    }

    static func block() throws {
        BlockProfile.rate = 1
        defer { BlockProfile.rate = 0 }
        for path in 0..<stacks { descend(path: path, level: depth) { pp_contention_block_event(1000, 0) } }
        print("block profile of \(stacks) distinct stacks:")
        try compare(
            cumulative: { try Profile.lookup("block")!.write(to: $0, debug: 0) },
            newDelta: { DeltaBlockProfiler().profile(to:) },
            change: { path in descend(path: path, level: depth) { pp_contention_block_event(1000, 0) } }
        )
    }

    static func heap() throws {
        // Every allocation of the call tree sampled, half of them kept; then sampling off, so that
        // the rounds change only what `change` allocates.
        HeapProfile.sampleRate = 1
        var kept: [UnsafeMutableRawPointer] = []
        kept.reserveCapacity(stacks)
        var pointer: UnsafeMutableRawPointer?
        for path in 0..<stacks {
            descend(path: path, level: depth) { pointer = malloc(64) }
            if path % 2 == 0 { kept.append(pointer!) } else { free(pointer) }
        }
        HeapProfile.sampleRate = 0
        defer {
            for pointer in kept { free(pointer) }
            HeapProfile.sampleRate = 512 * 1024
        }
        print("heap profile of \(stacks) distinct stacks, \(stacks / 2) of them in use:")
        try compare(
            cumulative: { try HeapProfile.write(to: $0) },
            newDelta: { DeltaHeapProfiler().profile(to:) },
            change: { path in
                HeapProfile.sampleRate = 1
                descend(path: path, level: depth) {
                    let object = malloc(64)
                    ContentionBenchmarks.blackHole(UInt64(UInt(bitPattern: object)))  // kept, not optimized away
                    free(object)
                }
                HeapProfile.sampleRate = 0
            }
        )
    }

    /// Thread CPU time, median of 9 interleaved rounds, and bytes kept per remembered stack.
    static func compare(
        cumulative write: (ProfileBuffer) throws -> Void,
        newDelta: () -> (ProfileBuffer) throws -> Void,
        change: (Int) -> Void
    ) throws {
        let steady = newDelta()
        try steady(ProfileBuffer())  // the baseline; symbol caches warm
        var times: [[Double]] = [[], [], [], []]
        var sizes = [0, 0, 0, 0]
        for round in 0..<9 {
            for variant in round % 2 == 0 ? [0, 1, 2, 3] : [3, 2, 1, 0] {
                let buffer = ProfileBuffer()
                let start = ContentionBenchmarks.threadCPUNanos()
                switch variant {
                case 0: try write(buffer)
                case 1:
                    let end = ContentionBenchmarks.threadCPUNanos()
                    for path in stride(from: round, to: stacks, by: 100) { change(path) }
                    let changed = ContentionBenchmarks.threadCPUNanos()
                    try steady(buffer)
                    // Only the delta call is timed.
                    times[1].append(Double(ContentionBenchmarks.threadCPUNanos() - changed + end - start) / 1e6)
                case 2: try steady(buffer)
                default: try newDelta()(buffer)
                }
                if variant != 1 { times[variant].append(Double(ContentionBenchmarks.threadCPUNanos() - start) / 1e6) }
                sizes[variant] = buffer.bytes.count
            }
        }
        let base = ContentionBenchmarks.median(times[0])
        let names = [
            "cumulative profile", "delta, 1% of stacks changed", "delta, nothing changed",
            "first delta of a new instance",
        ]
        for (index, name) in names.enumerated() {
            let median = ContentionBenchmarks.median(times[index])
            print(
                String(
                    format: "  %@ %6.1f ms CPU (%.2fx the cumulative profile), %6d bytes gzip",
                    name.padding(toLength: 30, withPad: " ", startingAt: 0),
                    median,
                    median / base,
                    sizes[index]
                )
            )
        }

        // What an instance keeps: everything else is warm, so the growth is its baseline.
        var kept: [Double] = []
        for _ in 0..<5 {
            let profiler = newDelta()
            let before = allocatedBytes()
            try profiler(ProfileBuffer())
            kept.append(Double(allocatedBytes() - before) / Double(stacks))
            withExtendedLifetime(profiler) {}
        }
        print(
            String(
                format: "  memory kept per remembered stack: %.0f bytes (median of 5)",
                ContentionBenchmarks.median(kept)
            )
        )
    }

    /// Bytes currently malloc'd (glibc's mallinfo2: small chunks plus mmap'd ones).
    static func allocatedBytes() -> Int {
        var info = pp_malloc_info()
        _ = pp_heap_malloc_info(&info)
        return Int(info.uordblks + info.hblkhd)
    }

    /// Descends `level` more levels, left or right by the bits of `path`, then runs `leaf`: one
    /// distinct stack per path.
    @inline(never) static func descend(path: Int, level: Int, _ leaf: () -> Void) {
        if level == 0 {
            leaf()
        } else if path & (1 << (level - 1)) != 0 {
            left(path: path, level: level - 1, leaf)
        } else {
            right(path: path, level: level - 1, leaf)
        }
    }

    @inline(never) static func left(path: Int, level: Int, _ leaf: () -> Void) {
        descend(path: path, level: level, leaf)
        ContentionBenchmarks.blackHole(UInt64(level))
    }

    @inline(never) static func right(path: Int, level: Int, _ leaf: () -> Void) {
        descend(path: path, level: level, leaf)
        ContentionBenchmarks.blackHole(UInt64(level) + 1)
    }
}
