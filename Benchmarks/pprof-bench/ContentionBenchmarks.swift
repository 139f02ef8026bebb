import CPprof
import Foundation
import Pprof
import Synchronization

/// The cost of the lock hooks (pprof-bench links PprofHooks, so `pthread_mutex_lock` here is ours):
/// 1. an uncontended lock/unlock pair through the hooks against glibc's functions called directly
///    (its `__pthread_mutex_*` aliases, through the PLT as a program without hooks calls them),
///    interleaved rounds;
/// 2. contended workloads with both profiles off against block rate 1 + mutex fraction 1 (every
///    event recorded) and a production-like setting, interleaved rounds: throughput, process CPU
///    time per operation and events recorded per second;
/// 3. the cost of recording one event (stack capture + tables), from a known stack depth.
enum ContentionBenchmarks {
    static func run() throws {
        try uncontendedPair()
        // As many threads as cores contend without time slicing; twice as many also queue. How
        // often they collide depends on the machine's other load; the holder that sleeps makes
        // every acquisition contended whatever the load.
        contended(threads: 2, work: 1000)
        contended(threads: 4, work: 50)
        contended(threads: 4, work: 0, sleepingHolder: true)
        recordingCost()
    }

    // MARK: One recorded event

    static func recordingCost() {
        BlockProfile.rate = 1
        defer { BlockProfile.rate = 0 }
        let events = 200_000
        var costs: [Double] = []
        for _ in 0..<5 {
            costs.append(nestedRecording(depth: 20, events: events))
        }
        print(
            String(
                format:
                    "recording one block event, 20-frame stack (capture + dedup + counters), median of 5 x %d: %.0f ns CPU",
                events,
                median(costs)
            )
        )
    }

    /// Recurses `depth` frames, then records `events` events of 1 µs and returns ns per event.
    @inline(never) static func nestedRecording(depth: Int, events: Int) -> Double {
        if depth > 0 { return nestedRecording(depth: depth - 1, events: events) + 0 * Double(depth) }
        let start = threadCPUNanos()
        for _ in 0..<events { pp_contention_block_event(1000, 0) }
        return Double(threadCPUNanos() - start) / Double(events)
    }

    // MARK: Uncontended

    static func uncontendedPair() throws {
        let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        defer { mutex.deallocate() }

        let pairs = 2_000_000
        let rounds = 41
        var hooked: [Double] = []
        var direct: [Double] = []
        var hookedProfiling: [Double] = []
        for round in 0..<rounds {
            // Alternate the order so neither variant always runs first.
            let order = round % 2 == 0 ? [0, 1, 2] : [2, 1, 0]
            for variant in order {
                switch variant {
                case 0: direct.append(nanosPerPair(pairs) { glibcPair(mutex) })
                case 1: hooked.append(nanosPerPair(pairs) { hookedPair(mutex) })
                default:
                    BlockProfile.rate = 1
                    MutexProfile.fraction = 1
                    hookedProfiling.append(nanosPerPair(pairs) { hookedPair(mutex) })
                    BlockProfile.rate = 0
                    MutexProfile.fraction = 0
                }
            }
        }
        // Noise from other processes only ever adds time: the fastest round of each variant is the
        // steadiest comparison; the median of per-round differences is shown too.
        print(
            "uncontended pthread_mutex_lock+unlock pair, \(rounds) interleaved rounds of \(pairs) pairs (thread CPU time):"
        )
        print("                                   fastest round   median")
        let rows: [(String, [Double])] = [
            ("glibc, called as without hooks", direct), ("through the hooks, profiles off", hooked),
            ("through the hooks, rate 1/1", hookedProfiling),
        ]
        for (name, values) in rows {
            print(
                String(
                    format: "  %-32@ %6.2f ns (%+.2f)  %6.2f ns (%+.2f)",
                    name as NSString,
                    values.min()!,
                    values.min()! - direct.min()!,
                    median(values),
                    median(values) - median(direct)
                )
            )
        }
        print(
            String(
                format: "  per-round difference, hooks - glibc: median %+.2f ns   (budget: +2 ns)",
                median(zip(hooked, direct).map { $0 - $1 })
            )
        )
    }

    // Both variants are one out-of-line function making the same two calls. Without the hooks a
    // program calls pthread_mutex_lock through its PLT into glibc; glibc's own aliases
    // (__pthread_mutex_lock, same code) are reached the same way, as the hooks are not.
    @inline(never) static func glibcPair(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        _ = glibcMutexLock(mutex)
        _ = glibcMutexUnlock(mutex)
    }

    @inline(never) static func hookedPair(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        pthread_mutex_lock(mutex)
        pthread_mutex_unlock(mutex)
    }

    /// Thread CPU time per call, so that time spent descheduled (other processes) does not count.
    static func nanosPerPair(_ pairs: Int, _ body: () -> Void) -> Double {
        let start = threadCPUNanos()
        for _ in 0..<pairs { body() }
        return Double(threadCPUNanos() - start) / Double(pairs)
    }

    static func threadCPUNanos() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    // MARK: Contended

    struct Round {
        var operationsPerSecond: Double
        /// Process CPU time (user + system) per operation.
        var cpuNanosPerOperation: Double
        /// Events recorded in the block and mutex profiles per second.
        var eventsPerSecond: Double
    }

