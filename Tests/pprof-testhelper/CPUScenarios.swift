import CPprof
import Foundation
@_spi(Testing) import Pprof
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// CPU-profile workloads with known ground truth. Each writes the profile to the path given as
/// its first argument and prints one JSON object with the measurements to stdout.
///
/// Arguments after the path are `key=value`: `rate` (Hz), `engine` (`perfEvent`, `threadTimer`,
/// `processTimer`, or `auto`), `seconds`, `threads`.
enum CPUScenarios {
    struct Settings: Sendable {
        var path: String
        var rate = 100
        var engine: CPUProfile.Engine?
        var seconds = 5.0
        var threads = 2
        var cycles = 1000
        var foreign: String?
        /// The aliasing workload's cycle (A then B), in sampling periods.
        var alternation = 1.0

        init(_ arguments: [String]) throws {
            guard let path = arguments.first else { throw ScenarioError.usage("missing output path") }
            self.path = path
            for argument in arguments.dropFirst() {
                let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw ScenarioError.usage("bad argument \(argument)") }
                switch parts[0] {
                case "rate": rate = Int(parts[1]) ?? rate
                case "engine": engine = CPUProfile.Engine(rawValue: parts[1])
                case "seconds": seconds = Double(parts[1]) ?? seconds
                case "threads": threads = Int(parts[1]) ?? threads
                case "cycles": cycles = Int(parts[1]) ?? cycles
                case "announce": break
                case "foreign": foreign = parts[1]
                case "alternation": alternation = Double(parts[1]) ?? alternation
                default: throw ScenarioError.usage("unknown argument \(argument)")
                }
            }
        }

