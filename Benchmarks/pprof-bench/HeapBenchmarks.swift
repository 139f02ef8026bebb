import CPprof
import Foundation
import Glibc
import Pprof

/// Heap sampling overhead, measured side by side in one run (pprof-bench links PprofHooks):
/// 1. an allocation-heavy Swift workload with sampling off vs at the default rate, interleaved;
/// 2. the extra cost of an unsampled malloc+free pair: the hooks (rate 0 and default rate) vs
///    glibc's __libc_malloc/__libc_free called the same way, and the cost of a sampled pair;
/// 3. the same workload as a separate unmodified program: plain, with libPprofPreload.so, and under
///    heaptrack (if installed).
enum HeapBenchmarks {
    static func run() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["PPROF_BENCH_ROUNDS"] ?? "") ?? 11
        workloadSlowdown(rounds: rounds)
        pairCost(rounds: rounds)
        try separateProcesses(rounds: max(3, rounds / 3))
    }

    // MARK: - 1. Workload slowdown in process

    static func workloadSlowdown(rounds: Int) {
        let defaultRate = HeapProfile.sampleRate
        _ = allocationWorkload(records: 20_000)  // warm up caches and the symbol-free paths
        var off: [Double] = []
        var on: [Double] = []
        for round in 0..<(2 * rounds) {
            // Alternate which setting goes first, so drift (other processes, frequency) cancels.
            let sampling = (round % 2 == 0) == (round / 2 % 2 == 0)
            HeapProfile.sampleRate = sampling ? defaultRate : 0
            let seconds = time { _ = allocationWorkload(records: 60_000) }
            if sampling { on.append(seconds) } else { off.append(seconds) }
        }
        HeapProfile.sampleRate = defaultRate
        let slowdown = (median(on) / median(off) - 1) * 100
        print(
            String(
                format: "workload (dictionary of 60k class instances, strings, arrays): sampling off %.1f ms, "
                    + "rate %d %.1f ms (medians of %d) -> slowdown %+.2f%% (budget <= 2%%)",
                median(off) * 1e3,
                defaultRate,
                median(on) * 1e3,
                rounds,
                slowdown
            )
        )
        let perRound = allocationsPerWorkload()
        print(
            String(
                format: "  %.0f allocations per round, %.1f ns per allocation (sampling off)",
                perRound,
                median(off) / perRound * 1e9
            )
        )
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
        let pairs = 1_000_000
        var glibc: [Double] = []
        var hooksOff: [Double] = []
        var batchGlibc: [Double] = []
        var batchOff: [Double] = []
        var extraOff: [Double] = []
        var extraDefault: [Double] = []
        var extraBatch: [Double] = []
        // Many short rounds, each measuring glibc and the hooks back to back (order alternating):
        // the per-round differences cancel what other processes do to this one.
        for round in 0..<(rounds * 4) {
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
                rounds * 4,
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
        HeapProfile.sampleRate = 1
        let sampled = (0..<5).map { _ in pairLoop(100_000, hookedMalloc, hookedFree) }
        HeapProfile.sampleRate = defaultRate
        print(
            String(
                format: "  a sampled pair (rate 1: stack walk, interning, live-table insert and removal): %.0f ns",
                median(sampled)
            )
        )
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

    // MARK: - 3. Separate processes: plain, LD_PRELOAD, heaptrack

    static func separateProcesses(rounds: Int) throws {
        let build = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let program = build.appendingPathComponent("pprof-plain-workload")
        let library = build.appendingPathComponent("libPprofPreload.so")
        guard FileManager.default.fileExists(atPath: program.path), FileManager.default.fileExists(atPath: library.path)
        else {
            print("separate processes: build pprof-plain-workload and libPprofPreload.so in this configuration first")
            return
        }
        let heaptrack = ["/usr/bin/heaptrack", "/usr/local/bin/heaptrack"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-bench-heap-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        var plain: [Double] = []
        var preload: [Double] = []
        var tracked: [Double] = []
        let arguments = ["40"]
        for _ in 0..<rounds {
            plain.append(try workloadSeconds(program.path, arguments, [:]))
            preload.append(
                try workloadSeconds(
                    program.path,
                    arguments,
                    ["LD_PRELOAD": library.path, "PPROF_HEAP_PROFILE": scratch.appendingPathComponent("heap.pb.gz").path]
                )
            )
            if let heaptrack {
                tracked.append(
                    try workloadSeconds(
                        heaptrack,
                        ["-o", scratch.appendingPathComponent("heaptrack").path, program.path] + arguments,
                        [:]
                    )
                )
            }
        }
        var line = String(
            format: "unmodified program (pprof-plain-workload 40, medians of %d): plain %.0f ms, "
                + "LD_PRELOAD libPprofPreload.so %.0f ms (%+.1f%%)",
            rounds,
            median(plain) * 1e3,
            median(preload) * 1e3,
            (median(preload) / median(plain) - 1) * 100
        )
        if !tracked.isEmpty {
            line += String(
                format: ", heaptrack %.0f ms (%+.0f%%)",
                median(tracked) * 1e3,
                (median(tracked) / median(plain) - 1) * 100
            )
        } else {
            line += ", heaptrack not installed"
        }
        print(line)
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

    final class Record {
        let id: Int
        let name: String
        var tags: [String]

        init(id: Int, name: String, tags: [String]) {
            self.id = id
            self.name = name
            self.tags = tags
        }
    }

    /// The allocation-heavy workload: class instances, strings and arrays in a dictionary.
    @inline(never)
    static func allocationWorkload(records count: Int) -> Int {
        var records: [Int: Record] = [:]
        for id in 0..<count {
            let name = "record-\(id)-\(count)"
            records[id] = Record(id: id, name: name, tags: [name + ".a", name + ".b"])
        }
        var total = 0
        for (_, record) in records { total &+= record.tags.joined(separator: ",").utf8.count &+ record.id }
        return total
    }

    /// Allocations one workload round makes: every one sampled (rate 1), counted by the sampler.
    static func allocationsPerWorkload() -> Double {
        var before = pp_heap_stats()
        var after = pp_heap_stats()
        let rate = HeapProfile.sampleRate
        pp_heap_get_stats(&before)
        HeapProfile.sampleRate = 1
        _ = allocationWorkload(records: 60_000)
        HeapProfile.sampleRate = rate
        pp_heap_get_stats(&after)
        return Double(after.live_inserted - before.live_inserted)
    }

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
