import CPprof
import Foundation
@_spi(Testing) import Pprof
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Wall-clock profile workloads with measured ground truth. Each writes the profile(s) to the
/// path(s) given first and prints one JSON object with the measurements.
enum WallScenarios {
    // MARK: - A request handler: ~60 % waiting on a lock, ~30 % sleeping, ~10 % on the CPU.

    /// `wall-request <path> [seconds] [rate]`
    static func request(_ arguments: [String]) throws {
        guard let path = arguments.first else { throw ScenarioError.usage("missing output path") }
        let seconds = arguments.count > 1 ? Double(arguments[1]) ?? 6 : 6
        let rate = arguments.count > 2 ? Int(arguments[2]) ?? 100 : 100
        let lock = LockHandoff()
        let holder = Thread { lock.serve() }
        holder.start()
        let file = try CPUScenarios.createFile(path)
        try WallProfile.start(writingTo: file, rate: rate)
        let spent = Mutex<[Int64]>([])
        let handlerThread = Atomic<Int32>(0)
        _ = CPUScenarios.runThreads(1) { _ in
            handlerThread.store(pp_gettid(), ordering: .relaxed)
            let measured = withProfileLabels(ProfileLabels(["route": "/checkout"])) {
                handleCheckoutRequests(seconds: seconds, lock: lock)
            }
            spent.withLock { $0 = measured }
        }
        let summary = try WallProfile.stop()
        try file.close()
        lock.finish()
        let measured = spent.withLock { $0 }
        CPUScenarios.printJSON([
            "lockNanos": measured[0], "sleepNanos": measured[1], "cpuNanos": measured[2],
            "handoffNanos": measured[3], "totalNanos": measured[4],
            "lockRunDelayNanos": measured[5], "sleepRunDelayNanos": measured[6],
            "handlerTid": Int(handlerThread.load(ordering: .relaxed)),
            "periods": summary?.periods ?? -1, "samples": summary?.samples ?? -1,
        ])
    }

