import Foundation
import Pprof
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The cost of the wall-clock profile at 100 Hz, measured side by side in one run:
/// 1. throughput of a CPU-bound 2-thread workload, profile off vs on, rounds interleaved;
/// 2. throughput of a lock-heavy workload (4 threads on one pthread mutex), off vs on;
/// 3. the cost per sampled thread: the process CPU time a profile of N parked threads adds,
///    and the sampler thread's own share, per thread sample.
enum WallBenchmarks {
    static func run() throws {
        try cpuBound()
        try lockHeavy()
        for threads in [16, 1000] { try costPerThread(parked: threads) }
    }

    // MARK: - CPU-bound

    static func cpuBound(rounds: Int = 15) throws {
        let iterations = CPUBenchmarks.calibrate(targetSeconds: 0.3)
        var wall: [Bool: [Double]] = [:]
        var cpu: [Bool: [Double]] = [:]
        for _ in 0..<rounds {
            for profiled in [false, true] {
                if profiled { try WallProfile.start(writingTo: ProfileBuffer(), rate: 100) }
                let before = CPUBenchmarks.processCPUSeconds()
                let start = Date()
                CPUBenchmarks.runBatch(threads: 2, iterations: iterations)
                wall[profiled, default: []].append(Date().timeIntervalSince(start))
                cpu[profiled, default: []].append(CPUBenchmarks.processCPUSeconds() - before)
                if profiled { try WallProfile.stop() }
            }
        }
        let offWall = CPUBenchmarks.median(wall[false]!)
        let onWall = CPUBenchmarks.median(wall[true]!)
        let offCPU = CPUBenchmarks.median(cpu[false]!)
        let onCPU = CPUBenchmarks.median(cpu[true]!)
        print("CPU-bound, 2 threads × \(iterations) iterations, \(rounds) interleaved rounds (median):")
        print(
            "  off: wall \(CPUBenchmarks.format(offWall)) s, process CPU \(CPUBenchmarks.format(offCPU)) s; "
                + "wall 100 Hz: wall \(CPUBenchmarks.format(onWall)) s (\(CPUBenchmarks.percent(onWall / offWall - 1))), "
                + "process CPU \(CPUBenchmarks.format(onCPU)) s (\(CPUBenchmarks.percent(onCPU / offCPU - 1)))"
        )
        // Per round, against the unprofiled run just before it (drift of a shared machine cancels).
        let paired = zip(wall[false]!, wall[true]!).map { $0 / $1 }.sorted()
        print(
            "  throughput with the wall profile: \(CPUBenchmarks.percent(offWall / onWall - 1)) (budget ≥ -1 %); "
                + "paired rounds: median \(CPUBenchmarks.percent(CPUBenchmarks.median(paired) - 1)), quartiles "
                + "\(CPUBenchmarks.percent(paired[paired.count / 4] - 1))…\(CPUBenchmarks.percent(paired[paired.count * 3 / 4] - 1)); "
                + "per process CPU-second: \(CPUBenchmarks.percent(offCPU / onCPU - 1))"
        )
    }

    // MARK: - Lock-heavy

    static func lockHeavy(rounds: Int = 15, threads: Int = 4, milliseconds: Int = 300) throws {
        let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        defer { mutex.deallocate() }
        var rates: [Bool: [Double]] = [:]
        for _ in 0..<rounds {
            for profiled in [false, true] {
                if profiled { try WallProfile.start(writingTo: ProfileBuffer(), rate: 100) }
                let operations = lockRound(mutex, threads: threads, milliseconds: milliseconds)
                rates[profiled, default: []].append(Double(operations) / (Double(milliseconds) / 1000))
                if profiled { try WallProfile.stop() }
            }
        }
        let off = CPUBenchmarks.median(rates[false]!)
        let on = CPUBenchmarks.median(rates[true]!)
        // Per round, the profiled run against the unprofiled one just before it: the machine's
        // drift cancels out.
        let ratios = zip(rates[true]!, rates[false]!).map { $0 / $1 }.sorted()
        print(
            "lock-heavy, \(threads) threads on one pthread mutex (~200 ns in, ~200 ns out), \(rounds) interleaved rounds of \(milliseconds) ms (median):"
        )
        print(
            "  off \(Int(off)) ops/s, wall 100 Hz \(Int(on)) ops/s: throughput \(CPUBenchmarks.percent(on / off - 1)) (budget ≥ -1 %); "
                + "paired rounds: median \(CPUBenchmarks.percent(CPUBenchmarks.median(ratios) - 1)), "
                + "quartiles \(CPUBenchmarks.percent(ratios[ratios.count / 4] - 1))…\(CPUBenchmarks.percent(ratios[ratios.count * 3 / 4] - 1))"
        )
    }