        var options: CPUProfile.Options {
            var options = CPUProfile.Options(threadLabels: true)
            options.engine = engine
            return options
        }
    }

    // MARK: - Accuracy: N threads burn CPU for a while; compare with rusage.

    static func accuracy(_ arguments: [String]) throws {
        let settings = try Settings(arguments)
        let file = try createFile(settings.path)
        try CPUProfile.start(writingTo: file, rate: settings.rate, options: settings.options)
        let engine = CPUProfile.engine
        let before = processCPUNanos()
        let deadline = monotonicSeconds() + settings.seconds
        let tids = Mutex<[Int]>([])
        let threadCPU = runThreads(settings.threads) { _ in
            tids.withLock { $0.append(Int(ProcessThreadID.current)) }
            burnUntil(deadline)
        }
        let after = processCPUNanos()
        let summary = try CPUProfile.stop()
        try file.close()
        printJSON([
            "engine": engine?.rawValue ?? "",
            "processCPUNanos": after.total - before.total,
            "processUserNanos": after.user - before.user,
            "threadCPUNanos": threadCPU,
            "tids": tids.withLock { $0 },
            "samples": summary?.samples ?? -1,
            "lostSamples": summary?.lostSamples ?? -1,
            "threadsSampled": summary?.threadsSampled ?? -1,
        ])
    }

    // MARK: - Windows: the accuracy workload, cut into back-to-back windows written to path.1, path.2, …

    static func windows(_ arguments: [String]) throws {
        let settings = try Settings(arguments)
        let windows = max(settings.cycles, 1)
        let files = try (1...windows).map { try createFile("\(settings.path).\($0)") }
        // Each cut writes the closed window on the cutting thread; loading the symbol tables on
        // the first would delay the next cut by a second in a debug build, so they load first.
        try Profile.lookup("goroutine")?.write(to: ProfileBuffer(), debug: 0)
        try CPUProfile.start(writingTo: files[0], rate: settings.rate, options: settings.options)
        let before = processCPUNanos()
        let start = monotonicSeconds()
        let deadline = start + settings.seconds
        let cutter = Thread {
            for index in 1..<windows {
                let cut = start + settings.seconds * Double(index) / Double(windows)
                while monotonicSeconds() < cut { usleep(2_000) }
                try! CPUProfile.startNextWindow(writingTo: files[index])
            }
        }
        cutter.start()
        _ = runThreads(settings.threads) { _ in burnUntil(deadline) }
        while !cutter.isFinished { usleep(1_000) }
        let after = processCPUNanos()
        try CPUProfile.stop()
        for file in files { try file.close() }
        let notRunning: String
        do {
            try CPUProfile.startNextWindow(writingTo: ProfileBuffer())
            notRunning = "no error"
        } catch {
            notRunning = "\(error)"
        }
        printJSON([
            "processCPUNanos": after.total - before.total,
            "windows": windows,
            "notRunningError": notRunning,
        ])
    }

    @inline(never)
    static func burnUntil(_ deadline: Double) {
        var x: UInt64 = 0x9e37_79b9
        while monotonicSeconds() < deadline {
            for i in 0..<20_000 { x = x &* 6_364_136_223_846_793_005 &+ UInt64(i) }
        }
        blackHole(x)
    }

    // MARK: - Shares: each thread (`threads`, default 1 here) spends ~50/30/20 % of its CPU in three functions.

    static func shares(_ arguments: [String]) throws {
        let settings = try Settings(arguments)
        let file = try createFile(settings.path)
        try CPUProfile.start(writingTo: file, rate: settings.rate, options: settings.options)
        let engine = CPUProfile.engine
        let spent = Mutex<[Int64]>([0, 0, 0])
        _ = runThreads(settings.threads) { _ in
            let measured = sharesWorkerEntry(seconds: settings.seconds)
            spent.withLock { total in
                for index in 0..<3 { total[index] += measured[index] }
            }
        }
        try CPUProfile.stop()
        try file.close()
        printJSON(["engine": engine?.rawValue ?? "", "spentNanos": spent.withLock { $0 }])
    }

    /// The thread's entry function: every sample in the three functions must show it. Runs for
    /// `seconds` of the thread's CPU time, so a busy machine cannot starve it of samples.
    @inline(never)
    static func sharesWorkerEntry(seconds: Double) -> [Int64] {
        var spent: [Int64] = [0, 0, 0]
        var random = SystemRandomNumberGenerator()
        let budget = threadCPUNanos() + Int64(seconds * 1e9)
        while threadCPUNanos() < budget {
            // Random pieces of random length, so no sampling period can alias with the pattern.
            let choice = Int.random(in: 0..<100, using: &random)
            let iterations = Int.random(in: 2_000...40_000, using: &random)
            let start = threadCPUNanos()
            if choice < 50 {
                blackHole(shareFifty(iterations))
                spent[0] += threadCPUNanos() - start
            } else if choice < 80 {
                blackHole(shareThirty(iterations))
                spent[1] += threadCPUNanos() - start
            } else {
                blackHole(shareTwenty(iterations))
                spent[2] += threadCPUNanos() - start
            }
        }
        return spent
    }

    // Three distinct functions for the profile to tell apart; the work itself is shared.
    @inline(never)
    static func shareFifty(_ iterations: Int) -> UInt64 { mix(iterations, seed: 1) }

    @inline(never)
    static func shareThirty(_ iterations: Int) -> UInt64 { mix(iterations, seed: 2) }

    @inline(never)
    static func shareTwenty(_ iterations: Int) -> UInt64 { mix(iterations, seed: 3) }

    @inline(__always)
    static func mix(_ iterations: Int, seed: UInt64) -> UInt64 {
        var x = seed
        for i in 0..<iterations { x = x &* 6_364_136_223_846_793_005 &+ UInt64(i) }
        return x
    }

    // MARK: - Aliasing: one thread alternates two functions in a cycle of `alternation` sampling periods.

    static func aliasing(_ arguments: [String]) throws {
        let settings = try Settings(arguments)
        let file = try createFile(settings.path)
        try CPUProfile.start(writingTo: file, rate: settings.rate, options: settings.options)
        let engine = CPUProfile.engine
        let half = Int64(settings.alternation * 1e9 / Double(settings.rate) / 2)
        let spent = Mutex<[Int64]>([0, 0])
        _ = runThreads(1) { _ in
            let measured = aliasingWorkerEntry(seconds: settings.seconds, half: half)
            spent.withLock { $0 = measured }
        }
        try CPUProfile.stop()
        try file.close()
        // Each signal re-arms its timer: none may be left armed by a handler that ran during stop.
        var processTimer = itimerval()
        getitimer(__itimer_which_t(ITIMER_PROF.rawValue), &processTimer)
        let processTimerArmed = processTimer.it_value.tv_sec != 0 || processTimer.it_value.tv_usec != 0
        printJSON([
            "engine": engine?.rawValue ?? "", "spentNanos": spent.withLock { $0 },
            "processTimerArmed": processTimerArmed,
        ])
    }

    /// Runs `aliasFirst` and `aliasSecond` for `half` ns of thread CPU time each, in turn, for
    /// `seconds` of CPU: a pattern locked to a fixed sampling period that a fixed-period sampler
    /// would see as all one function.
    @inline(never)
    static func aliasingWorkerEntry(seconds: Double, half: Int64) -> [Int64] {
        var spent: [Int64] = [0, 0]
        var now = threadCPUNanos()
        let budget = now + Int64(seconds * 1e9)
        while now < budget {
            let firstStart = now
            now = aliasFirst(until: firstStart + half)
            spent[0] += now - firstStart
            let secondStart = now
            now = aliasSecond(until: secondStart + half)
            spent[1] += now - secondStart
        }
        return spent
    }

    /// Spins until the thread's CPU clock reaches `deadline`; returns the clock.
    @inline(never)
    static func aliasFirst(until deadline: Int64) -> Int64 {
        var x: UInt64 = 0x2545_f491
        var now = threadCPUNanos()
        while now < deadline {
            for i in 0..<2_000 { x = x &* 6_364_136_223_846_793_005 &+ UInt64(i) }
            now = threadCPUNanos()
        }
        blackHole(x)
        return now
    }

    /// As `aliasFirst`, with other arithmetic so that the two cannot be merged.
    @inline(never)
    static func aliasSecond(until deadline: Int64) -> Int64 {
        var x: UInt64 = 0x9e37_79b9
        var now = threadCPUNanos()
        while now < deadline {
            for i in 0..<2_000 { x = (x ^ UInt64(i)) &* 0xbf58_476d_1ce4_e5b9 }
            now = threadCPUNanos()
        }
        blackHole(x)
        return now
    }

    // MARK: - Two threads burning exactly the same CPU time.

    static func equalThreads(_ arguments: [String]) throws {
        let settings = try Settings(arguments)
        let file = try createFile(settings.path)
        try CPUProfile.start(writingTo: file, rate: settings.rate, options: settings.options)
        let engine = CPUProfile.engine
        let budget = Int64(settings.seconds * 1e9)
        let tids = Mutex<[Int32]>([])
        let threadCPU = runThreads(2) { _ in
            tids.withLock { $0.append(ProcessThreadID.current) }
            burnThreadCPU(budget)
        }
        try CPUProfile.stop()
        try file.close()
        printJSON([
            "engine": engine?.rawValue ?? "", "threadCPUNanos": threadCPU,
            "tids": tids.withLock { $0.map(Int.init) },
        ])
    }

    @inline(never)
    static func burnThreadCPU(_ nanos: Int64) {
        var x: UInt64 = 7
        let end = threadCPUNanos() + nanos
        while threadCPUNanos() < end {
            for i in 0..<20_000 { x = x &* 6_364_136_223_846_793_005 &+ UInt64(i) }
        }
        blackHole(x)
    }

    // MARK: - Short-lived threads, armed when they start (as the pthread_create hook does).

    static func shortThreads(_ arguments: [String]) throws {
        let settings = try Settings(arguments)
        let announce = arguments.contains("announce=1")
        let file = try createFile(settings.path)
        try CPUProfile.start(writingTo: file, rate: settings.rate, options: settings.options)
        // The CPU each thread spent in its entry function, the part of its life the profile must
        // show. (Its whole life also holds kernel work it happened to run, such as softirqs freeing
        // exited threads, seen here at up to 0.2 s on one thread.)
        let entryNanos = Mutex<[Int64]>([])
        for _ in 0..<settings.threads / 2 {
            _ = runThreads(2) { _ in
                // What PprofHooks' pthread_create hook does before the start routine runs.
                if announce { pp_thread_events_notify_start() }
                let before = threadCPUNanos()
                shortThreadEntry(nanos: 4_000_000)
                let used = threadCPUNanos() - before
                entryNanos.withLock { $0.append(used) }
            }
        }
        let summary = try CPUProfile.stop()
        try file.close()
        printJSON([
            "entryCPUNanos": entryNanos.withLock { $0 },
            "threadsSampled": summary?.threadsSampled ?? -1,
        ])
    }

    @inline(never)
    static func shortThreadEntry(nanos: Int64) {
        burnThreadCPU(nanos)
    }

    // MARK: - Signals owned by someone else, and threads that block the profiling signal

    /// Installs handlers of its own (never triggered) on the signals named by `foreign=`
    /// (`PROF`, `PROF,URG`), then profiles two busy threads and one busy thread that blocks every
    /// signal: the profiler must use another signal, leave the foreign handlers alone, refuse the
    /// SIGPROF-only engine, and report the blocking thread instead of losing it silently.
    static func foreignSignals(_ arguments: [String]) throws {
        let settings = try Settings(arguments)
        // A child of a libdispatch worker inherits its mask (which blocks real-time signals).
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        let foreignSignals = (settings.foreign ?? "PROF").split(separator: ",").map { $0 == "URG" ? SIGURG : SIGPROF }
        var foreign = sigaction()
        foreign.__sigaction_handler.sa_sigaction = { _, _, _ in }
        foreign.sa_flags = SA_SIGINFO
        for signal in foreignSignals { sigaction(signal, &foreign, nil) }

        var processTimerError = ""
        var options = settings.options
        options.engine = .processTimer
        do {
            try CPUProfile.start(writingTo: ProfileBuffer(), options: options)
            try CPUProfile.stop()
        } catch {
            processTimerError = "\(error)"
        }

        // The blocking thread exists (and blocks) before the profile starts.
        let go = DispatchSemaphore(value: 0)
        let ready = DispatchSemaphore(value: 0)
        let blockerTid = Atomic<Int32>(0)
        let blocker = Thread {
            var all = sigset_t()
            sigfillset(&all)
            pthread_sigmask(SIG_SETMASK, &all, nil)
            blockerTid.store(ProcessThreadID.current, ordering: .relaxed)
            ready.signal()
            go.wait()
            burnThreadCPU(300_000_000)
        }
        blocker.start()
        ready.wait()

        let file = try createFile(settings.path)
        try CPUProfile.start(writingTo: file, rate: settings.rate, options: settings.options)
        go.signal()
        let deadline = monotonicSeconds() + settings.seconds
        _ = runThreads(2) { _ in burnUntil(deadline) }
        while !blocker.isFinished { usleep(1000) }
        let summary = try CPUProfile.stop()
        try file.close()

        var untouched = true
        for signal in foreignSignals {
            var current = sigaction()
            sigaction(signal, nil, &current)
            untouched =
                untouched
                && current.__sigaction_handler.sa_sigaction.map { unsafeBitCast($0, to: UInt.self) }
                    == foreign.__sigaction_handler.sa_sigaction.map { unsafeBitCast($0, to: UInt.self) }
        }
        printJSON([
            "signal": Int(summary?.signal ?? -1), "foreignUntouched": untouched,
            "processTimerError": processTimerError, "threadsNotSampled": summary?.threadsNotSampled ?? -1,
            "blockerTid": Int(blockerTid.load(ordering: .relaxed)),
        ])
    }

    // MARK: - Start/stop cycles while threads come and go: nothing may leak.

    static func cycles(_ arguments: [String]) throws {
        let settings = try Settings(arguments)
        let baseline = ResourceCounts.current()
        let churning = Atomic<Bool>(true)
        let churnCount = Atomic<Int>(0)
        let churner = Thread {
            while churning.load(ordering: .acquiring) {
                _ = runThreads(4) { index in
                    burnThreadCPU(Int64(100_000 * (index + 1)))
                }
                churnCount.add(1, ordering: .relaxed)
            }
        }
        churner.start()
        let buffer = ProfileBuffer()
        var samples: Int64 = 0
        var duringRun = ResourceCounts.current()
        for cycle in 0..<settings.cycles {
            buffer.reset()
            try CPUProfile.start(writingTo: buffer, rate: settings.rate, options: settings.options)
            burnThreadCPU(200_000)
            if cycle == settings.cycles / 2 { duringRun = ResourceCounts.current() }
            samples += try CPUProfile.stop()?.samples ?? 0
        }
        churning.store(false, ordering: .releasing)
        while !churner.isFinished { usleep(1000) }
        usleep(50_000)
        let final = ResourceCounts.current()
        printJSON([
            "cycles": settings.cycles,
            "threadBatches": churnCount.load(ordering: .relaxed),
            "samples": samples,
            "baseline": baseline.dictionary, "duringRun": duringRun.dictionary, "final": final.dictionary,
        ])
    }

    struct ResourceCounts {
        var fds: Int
        var threads: Int
        var timers: Int

        static func current() -> ResourceCounts {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
            let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1
            let timerText = (try? String(contentsOfFile: "/proc/self/timers", encoding: .utf8)) ?? ""
            let timers = timerText.split(separator: "\n").filter { $0.hasPrefix("ID:") }.count
            return ResourceCounts(fds: fds, threads: threads, timers: timers)
        }

        var dictionary: [String: Int] { ["fds": fds, "threads": threads, "timers": timers] }
    }

    // MARK: - Support

    /// Runs `count` threads (plain pthreads) and returns the CPU time each used.
    static func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) -> [Int64] {
        let results = Mutex<[Int64]>(Array(repeating: 0, count: count))
        var threads: [pthread_t] = []
        for index in 0..<count {
            let work: () -> Void = {
                body(index)
                let used = threadCPUNanos()
                results.withLock { $0[index] = used }
            }
            let box = Unmanaged.passRetained(WorkBox(work)).toOpaque()
            var thread = pthread_t()
            let created = pthread_create(
                &thread,
                nil,
                { context in
                    Unmanaged<WorkBox>.fromOpaque(context!).takeRetainedValue().work()
                    return nil
                },
                box
            )
            precondition(created == 0, "pthread_create failed")
            threads.append(thread)
        }
        for thread in threads { pthread_join(thread, nil) }
        return results.withLock { $0 }
    }

    final class WorkBox {
        let work: () -> Void
        init(_ work: @escaping () -> Void) { self.work = work }
    }

    static func createFile(_ path: String) throws -> FileHandle {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw ScenarioError.usage("cannot create \(path)")
        }
        return try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    }

    static func printJSON(_ object: [String: Any]) {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}