    /// The handler: request after request, each a lock wait, a sleep and a CPU burn of random
    /// lengths (mean 6, 3 and 1 ms), so no sampling period aliases with the pattern. Returns the
    /// nanoseconds of [lock, sleep, CPU, lock hand-off, total, and the run-queue delay (woken but
    /// not yet on a CPU, from /proc/thread-self/schedstat) within the lock and the sleep phases].
    @inline(never)
    static func handleCheckoutRequests(seconds: Double, lock: LockHandoff) -> [Int64] {
        var spent: [Int64] = Array(repeating: 0, count: 7)
        var random = SystemRandomNumberGenerator()
        let schedstat = open("/proc/thread-self/schedstat", O_RDONLY)
        defer { if schedstat >= 0 { close(schedstat) } }
        let start = monotonicNanos()
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            let scale = { Double.random(in: 0.5...1.5, using: &random) }
            let handoffStart = monotonicNanos()
            lock.requestHold(nanos: Int64(6_000_000 * scale()))
            spent[3] += monotonicNanos() - handoffStart
            var delay = runDelay(schedstat)
            spent[0] += wallLockStep(lock)
            var after = runDelay(schedstat)
            spent[5] += after - delay
            delay = after
            spent[1] += wallSleepStep(nanos: Int64(3_000_000 * scale()))
            after = runDelay(schedstat)
            spent[6] += after - delay
            spent[2] += wallBurnStep(nanos: Int64(1_000_000 * scale()))
        }
        spent[4] = monotonicNanos() - start
        return spent
    }

    /// The calling thread's run-queue delay so far (second field of its schedstat), or 0.
    static func runDelay(_ descriptor: Int32) -> Int64 {
        guard descriptor >= 0 else { return 0 }
        var buffer = [UInt8](repeating: 0, count: 96)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, 95, 0) }
        guard count > 0 else { return 0 }
        let fields = buffer.prefix(count).split(separator: UInt8(ascii: " "))
        guard fields.count >= 2 else { return 0 }
        return Int64(String(decoding: fields[1], as: UTF8.self)) ?? 0
    }

    /// Waits on the mutex the holder thread holds; returns the time spent in the lock call.
    @inline(never)
    static func wallLockStep(_ lock: LockHandoff) -> Int64 {
        let start = monotonicNanos()
        lock.lockAndUnlock()
        return monotonicNanos() - start
    }

    /// Sleeps until a deadline (the profiler's signal may end a nanosleep early).
    @inline(never)
    static func wallSleepStep(nanos: Int64) -> Int64 {
        let start = monotonicNanos()
        var deadline = timespec(
            tv_sec: Int((start + nanos) / 1_000_000_000),
            tv_nsec: Int((start + nanos) % 1_000_000_000)
        )
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nil) == EINTR {}
        return monotonicNanos() - start
    }

    @inline(never)
    static func wallBurnStep(nanos: Int64) -> Int64 {
        let start = monotonicNanos()
        var x: UInt64 = 0x2545_f491
        while monotonicNanos() - start < nanos {
            for i in 0..<500 { x = x &* 2_862_933_555_777_941_757 &+ UInt64(i) }
        }
        blackHole(x)
        return monotonicNanos() - start
    }

    /// A pthread mutex a holder thread takes on request, holds for a while (sleeping), and releases.
    final class LockHandoff: @unchecked Sendable {
        private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private let request = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
        private let held = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
        private let holdNanos = Atomic<Int64>(0)
        private let done = Atomic<Bool>(false)

        init() {
            pthread_mutex_init(mutex, nil)
            sem_init(request, 0, 0)
            sem_init(held, 0, 0)
        }

        func serve() {
            ThreadScenarios.nameCurrentThread("lock-holder")
            while true {
                while sem_wait(request) != 0 {}
                if done.load(ordering: .acquiring) { return }
                pthread_mutex_lock(mutex)
                sem_post(held)
                _ = WallScenarios.wallSleepStep(nanos: holdNanos.load(ordering: .acquiring))
                pthread_mutex_unlock(mutex)
            }
        }

        func requestHold(nanos: Int64) {
            holdNanos.store(nanos, ordering: .releasing)
            sem_post(request)
            while sem_wait(held) != 0 {}
        }

        func lockAndUnlock() {
            pthread_mutex_lock(mutex)
            pthread_mutex_unlock(mutex)
        }

        func finish() {
            done.store(true, ordering: .releasing)
            sem_post(request)
        }
    }

    // MARK: - 1,000 idle threads and 2 busy ones.

    /// `wall-many-threads <path> [idle] [seconds]`
    static func manyThreads(_ arguments: [String]) throws {
        guard let path = arguments.first else { throw ScenarioError.usage("missing output path") }
        let idle = arguments.count > 1 ? Int(arguments[1]) ?? 1000 : 1000
        let seconds = arguments.count > 2 ? Double(arguments[2]) ?? 5 : 5
        let condition = NSCondition()
        for index in 0..<idle {
            let thread = Thread {
                ThreadScenarios.nameCurrentThread("idle-\(index)")
                ThreadScenarios.parkInConditionWait(condition)
            }
            thread.stackSize = 128 * 1024
            thread.start()
        }
        while ThreadScenarios.parked.load(ordering: .relaxed) < idle { usleep(1000) }
        usleep(100_000)
        let file = try CPUScenarios.createFile(path)
        let started = monotonicNanos()
        try WallProfile.start(writingTo: file, rate: 100, options: WallProfile.Options(threadLabels: true))
        let tids = Mutex<[Int]>([])
        let lifetimes = Mutex<[Int64]>([])
        _ = CPUScenarios.runThreads(2) { _ in
            let born = monotonicNanos()
            ThreadScenarios.nameCurrentThread("busy")
            tids.withLock { $0.append(Int(pp_gettid())) }
            CPUScenarios.burnUntil(Double(started) / 1e9 + seconds)
            let lifetime = monotonicNanos() - born
            lifetimes.withLock { $0.append(lifetime) }
        }
        let summary = try WallProfile.stop()
        let duration = monotonicNanos() - started
        try file.close()
        CPUScenarios.printJSON([
            "busyTids": tids.withLock { $0 },
            "busyLifetimes": lifetimes.withLock { $0 },
            "durationNanos": duration,
            "periods": summary?.periods ?? -1,
            "samples": summary?.samples ?? -1,
            "threadsSeen": summary?.threadsSeen ?? -1,
            "samplerCPUNanos": summary?.samplerCPUNanos ?? -1,
            "samplerNanosPerSample": summary?.samplerNanosPerSample ?? -1,
        ])
    }

    // MARK: - Idle pool threads and a thread that blocks the signal.

    /// `wall-idle <path without idle> <path with idle>`: cooperative-pool threads that ran tasks and
    /// now wait for work, a thread that blocks every signal, and a labelled worker that sleeps.
    static func idlePool(_ arguments: [String]) throws {
        guard arguments.count >= 2 else { throw ScenarioError.usage("two output paths") }
        // Wake the cooperative pool: a few tasks at once, so several workers start, then finish.
        let group = DispatchGroup()
        for _ in 0..<4 {
            group.enter()
            Task.detached {
                _ = wallBurnStep(nanos: 20_000_000)
                group.leave()
            }
        }
        group.wait()
        let condition = NSCondition()
        Thread {
            ThreadScenarios.nameCurrentThread("blocker")
            var all = sigset_t()
            sigfillset(&all)
            pthread_sigmask(SIG_BLOCK, &all, nil)
            ThreadScenarios.parkInConditionWait(condition)
        }.start()
        while ThreadScenarios.parked.load(ordering: .relaxed) < 1 { usleep(1000) }
        usleep(200_000)
        var results: [String: Any] = [:]
        for (index, includeIdle) in [false, true].enumerated() {
            let file = try CPUScenarios.createFile(arguments[index])
            try WallProfile.start(writingTo: file, rate: 100, options: WallProfile.Options(includeIdle: includeIdle))
            _ = CPUScenarios.runThreads(1) { _ in
                withProfileLabels(ProfileLabels(["route": "/sleepy"])) {
                    _ = wallSleepStep(nanos: 1_000_000_000)
                }
            }
            let summary = try WallProfile.stop()
            try file.close()
            results["idleSamples\(index)"] = summary?.idleSamples ?? -1
            results["blockedSamples\(index)"] = summary?.blockedSignalSamples ?? -1
            results["periods\(index)"] = summary?.periods ?? -1
        }
        CPUScenarios.printJSON(results)
    }
}
