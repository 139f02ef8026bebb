import CPprof
import CTestSupport
import Foundation
@_spi(Testing) import Pprof
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Scenarios of the robustness audit: interplays between mechanisms that share a signal or a table.
enum AuditScenarios {
    static let phase = Atomic<Int>(0)

    /// `cpu-perf-after-dump <path> engine=perfEvent rate=… seconds=…`: a thread dump's SIGPROF is
    /// pending on a CPU-profiled thread (the thread blocks SIGPROF for a moment) while its perf event
    /// overflows. The kernel drops the overflow's signal (a standard signal is queued once); the
    /// thread must still be sampled afterwards, in `burnAfterDump`. Prints the engine and the tid.
    static func perfAfterDump(_ arguments: [String]) throws {
        let settings = try CPUScenarios.Settings(arguments)
        let file = try CPUScenarios.createFile(settings.path)
        try CPUProfile.start(writingTo: file, rate: settings.rate, options: settings.options)
        let engine = CPUProfile.engine
        let tid = Atomic<Int32>(0)
        let dumper = Thread {
            while phase.load(ordering: .acquiring) < 1 { usleep(1000) }
            // The worker blocks SIGPROF: the request stays pending on it after the dump gives up.
            _ = try? Profile.lookup("goroutine")!.write(to: ProfileBuffer(), debug: 1)
            phase.store(2, ordering: .releasing)
        }
        dumper.start()
        let threadCPU = CPUScenarios.runThreads(1) { _ in
            tid.store(pp_gettid(), ordering: .relaxed)
            CPUScenarios.burnThreadCPU(50_000_000)
            var profiling = sigset_t()
            sigemptyset(&profiling)
            sigaddset(&profiling, SIGPROF)
            pthread_sigmask(SIG_BLOCK, &profiling, nil)
            phase.store(1, ordering: .releasing)
            while phase.load(ordering: .acquiring) < 2 { usleep(1000) }
            burnWhileDumpPending(50_000_000)
            pthread_sigmask(SIG_UNBLOCK, &profiling, nil)
            burnAfterDump(Int64(settings.seconds * 1e9))
        }
        try CPUProfile.stop()
        try file.close()
        CPUScenarios.printJSON([
            "engine": engine?.rawValue ?? "", "tid": Int(tid.load(ordering: .relaxed)), "threadCPUNanos": threadCPU,
        ])
    }

    @inline(never) static func burnWhileDumpPending(_ nanos: Int64) {
        CPUScenarios.burnThreadCPU(nanos)
        blackHole(1)
    }

    @inline(never) static func burnAfterDump(_ nanos: Int64) {
        CPUScenarios.burnThreadCPU(nanos)
        blackHole(2)
    }
}

extension AuditScenarios {
    static let stopDumping = Atomic<Bool>(false)

    /// `thread-dump-fork <forks>`: one thread dumps 20 parked threads back to back while another
    /// forks; each child dumps its own thread. Prints how many children finished, failed or hung
    /// (a child inherits the dump lock held by a thread that does not exist in it).
    static func forkWhileDumping(_ arguments: [String]) throws {
        let forks = Int(arguments.first ?? "20") ?? 20
        ThreadScenarios.startParkedThreads(count: 20)
        let dumps = Atomic<Int>(0)
        let dumper = Thread {
            let directory = pp_thread_list_open()
            var tids = [Int32](repeating: 0, count: 256)
            tids.removeSubrange(Int(pp_thread_list_read(directory, &tids, 256))...)
            close(directory)
            var out = [pp_thread_stack](repeating: pp_thread_stack(), count: tids.count)
            while !stopDumping.load(ordering: .relaxed) {
                _ = pp_thread_dump(&tids, Int32(tids.count), &out, 8, 1_000_000_000)
                dumps.add(1, ordering: .relaxed)
            }
        }
        dumper.start()
        while dumps.load(ordering: .relaxed) == 0 { usleep(1000) }
        var finished = 0
        var failed = 0
        var hung = 0
        for _ in 0..<forks {
            let status = ctest_fork_and_dump(3000)
            if status == 0 { finished += 1 } else if status == -1 { hung += 1 } else { failed += 1 }
        }
        stopDumping.store(true, ordering: .relaxed)
        print("finished \(finished) failed \(failed) hung \(hung) dumps \(dumps.load(ordering: .relaxed))")
    }
}

