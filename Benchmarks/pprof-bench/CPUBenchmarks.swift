import CPprof
import Foundation
@_spi(Testing) import Pprof
import Synchronization

/// CPU profiler overhead, measured side by side in one process:
/// 1. throughput loss of a CPU-bound 2-thread workload at 100 Hz and 1000 Hz, rounds interleaved
///    with unprofiled runs (process CPU time per batch, so other load on the machine matters less);
/// 2. the handler's cost per sample for a 32-frame stack beyond signal delivery: the same
///    self-sent signal timed with the handler's work and with it bypassed;
/// 3. samples and drops with 64 busy threads at 1000 Hz.
enum CPUBenchmarks {
    static func run() throws {
        try idleCost()
        try throughput()
        try handlerCost()
        try manyThreads()
    }

    // MARK: - Idle cost: the reader thread's rescans and drains when nothing runs

    static func idleCost(seconds: Double = 3) throws {
        var before = processCPUSeconds()
        Thread.sleep(forTimeInterval: seconds)
        let off = processCPUSeconds() - before
        try CPUProfile.start(writingTo: ProfileBuffer())
        before = processCPUSeconds()
        Thread.sleep(forTimeInterval: seconds)
        let on = processCPUSeconds() - before
        try CPUProfile.stop()
        print(
            "idle process, \(seconds) s: CPU \(format(off * 1000)) ms unprofiled, \(format(on * 1000)) ms profiled "
                + "(\(format((on - off) / seconds * 100))% of a core)"
        )
    }

    // MARK: - Throughput

    static func throughput(rounds: Int = 15) throws {
        let iterations = calibrate(targetSeconds: 0.3)
        var cpu: [String: [Double]] = [:]
        var wall: [String: [Double]] = [:]
        let configurations: [(String, Int?)] = [("off", nil), ("100 Hz", 100), ("1000 Hz", 1000)]
        var engine = ""
        for _ in 0..<rounds {
            for (name, rate) in configurations {
                if let rate {
                    try CPUProfile.start(writingTo: ProfileBuffer(), rate: rate)
                    engine = CPUProfile.engine?.rawValue ?? ""
                }
                let before = processCPUSeconds()
                let start = Date()
                runBatch(threads: 2, iterations: iterations)
                wall[name, default: []].append(Date().timeIntervalSince(start))
                cpu[name, default: []].append(processCPUSeconds() - before)
                if rate != nil { try CPUProfile.stop() }
            }
        }
        let baseCPU = median(cpu["off"]!)
        let baseWall = median(wall["off"]!)
        print("throughput (2 threads × \(iterations) iterations, \(rounds) interleaved rounds, engine \(engine)):")
        for (name, _) in configurations {
            let c = median(cpu[name]!)
            let w = median(wall[name]!)
            let spread = cpu[name]!.sorted()
            print(
                "  \(name.padding(toLength: 8, withPad: " ", startingAt: 0)) process CPU \(format(c)) s "
                    + "(\(percent(c / baseCPU - 1))), wall \(format(w)) s (\(percent(w / baseWall - 1))); "
                    + "CPU quartiles \(format(spread[spread.count / 4]))–\(format(spread[spread.count * 3 / 4])) s"
            )
        }
    }

    /// Iterations of `spin` that take about `targetSeconds` on one thread.
    static func calibrate(targetSeconds: Double) -> Int {
        var iterations = 1_000_000
        while true {
            let start = Date()
            blackHole(spin(iterations))
            let elapsed = Date().timeIntervalSince(start)
            if elapsed > 0.05 { return Int(Double(iterations) * targetSeconds / elapsed) }
            iterations *= 4
        }
    }

