import CPprof
import Foundation
import Glibc
import Pprof
import PprofWorkload

/// Heap sampling overhead, measured side by side in one run:
/// 1. an allocation-heavy Swift workload (PprofWorkload) in this process, which links PprofHooks,
///    with sampling off vs at the default rate in adjacent pairs of runs; then the same workload as
///    an unmodified program (`pprof-plain-workload`, which reports the time of its own work) with
///    the hooks preloaded (sampling off and on), without any hooks, and under heaptrack;
/// 2. the extra cost of an unsampled malloc+free pair in this process (which links PprofHooks): the
///    hooks vs glibc's __libc_malloc/__libc_free called the same way, and the cost of a sampled pair.
enum HeapBenchmarks {
    static func run() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["PPROF_BENCH_ROUNDS"] ?? "") ?? 11
        inProcessSlowdown(rounds: rounds)
        try workloadSlowdown(rounds: rounds)
        pairCost(rounds: rounds)
    }

    // MARK: - 2. Cost of one malloc+free pair

    typealias Malloc = @convention(c) (Int) -> UnsafeMutableRawPointer?
    typealias Free = @convention(c) (UnsafeMutableRawPointer?) -> Void

    static func pairCost(rounds: Int) {
        guard let hookedMalloc = symbol("malloc", as: Malloc.self), let hookedFree = symbol("free", as: Free.self),
            let libcMalloc = symbol("__libc_malloc", as: Malloc.self),
            let libcFree = symbol("__libc_free", as: Free.self)
        else {
            print("pair cost: malloc symbols not found")
            return
        }
        let defaultRate = HeapProfile.sampleRate
        let pairs = 200_000
        var glibc: [Double] = []
        var hooksOff: [Double] = []
        var batchGlibc: [Double] = []
        var batchOff: [Double] = []
        var extraOff: [Double] = []
        var extraDefault: [Double] = []
        var extraBatch: [Double] = []
        // Many short rounds, each measuring glibc and the hooks back to back (order alternating):
        // the per-round differences cancel what other processes do to this one.
        for round in 0..<(rounds * 16) {
            let first = round % 2 == 0
            HeapProfile.sampleRate = 0
            let off1 = first ? pairLoop(pairs, hookedMalloc, hookedFree) : 0
            let direct = pairLoop(pairs, libcMalloc, libcFree)
            let off2 = first ? 0 : pairLoop(pairs, hookedMalloc, hookedFree)
            HeapProfile.sampleRate = defaultRate
            let sampled = pairLoop(pairs, hookedMalloc, hookedFree)
            let directAgain = pairLoop(pairs, libcMalloc, libcFree)
            HeapProfile.sampleRate = 0
            let batchHooks = batchLoop(pairs, hookedMalloc, hookedFree)
            let batchDirect = batchLoop(pairs, libcMalloc, libcFree)
            HeapProfile.sampleRate = defaultRate
            glibc.append(min(direct, directAgain))
            hooksOff.append(off1 + off2)
            batchGlibc.append(batchDirect)
            batchOff.append(batchHooks)
            extraOff.append(off1 + off2 - direct)
            extraDefault.append(sampled - directAgain)
            extraBatch.append(batchHooks - batchDirect)
        }
        print(
            String(
                format: "unsampled malloc+free pair (64..120 B; %d rounds of %d, median of paired differences; "
                    + "difference of minimums): glibc %.2f ns (min %.2f); extra with hooks at rate 0 %+.2f ns (%+.2f), "
                    + "at rate %d %+.2f ns; batches of 1024 %+.2f ns (%+.2f) (budget <= 5 ns)",
                rounds * 16,
                pairs,
                median(glibc),
                glibc.min() ?? .nan,
                median(extraOff),
                (hooksOff.min() ?? .nan) - (glibc.min() ?? .nan),
                defaultRate,
                median(extraDefault),
                median(extraBatch),
                (batchOff.min() ?? .nan) - (batchGlibc.min() ?? .nan)
            )
        )
        print(
            String(
                format: "  a sampled pair (rate 1: stack walk, interning, live-table insert and removal): %.0f ns",
                sampledAllocationNanoseconds()
            )
        )
    }

    /// What a sampled malloc+free pair costs (rate 1), median of 5 runs.
    static func sampledAllocationNanoseconds() -> Double {
        guard let allocate = symbol("malloc", as: Malloc.self), let release = symbol("free", as: Free.self) else {
            return .nan
        }
        let rate = HeapProfile.sampleRate
        HeapProfile.sampleRate = 1
        let sampled = (0..<5).map { _ in pairLoop(100_000, allocate, release) }
        HeapProfile.sampleRate = rate
        return median(sampled)
    }

    @inline(never)
    static func pairLoop(_ count: Int, _ allocate: Malloc, _ release: Free) -> Double {
        let seconds = time {
            for index in 0..<count {
                let pointer = allocate(64 + (index & 7) * 8)
                release(pointer)
            }
        }
        return seconds / Double(count) * 1e9
    }

    @inline(never)
    static func batchLoop(_ count: Int, _ allocate: Malloc, _ release: Free) -> Double {
        let batch = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: 1024)
        defer { batch.deallocate() }
        let seconds = time {
            for start in stride(from: 0, to: count, by: 1024) {
                for index in 0..<1024 { batch[index] = allocate(64 + ((start + index) & 7) * 8) }
                for index in 0..<1024 { release(batch[index]) }
            }
        }
        return seconds / Double(count) * 1e9
    }

    static func symbol<T>(_ name: String, as type: T.Type) -> T? {
        guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(address, to: type)
    }

    // MARK: - 1. Workload slowdown

    /// The workload in this process, sampling off vs the default rate, in adjacent pairs of runs.
    static func inProcessSlowdown(rounds: Int) {
        let defaultRate = HeapProfile.sampleRate
        _ = runAllocationWorkload(rounds: 2)
        var off: [Double] = []
        var on: [Double] = []
        var ratios: [Double] = []
        for round in 0..<(rounds * 4) {
            var pair: [Bool: Double] = [:]
            for sampling in round % 2 == 0 ? [true, false] : [false, true] {
                HeapProfile.sampleRate = sampling ? defaultRate : 0
                pair[sampling] = time { _ = runAllocationWorkload(rounds: 3) }
            }
            off.append(pair[false]!)
            on.append(pair[true]!)
            ratios.append(pair[true]! / pair[false]!)
        }
        HeapProfile.sampleRate = defaultRate
        // Load-independent cross-check: samples one run takes times what one sample costs.
        var before = pp_heap_stats()
        var after = pp_heap_stats()
        pp_heap_get_stats(&before)
        let sampledRun = time { _ = runAllocationWorkload(rounds: 3) }
        pp_heap_get_stats(&after)
        let samples = Double(after.live_inserted - before.live_inserted)
        let perSample = sampledAllocationNanoseconds()
        print(
            String(
                format: "workload in process (PprofWorkload, 60k records per run; %d adjacent pairs): sampling off "
                    + "%.1f ms, rate %d %.1f ms -> slowdown %+.2f%% (median of pair ratios; budget <= 2%%)",
                rounds * 4,
                median(off) * 1e3,
                defaultRate,
                median(on) * 1e3,
                (median(ratios) - 1) * 100
            )
        )
        print(
            String(
                format: "  %.0f samples per run x %.0f ns per sampled allocation = %.3f ms = %.2f%% of a %.1f ms run",
                samples,
                perSample,
                samples * perSample / 1e6,
                samples * perSample / 1e9 / sampledRun * 100,
                sampledRun * 1e3
            )
        )
    }

    static func workloadSlowdown(rounds: Int) throws {
        let build = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let program = build.appendingPathComponent("pprof-plain-workload")
        let library = build.appendingPathComponent("libPprofPreload.so")
        guard FileManager.default.fileExists(atPath: program.path), FileManager.default.fileExists(atPath: library.path)
        else {
            print("workload: build pprof-plain-workload and libPprofPreload.so in this configuration first")
            return
        }
        let heaptrack = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
            .map { String($0) + "/heaptrack" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-bench-heap-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let arguments = ["20"]
        let preload = ["LD_PRELOAD": library.path]
        var off: [Double] = []
        var on: [Double] = []
        var plain: [Double] = []
        var tracked: [Double] = []
        // Per round, adjacent runs compared: the median of these ratios resists load from elsewhere.
        var samplingRatios: [Double] = []
        var hooksRatios: [Double] = []
        for round in 0..<rounds {
            // Alternate the order of the two settings compared, so drift cancels.
            let sampledFirst = round % 2 == 0
            if sampledFirst { on.append(try workloadSeconds(program.path, arguments, preload)) }
            off.append(
                try workloadSeconds(program.path, arguments, preload.merging(["PPROF_HEAP_SAMPLE_RATE": "0"]) { $1 })
            )
            if !sampledFirst { on.append(try workloadSeconds(program.path, arguments, preload)) }
            plain.append(try workloadSeconds(program.path, arguments, [:]))
            samplingRatios.append(on.last! / off.last!)
            hooksRatios.append(on.last! / plain.last!)
            if let heaptrack, round < 3 {
                tracked.append(
                    try workloadSeconds(
                        heaptrack,
                        ["-o", scratch.appendingPathComponent("heaptrack").path, program.path] + arguments,
                        [:]
                    )
                )
            }
        }
        print(
            String(
                format: "workload (pprof-plain-workload 20: 400k class instances, strings, arrays; medians of %d): "
                    + "hooks with sampling off %.0f ms, at rate 524288 %.0f ms -> slowdown %+.2f%% "
                    + "(median of per-round ratios; budget <= 2%%)",
                rounds,
                median(off) * 1e3,
                median(on) * 1e3,
                (median(samplingRatios) - 1) * 100
            )
        )
        let heaptrackText =
            tracked.isEmpty
            ? "heaptrack not installed"
            : String(
                format: "under heaptrack %.0f ms (%+.0f%%, median of %d)",
                median(tracked) * 1e3,
                (median(tracked) / median(plain) - 1) * 100,
                tracked.count
            )
        print(
            String(
                format: "  without hooks %.0f ms (hooks at the default rate: %+.2f%%); ",
                median(plain) * 1e3,
                (median(hooksRatios) - 1) * 100
            ) + heaptrackText
        )
    }

    /// Runs a program that prints `elapsed <seconds>` for its own work and returns that figure.
    static func workloadSeconds(_ executable: String, _ arguments: [String], _ environment: [String: String]) throws
        -> Double
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = try output.fileHandleForReading.readToEnd() ?? Data()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("elapsed ") }),
            let seconds = Double(line.dropFirst("elapsed ".count))
        else { return .nan }
        return seconds
    }

    // MARK: - Helpers

    static func time(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.filter { !$0.isNaN }.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted.count % 2 == 1
            ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}