    /// Threads lock, work a little, unlock and work a little until the deadline; returns the
    /// critical sections completed.
    static func lockRound(_ mutex: UnsafeMutablePointer<pthread_mutex_t>, threads: Int, milliseconds: Int) -> Int {
        let total = Atomic<Int>(0)
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(milliseconds) * 1_000_000
        let shared = UnsafeSendable(mutex)
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            Thread {
                var count = 0
                var x: UInt64 = 0x9e37
                while DispatchTime.now().uptimeNanoseconds < deadline {
                    for _ in 0..<64 {
                        pthread_mutex_lock(shared.value)
                        x = lockedWork(x)
                        pthread_mutex_unlock(shared.value)
                        x = unlockedWork(x)
                        count += 1
                    }
                }
                CPUBenchmarks.blackHole(x)
                total.add(count, ordering: .relaxed)
                group.leave()
            }.start()
        }
        group.wait()
        return total.load(ordering: .relaxed)
    }

    @inline(never) static func lockedWork(_ seed: UInt64) -> UInt64 {
        var x = seed
        for i in 0..<60 { x = (x ^ (x >> 31)) &* 0x94d0_49bb_1331_11eb &+ UInt64(i) }
        return x
    }

    @inline(never) static func unlockedWork(_ seed: UInt64) -> UInt64 {
        var x = seed
        for i in 0..<60 { x = (x ^ (x >> 27)) &* 0xbf58_476d_1ce4_e5b9 &+ UInt64(i) }
        return x
    }

    struct UnsafeSendable<T>: @unchecked Sendable {
        let value: T
        init(_ value: T) { self.value = value }
    }

    // MARK: - Cost per sampled thread

    /// N parked threads; a 2 s profile sampling all of them each period (cap = N, or 16 for
    /// 1,000): the process CPU time it adds over 2 s without it, per thread sample.
    static func costPerThread(parked: Int, seconds: Double = 2) throws {
        let condition = NSCondition()
        let parkedCount = Atomic<Int>(0)
        let release = Atomic<Bool>(false)
        for _ in 0..<parked {
            let thread = Thread {
                condition.lock()
                parkedCount.add(1, ordering: .relaxed)
                while !release.load(ordering: .relaxed) { condition.wait() }
                condition.unlock()
            }
            thread.stackSize = 128 * 1024
            thread.start()
        }
        while parkedCount.load(ordering: .relaxed) < parked { usleep(1000) }
        defer {
            release.store(true, ordering: .relaxed)
            condition.broadcast()
        }
        let cap = parked <= 64 ? parked + 8 : 16
        // One warm-up profile (first symbolization, tables), then off and on.
        try WallProfile.start(
            writingTo: ProfileBuffer(),
            rate: 100,
            options: WallProfile.Options(maxThreadsPerPeriod: cap)
        )
        try WallProfile.stop()
        let offBefore = CPUBenchmarks.processCPUSeconds()
        sleepFor(seconds)
        let offCPU = CPUBenchmarks.processCPUSeconds() - offBefore
        let onBefore = CPUBenchmarks.processCPUSeconds()
        try WallProfile.start(
            writingTo: ProfileBuffer(),
            rate: 100,
            options: WallProfile.Options(maxThreadsPerPeriod: cap)
        )
        sleepFor(seconds)
        let summary = try WallProfile.stop()!
        let onCPU = CPUBenchmarks.processCPUSeconds() - onBefore
        let perSample = (onCPU - offCPU) * 1e9 / Double(max(summary.samples, 1))
        print(
            "cost per sampled thread, \(parked) parked threads, at most \(cap) per period, 100 Hz, \(summary.samples) samples in \(summary.periods) periods:"
        )
        print(
            "  process CPU \(CPUBenchmarks.format(onCPU)) s vs \(CPUBenchmarks.format(offCPU)) s idle: "
                + "\(String(format: "%.1f", perSample / 1000)) µs per thread sample in all (incl. writing the profile); "
                + "sampler thread \(String(format: "%.1f", summary.samplerNanosPerSample / 1000)) µs per sample, "
                + "\(String(format: "%.2f", Double(summary.samplerCPUNanos) / Double(summary.durationNanos) * 100)) % of one core"
        )
    }

    /// Sleeps `seconds` even though the profiler's signals end each nanosleep early.
    static func sleepFor(_ seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline { usleep(10_000) }
    }
}