extension AuditScenarios {
    /// `unwind-foreign-segv-handler`: fault recovery is set up (a thread dump prepares the walker),
    /// then the program installs a SIGSEGV handler of its own that treats every fault as a crash
    /// (exit 42), then a walk meets a frame pointer into unreadable memory. The walk must not fault
    /// into that handler. Prints what the walk returned. (Walkers notice a displaced handler within
    /// a tick of the coarse clock, hence the pause.)
    static func foreignSegvHandler(_: [String]) throws {
        _ = try Profile.lookup("goroutine")!.write(to: ProfileBuffer(), debug: 1)
        var crash = sigaction()
        crash.__sigaction_handler.sa_handler = { _ in _exit(42) }
        sigaction(SIGSEGV, &crash, nil)
        sigaction(SIGBUS, &crash, nil)
        usleep(50_000)
        let page = mmap(nil, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        var regs = pp_regs()
        regs.fp = UInt(bitPattern: page)
        var pcs = [UInt](repeating: 0, count: 8)
        var flags: UInt32 = 0
        let count = pp_unwind(&regs, UInt32(PP_UNWIND_FAULTS_UNBLOCKED), &pcs, 8, &flags)
        print("survived count \(count) incomplete \(flags & UInt32(PP_STACK_INCOMPLETE) != 0)")
    }
}

// MARK: - Everything at once

extension AuditScenarios {
    static let stopStress = Atomic<Bool>(false)
    static let stressCounts = Mutex<[String: Int]>([:])

    static func count(_ key: String, _ n: Int = 1) { stressCounts.withLock { $0[key, default: 0] += n } }

    /// `audit-stress <dir> seconds=… engine=…`: every mechanism at once, in one process, for a
    /// while: CPU profiling at 1000 Hz, heap sampling at rate 1, block and mutex profiles at rate 1,
    /// goroutine dumps back to back, label scopes (thread and task), thread creation churn, and
    /// every profile (cumulative and delta) written over and over. Writes the final profiles into
    /// <dir> and prints the counts of what ran as JSON.
    static func stress(_ arguments: [String]) throws {
        let settings = try CPUScenarios.Settings(arguments)
        let directory = settings.path
        // Symbolize the program once before every allocation is sampled (rate 1 makes each of the
        // symbolizer's many allocations walk its stack), so that dumps can run back to back.
        _ = try Profile.lookup("goroutine")!.write(to: ProfileBuffer(), debug: 1)
        HeapProfile.sampleRate = 1
        BlockProfile.rate = 1
        MutexProfile.fraction = 1
        let cpuFile = try CPUScenarios.createFile(directory + "/cpu.pb.gz")
        var options = settings.options
        options.threadLabels = true
        try CPUProfile.start(writingTo: cpuFile, rate: 1000, options: options)
        let engine = CPUProfile.engine
        let running = Atomic<Int>(0)
        func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) {
            running.add(1, ordering: .relaxed)
            let thread = Thread {
                body()
                running.subtract(1, ordering: .releasing)
            }
            thread.name = name
            thread.start()
        }