    /// `threads` threads take one mutex in a loop, doing `work` steps (~1 ns each) inside and as many
    /// outside, for a fixed time; prints throughput, CPU time per operation and events recorded
    /// per setting, and the per-round ratio to the adjacent "off" round.
    static func contended(threads: Int, work: Int, sleepingHolder: Bool = false) {
        let settings: [(name: String, rate: Int, fraction: Int)] = [
            ("off", 0, 0), ("rate 1 / fraction 1", 1, 1), ("rate 10 µs / fraction 10", 10_000, 10),
        ]
        var results: [[Round]] = Array(repeating: [], count: settings.count)
        let rounds = 10
        for round in 0..<rounds {
            let order = round % 2 == 0 ? Array(settings.indices) : settings.indices.reversed()
            for index in order {
                BlockProfile.rate = settings[index].rate
                MutexProfile.fraction = settings[index].fraction
                results[index].append(
                    contendedRound(threads: threads, work: work, sleepingHolder: sleepingHolder, milliseconds: 200)
                )
            }
        }
        BlockProfile.rate = 0
        MutexProfile.fraction = 0
        let shape =
            sleepingHolder ? "each holding it across a 20 µs sleep" : "~\(work) ns of work in and out of the lock"
        print(
            "contended pthread mutex, \(threads) threads, \(shape), \(rounds) interleaved rounds of 200 ms (medians):"
        )
        for (index, setting) in settings.enumerated() {
            let throughputRatio = median(
                zip(results[index], results[0]).map { $0.operationsPerSecond / $1.operationsPerSecond }
            )
            let cpuRatio = median(
                zip(results[index], results[0]).map { $0.cpuNanosPerOperation / $1.cpuNanosPerOperation }
            )
            print(
                String(
                    format: "  %-26@ %9.0f ops/s (%+5.1f%%)  %7.1f ns CPU/op (%+5.1f%%)  %8.0f events/s",
                    setting.name as NSString,
                    median(results[index].map(\.operationsPerSecond)),
                    (throughputRatio - 1) * 100,
                    median(results[index].map(\.cpuNanosPerOperation)),
                    (cpuRatio - 1) * 100,
                    median(results[index].map(\.eventsPerSecond))
                )
            )
        }
    }

    static func contendedRound(threads: Int, work: Int, sleepingHolder: Bool, milliseconds: Int) -> Round {
        let shared = SharedMutex()
        let operations = Atomic<Int>(0)
        let eventsBefore = recordedEvents()
        let cpuBefore = processCPUNanos()
        let start = monotonicNanos()
        let deadline = start + Int64(milliseconds) * 1_000_000
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            Thread {
                var count = 0
                var local: UInt64 = 1
                while monotonicNanos() < deadline {
                    pthread_mutex_lock(shared.mutex)
                    shared.state = lcg(shared.state, work)
                    if sleepingHolder { usleep(20) }
                    pthread_mutex_unlock(shared.mutex)
                    local = lcg(local, work)
                    count += 1
                }
                blackHole(local)
                operations.add(count, ordering: .relaxed)
                group.leave()
            }.start()
        }
        group.wait()
        let elapsed = Double(monotonicNanos() - start) / 1e9
        let count = Double(operations.load(ordering: .relaxed))
        return Round(
            operationsPerSecond: count / elapsed,
            cpuNanosPerOperation: Double(processCPUNanos() - cpuBefore) / count,
            eventsPerSecond: Double(recordedEvents() - eventsBefore) / elapsed
        )
    }

    /// Events sampled into both profiles so far.
    static func recordedEvents() -> Int64 {
        var total: Int64 = 0
        for kind in [PP_CONTENTION_BLOCK, PP_CONTENTION_MUTEX] {
            guard let profile = pp_contention_profile_get(kind) else { continue }
            withUnsafeMutablePointer(to: &total) { total in
                pp_bucket_table_visit(
                    profile.pointee.buckets,
                    { context, _, counters in
                        context!.assumingMemoryBound(to: Int64.self).pointee += counters![PP_CONTENTION_COUNTER_EVENTS]
                    },
                    total
                )
            }
        }
        return total
    }

    static func processCPUNanos() -> Int64 {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func nanos(_ time: timeval) -> Int64 { Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_usec) * 1000 }
        return nanos(usage.ru_utime) + nanos(usage.ru_stime)
    }

    /// `steps` dependent multiply-adds (about 1 ns each) that the optimizer cannot fold.
    @inline(never) static func lcg(_ seed: UInt64, _ steps: Int) -> UInt64 {
        var value = seed
        for _ in 0..<steps { value = value &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407 }
        return value
    }

    final class SharedMutex: @unchecked Sendable {
        /// Guarded by `mutex`.
        var state: UInt64 = 1
        let mutex: UnsafeMutablePointer<pthread_mutex_t>
        init() {
            mutex = .allocate(capacity: 1)
            pthread_mutex_init(mutex, nil)
        }
        deinit { mutex.deallocate() }
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1
            ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static func monotonicNanos() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    @inline(never) static func blackHole(_ value: UInt64) {
        if value == 42 { print("") }
    }
}

// glibc's aliases of the mutex functions, which the hooks do not replace (compatibility symbols
// of the first glibc version of the architecture; the C calling convention matches for these
// signatures).
#if arch(x86_64)
    @_silgen_name("__pthread_mutex_lock@GLIBC_2.2.5")
    func glibcMutexLock(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) -> Int32
    @_silgen_name("__pthread_mutex_unlock@GLIBC_2.2.5")
    func glibcMutexUnlock(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) -> Int32
#elseif arch(arm64)
    @_silgen_name("__pthread_mutex_lock@GLIBC_2.17")
    func glibcMutexLock(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) -> Int32
    @_silgen_name("__pthread_mutex_unlock@GLIBC_2.17")
    func glibcMutexUnlock(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) -> Int32
#endif