enum ProcessThreadID {
    static var current: Int32 { pp_gettid() }
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

func threadCPUNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

func processCPUNanos() -> (total: Int64, user: Int64) {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let user = Int64(usage.ru_utime.tv_sec) * 1_000_000_000 + Int64(usage.ru_utime.tv_usec) * 1000
    let system = Int64(usage.ru_stime.tv_sec) * 1_000_000_000 + Int64(usage.ru_stime.tv_usec) * 1000
    return (user + system, user)
}

@inline(never)
func blackHole(_ value: UInt64) {
    if value == 0x5eed_5eed_5eed_5eed { print("") }
}

// MARK: - Stacks through code without frame pointers, and async callers (need the full walker).

extension CPUScenarios {
    /// A thread that spends its time in libc's memcpy (no frame pointers in Debian's glibc).
    static func memcpy(_ arguments: [String]) throws {
        try profileOneThread(arguments) { settings in copyLargeBuffers(seconds: settings.seconds) }
    }

    @inline(never)
    static func copyLargeBuffers(seconds: Double) {
        let size = 32 << 20
        let source = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        let destination = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer {
            source.deallocate()
            destination.deallocate()
        }
        source.initializeMemory(as: UInt8.self, repeating: 1, count: size)
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            Glibc.memcpy(destination, source, size)
        }
    }