        // Allocation churn under thread labels and label scopes.
        for index in 0..<2 {
            spawn("alloc-\(index)") {
                ProfileLabels.setForCurrentThread(["worker": "alloc-\(index)"])
                var rounds = 0
                while !stopStress.load(ordering: .relaxed) {
                    withProfileLabels(["phase": "churn"]) {
                        var keep: [[UInt8]] = []
                        for size in stride(from: 16, to: 4096, by: 64) {
                            keep.append([UInt8](repeating: 1, count: size))
                        }
                        blackHole(UInt64(keep.count))
                        let text = (0..<50).map { "item \($0)" }.joined(separator: ",")
                        blackHole(UInt64(text.utf8.count))
                    }
                    rounds += 1
                }
                count("allocRounds", rounds)
                count("allocCPUMillis-\(index)", Int(threadCPUNanos() / 1_000_000))
            }
        }
        // Contention: a pthread mutex, NSLock, Synchronization.Mutex, an rwlock and a condition.
        let pthreadMutex = UncheckedSendable(UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1))
        pthread_mutex_init(pthreadMutex.value, nil)
        let rwlock = UncheckedSendable(UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1))
        pthread_rwlock_init(rwlock.value, nil)
        let nslock = NSLock()
        let swiftMutex = Mutex<Int>(0)
        let condition = NSCondition()
        for index in 0..<3 {
            spawn("lock-\(index)") {
                var rounds = 0
                while !stopStress.load(ordering: .relaxed) {
                    pthread_mutex_lock(pthreadMutex.value)
                    usleep(20)
                    pthread_mutex_unlock(pthreadMutex.value)
                    nslock.lock()
                    swiftMutex.withLock { $0 += 1 }
                    nslock.unlock()
                    if index == 0 { pthread_rwlock_wrlock(rwlock.value) } else { pthread_rwlock_rdlock(rwlock.value) }
                    usleep(10)
                    pthread_rwlock_unlock(rwlock.value)
                    condition.lock()
                    condition.broadcast()
                    _ = condition.wait(until: Date(timeIntervalSinceNow: 0.0002))
                    condition.unlock()
                    rounds += 1
                }
                count("lockRounds", rounds)
            }
        }
        // Threads created and ending all the time (pthread_create hook, CPU arming listener).
        spawn("spawner") {
            var created = 0
            while !stopStress.load(ordering: .relaxed) {
                var threads: [pthread_t] = []
                for _ in 0..<4 {
                    var thread = pthread_t()
                    if pthread_create(
                        &thread,
                        nil,
                        { _ in
                            CPUScenarios.burnThreadCPU(200_000)
                            free(malloc(100))
                            return nil
                        },
                        nil
                    ) == 0 {
                        threads.append(thread)
                    }
                }
                for thread in threads { pthread_join(thread, nil) }
                created += threads.count
            }
            count("threadsCreated", created)
        }
        // Task labels on the concurrency pool.
        spawn("tasks") {
            let done = DispatchSemaphore(value: 0)
            Task.detached {
                var rounds = 0
                while !stopStress.load(ordering: .relaxed) {
                    await withTaskGroup(of: Int.self) { group in
                        for child in 0..<4 {
                            group.addTask {
                                await withProfileLabels(["task": "child-\(child)"]) {
                                    await Task.yield()
                                    var x: UInt64 = 1
                                    for i in 0..<20_000 { x = x &* 31 &+ UInt64(i) }
                                    return Int(truncatingIfNeeded: x) & 1 + [Int](repeating: child, count: 64).count
                                }
                            }
                        }
                        for await _ in group {}
                    }
                    rounds += 1
                }
                count("taskRounds", rounds)
                done.signal()
            }
            done.wait()
        }
        // Goroutine dumps back to back.
        spawn("dumper") {
            var dumps = 0
            var slowest = 0.0
            let goroutine = Profile.lookup("goroutine")!
            while !stopStress.load(ordering: .relaxed) {
                do {
                    let start = monotonicSeconds()
                    try goroutine.write(to: ProfileBuffer(), debug: dumps % 3)
                    slowest = max(slowest, monotonicSeconds() - start)
                    dumps += 1
                } catch {
                    count("dumpErrors")
                }
            }
            count("dumps", dumps)
            count("slowestDumpMillis", Int(slowest * 1000))
        }
        // Raw dumps of every thread back to back (no symbolization): the dump signal lands in malloc
        // and lock hooks, in the CPU handler's way, and on threads that are starting or exiting.
        spawn("raw-dumper") {
            var dumps = 0
            var answers = [Int32: Int]()
            let directory = pp_thread_list_open()
            var tids = [Int32](repeating: 0, count: 1024)
            var out = [pp_thread_stack](repeating: pp_thread_stack(), count: 1024)
            while !stopStress.load(ordering: .relaxed) {
                let found = Int(pp_thread_list_read(directory, &tids, 1024))
                guard found > 0 else { continue }
                _ = pp_thread_dump(&tids, Int32(found), &out, 32, 500_000_000)
                for entry in out[0..<found] { answers[entry.status, default: 0] += 1 }
                dumps += 1
            }
            close(directory)
            count("rawDumps", dumps)
            count("rawSampled", answers[Int32(PP_THREAD_SAMPLED)] ?? 0)
            count("rawNoAnswer", answers[Int32(PP_THREAD_NO_ANSWER)] ?? 0)
        }
        // Every other profile, cumulative and delta, written over and over.
        spawn("writer") {
            var writes = 0
            let deltaHeap = DeltaHeapProfiler()
            while !stopStress.load(ordering: .relaxed) {
                for name in ["heap", "allocs", "block", "mutex", "threadcreate"] {
                    do {
                        try Profile.lookup(name)!.write(to: ProfileBuffer(), debug: writes % 2)
                        writes += 1
                    } catch {
                        count("writeErrors")
                    }
                }
                try? deltaHeap.profile(to: ProfileBuffer())
                usleep(50_000)
            }
            count("profileWrites", writes)
        }

        // A deadlock must fail the run, not hang it.
        let watchdogSeconds = settings.seconds * 4 + 120
        Thread {
            Thread.sleep(forTimeInterval: watchdogSeconds)
            FileHandle.standardError.write(Data("audit-stress: still running after \(watchdogSeconds) s\n".utf8))
            _exit(99)
        }.start()
        let deadline = monotonicSeconds() + settings.seconds
        while monotonicSeconds() < deadline { usleep(100_000) }
        stopStress.store(true, ordering: .relaxed)
        while running.load(ordering: .acquiring) > 0 { usleep(10_000) }
        _ = try CPUProfile.stop()
        try cpuFile.close()
        for name in ["heap", "allocs", "block", "mutex", "threadcreate", "goroutine"] {
            let file = try CPUScenarios.createFile(directory + "/\(name).pb.gz")
            try Profile.lookup(name)!.write(to: file, debug: 0)
            try file.close()
        }
        var result: [String: Any] = stressCounts.withLock { $0 }
        result["engine"] = engine?.rawValue ?? ""
        CPUScenarios.printJSON(result)
    }
}