    static func runBatch(threads: Int, iterations: Int) {
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            Thread {
                blackHole(spin(iterations))
                group.leave()
            }.start()
        }
        group.wait()
    }

    @inline(never)
    static func spin(_ iterations: Int) -> UInt64 {
        var x: UInt64 = 0x1234_5678
        for i in 0..<iterations { x = (x ^ (x >> 29)) &* 0xbf58_476d_1ce4_e5b9 &+ UInt64(truncatingIfNeeded: i) }
        return x
    }

    // MARK: - Handler cost

    static func handlerCost(signals: Int = 200_000) throws {
        let signal = pp_cpu_claim_signal(Int32(PP_CPU_ENGINE_MANUAL))
        guard signal > 0 else { throw PprofError.unavailable("no free signal") }
        var config = pp_cpu_config(
            engine: Int32(PP_CPU_ENGINE_MANUAL),
            signo: signal,
            period_ns: 1_000_000,
            thread_info: 0,
            ring_words: 1 << 20,
            perf_fd_limit: 0
        )
        guard pp_cpu_begin(&config) == 0 else { throw PprofError.unavailable("pp_cpu_begin failed") }
        defer { _ = pp_cpu_end(1000) }

        let modes: [(name: String, bypass: Int32)] = [
            ("handler bypassed (delivery only)", Int32(PP_CPU_BYPASS_ALL)),
            ("record without stack walk", Int32(PP_CPU_BYPASS_UNWIND)),
            ("full handler", Int32(PP_CPU_BYPASS_NONE)),
        ]
        let result = Mutex<(nanos: [Double], frames: Double)>(([], 0))
        // A thread of its own, so that the depth below the walk is known and small.
        let thread = Thread {
            let measured = descend(depth: 30) { () -> ([Double], Double) in
                let me = pthread_self()
                var nanos = Array(repeating: [Double](), count: modes.count)
                var frames = 0.0
                for _ in 0..<10 {
                    for (index, mode) in modes.enumerated() {
                        pp_cpu_set_handler_bypass(mode.bypass)
                        let start = DispatchTime.now().uptimeNanoseconds
                        for _ in 0..<signals / 10 {
                            _ = pthread_kill(me, signal)  // tgkill: si_code SI_TKILL
                        }
                        nanos[index].append(Double(DispatchTime.now().uptimeNanoseconds - start) / Double(signals / 10))
                        let depth = drainAverageDepth()
                        if mode.bypass == Int32(PP_CPU_BYPASS_NONE) { frames = depth }
                    }
                }
                pp_cpu_set_handler_bypass(Int32(PP_CPU_BYPASS_NONE))
                // The handler's body alone, timed in a loop: no signal delivery noise.
                var body: [Double] = []
                var record: [Double] = []
                for _ in 0..<50 {
                    body.append(pp_cpu_bench_record_here(1000, 1))
                    _ = drainAverageDepth()
                    record.append(pp_cpu_bench_record_here(1000, 0))
                    _ = drainAverageDepth()
                }
                return (nanos.map(median) + [median(body), median(record)], frames)
            }
            result.withLock { $0 = measured }
        }
        thread.stackSize = 1 << 20
        thread.start()
        while !thread.isFinished { usleep(1000) }
        var counters = pp_cpu_counters()
        pp_cpu_read_counters(&counters)
        let (nanos, frames) = result.withLock { $0 }
        print(
            "handler cost (self-sent signal, \(Int(frames))-frame stack, \(signals) signals per mode, medians of 10):"
        )
        for (index, mode) in modes.enumerated() {
            print(
                "  \(mode.name.padding(toLength: 34, withPad: " ", startingAt: 0)) \(format(nanos[index])) ns per signal"
            )
        }
        print("  difference, full minus bypassed:   \(format(nanos[2] - nanos[0])) ns (noisy on a busy machine)")
        print("  handler body timed directly (50 × 1000 samples, median):")
        print("    stack walk + record:             \(format(nanos[3])) ns per sample")
        print("    record only (no walk):           \(format(nanos[4])) ns per sample")
        if counters.lost_samples > 0 { print("  (lost \(counters.lost_samples) samples while measuring)") }
    }

    /// Recurses `depth` frames (not tail calls), then runs `body`.
    @inline(never)
    static func descend<T>(depth: Int, _ body: () -> T) -> T {
        if depth == 0 { return body() }
        let result = descend(depth: depth - 1, body)
        blackHole(UInt64(depth))
        return result
    }

    /// Drains the rings and returns the mean number of stack entries per record.
    static func drainAverageDepth() -> Double {
        var totals = (records: 0, frames: 0)
        withUnsafeMutablePointer(to: &totals) { pointer in
            pp_cpu_drain(
                { context, _, _, _, count in
                    let totals = context!.assumingMemoryBound(to: (records: Int, frames: Int).self)
                    totals.pointee.records += 1
                    totals.pointee.frames += Int(count)
                },
                pointer
            )
        }
        return totals.records == 0 ? 0 : Double(totals.frames) / Double(totals.records)
    }

    // MARK: - Many threads

    static func manyThreads(threads: Int = 64, seconds: Double = 3) throws {
        let buffer = ProfileBuffer()
        try CPUProfile.start(writingTo: buffer, rate: 1000)
        let engine = CPUProfile.engine?.rawValue ?? ""
        let before = processCPUSeconds()
        let deadline = Date().addingTimeInterval(seconds)
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            Thread {
                while Date() < deadline { blackHole(spin(100_000)) }
                group.leave()
            }.start()
        }
        group.wait()
        let cpu = processCPUSeconds() - before
        let summary = try CPUProfile.stop()!
        let profile = try ProfileData(decoding: buffer.bytes)
        let sampledSeconds = Double(profile.samples.reduce(0) { $0 + $1.values[1] }) / 1e9
        print("\(threads) busy threads at 1000 Hz for \(seconds) s (engine \(engine)):")
        print(
            "  \(summary.samples) samples, \(summary.lostSamples) lost; \(summary.threadsSampled) threads armed; "
                + "sampled \(format(sampledSeconds)) s of \(format(cpu)) s process CPU"
        )
    }

    // MARK: - Support

    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    static func format(_ value: Double) -> String { String(format: "%.3f", value) }

    static func percent(_ ratio: Double) -> String { String(format: "%+.2f%%", ratio * 100) }

    @inline(never)
    static func blackHole(_ value: UInt64) {
        if value == 0x5eed_5eed { print("") }
    }
}