    /// A thread that sorts with libc's qsort and a Swift comparator.
    static func qsort(_ arguments: [String]) throws {
        try profileOneThread(arguments) { settings in sortWithQsort(seconds: settings.seconds) }
    }

    /// Profiles one thread running `body` and prints its tid.
    static func profileOneThread(_ arguments: [String], _ body: @escaping @Sendable (Settings) -> Void) throws {
        let settings = try Settings(arguments)
        let file = try createFile(settings.path)
        try CPUProfile.start(writingTo: file, rate: settings.rate, options: settings.options)
        let tid = Atomic<Int32>(0)
        _ = runThreads(1) { _ in
            tid.store(ProcessThreadID.current, ordering: .relaxed)
            body(settings)
        }
        try CPUProfile.stop()
        try file.close()
        printJSON(["tid": Int(tid.load(ordering: .relaxed))])
    }

    @inline(never)
    static func sortWithQsort(seconds: Double) {
        var values = (0..<200_000).map { UInt64($0) &* 0x9e37_79b9_7f4a_7c15 }
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            values.shuffle()
            values.withUnsafeMutableBufferPointer { buffer in
                Glibc.qsort(buffer.baseAddress!, buffer.count, MemoryLayout<UInt64>.stride) { a, b in
                    let left = a!.load(as: UInt64.self)
                    let right = b!.load(as: UInt64.self)
                    return left < right ? -1 : (left > right ? 1 : 0)
                }
            }
        }
    }

    /// An async chain outer -> middle -> inner that burns CPU in inner after an await.
    static func asyncChain(_ arguments: [String]) throws {
        let settings = try Settings(arguments)
        let file = try createFile(settings.path)
        try CPUProfile.start(writingTo: file, rate: settings.rate, options: settings.options)
        let done = DispatchSemaphore(value: 0)
        let seconds = settings.seconds
        Task.detached {
            await asyncOuter(seconds: seconds)
            done.signal()
        }
        done.wait()
        try CPUProfile.stop()
        try file.close()
        printJSON(["engine": settings.engine?.rawValue ?? "auto"])
    }

    @inline(never)
    static func asyncOuter(seconds: Double) async {
        await asyncMiddle(seconds: seconds)
        blackHole(1)
    }

    @inline(never)
    static func asyncMiddle(seconds: Double) async {
        await asyncInner(seconds: seconds)
        blackHole(2)
    }

    @inline(never)
    static func asyncInner(seconds: Double) async {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            // Suspend now and then, so the burning resumes from an async context each time.
            await Task.yield()
            var x: UInt64 = 11
            for i in 0..<200_000 { x = x &* 6_364_136_223_846_793_005 &+ UInt64(i) }
            blackHole(x)
        }
    }
}
