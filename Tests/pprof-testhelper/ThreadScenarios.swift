import CPprof
import Foundation
import Pprof
import Synchronization

/// Processes for the goroutine and threadcreate profile tests.
enum ThreadScenarios {
    static let parked = Atomic<Int>(0)

    /// Sets the calling thread's kernel name (comm), as pthread_setname_np does.
    static func nameCurrentThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY)
        guard fd >= 0 else { return }
        _ = name.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    @inline(never) static func parkInConditionWait(_ condition: NSCondition) {
        condition.lock()
        parked.add(1, ordering: .relaxed)
        while true { condition.wait() }
    }

    @inline(never) static func parkOnSemaphore(_ semaphore: DispatchSemaphore) {
        parked.add(1, ordering: .relaxed)
        while true { semaphore.wait() }
    }

    @inline(never) static func parkInSleep() {
        parked.add(1, ordering: .relaxed)
        while true { Thread.sleep(forTimeInterval: 3600) }
    }

    @inline(never) static func runConditionWorker(_ condition: NSCondition) { parkInConditionWait(condition) }
    @inline(never) static func runSemaphoreWorker(_ semaphore: DispatchSemaphore) { parkOnSemaphore(semaphore) }
    @inline(never) static func runSleepWorker() { parkInSleep() }

    /// Starts `count` threads of each kind, named "cond-<i>", "sema-<i>" and "sleep-<i>", and
    /// waits until all are parked.
    static func startParkedThreads(count: Int) {
        let condition = NSCondition()
        let semaphore = DispatchSemaphore(value: 0)
        let shared = (condition, semaphore)
        for index in 0..<count {
            let workers: [(String, @Sendable () -> Void)] = [
                ("cond-\(index)", { runConditionWorker(shared.0) }),
                ("sema-\(index)", { runSemaphoreWorker(shared.1) }),
                ("sleep-\(index)", { runSleepWorker() }),
            ]
            for (name, body) in workers {
                Thread {
                    nameCurrentThread(name)
                    body()
                }.start()
            }
        }
        while parked.load(ordering: .relaxed) < 3 * count { usleep(1000) }
        // Let the last ones reach their wait.
        usleep(200_000)
    }

    /// `thread-dump-parked <count> <debug0 path> <debug1 path> <debug2 path>`
    static func parkedThreads(_ arguments: [String]) throws {
        let count = Int(arguments[0])!
        startParkedThreads(count: count)
        let profile = Profile.lookup("goroutine")!
        print("count \(profile.count)")
        for (debug, path) in zip([0, 1, 2], arguments.dropFirst()) {
            try writeProfile(profile, debug: debug, to: path)
        }
        print("done")
    }

    /// `thread-dump-churn <dumps>`: dumps while other threads are created and exit all the time.
    static let stopChurning = Atomic<Bool>(false)
    static let churned = Atomic<Int>(0)

    static func churn(_ arguments: [String]) throws {
        let dumps = Int(arguments[0])!
        let spawner = Thread {
            while !stopChurning.load(ordering: .relaxed) {
                var threads: [pthread_t] = []
                for _ in 0..<8 {
                    var thread = pthread_t()
                    if pthread_create(
                        &thread,
                        nil,
                        { _ in
                            usleep(UInt32.random(in: 0..<500)); return nil
                        },
                        nil
                    ) == 0 {
                        threads.append(thread)
                    }
                }
                for thread in threads { pthread_join(thread, nil) }
                churned.add(threads.count, ordering: .relaxed)
            }
        }
        spawner.start()
        let clock = ContinuousClock()
        var slowest = Duration.zero
        for _ in 0..<dumps {
            let buffer = ProfileBuffer()
            let elapsed = try clock.measure { try Profile.lookup("goroutine")!.write(to: buffer, debug: 1) }
            slowest = max(slowest, elapsed)
            guard buffer.text.hasPrefix("goroutine profile: total ") else { throw PprofError.unavailable("bad dump") }
        }
        stopChurning.store(true, ordering: .relaxed)
        print("dumps \(dumps) threads created \(churned.load(ordering: .relaxed)) slowest \(slowest)")
    }

    /// `thread-dump-blocker <debug0 path> <debug2 path>`: one thread blocks every signal.
    static func blocker(_ arguments: [String]) throws {
        let condition = NSCondition()
        let shared = condition
        Thread {
            nameCurrentThread("blocker")
            var all = sigset_t()
            sigfillset(&all)
            pthread_sigmask(SIG_BLOCK, &all, nil)
            parkInConditionWait(shared)
        }.start()
        while parked.load(ordering: .relaxed) < 1 { usleep(1000) }
        usleep(100_000)
        let profile = Profile.lookup("goroutine")!
        for (debug, path) in zip([0, 2], arguments) {
            try writeProfile(profile, debug: debug, to: path)
        }
        // Again: the known blocker is checked, not signalled a second time.
        let again = ProfileBuffer()
        try profile.write(to: again, debug: 2)
        print(again.text.contains("\"blocker\" [sleeping, blocks the dump signal]") ? "again ok" : "again bad")
    }

    static let asyncThread = Atomic<Int32>(0)
    static let stopBurning = Atomic<Bool>(false)

    @inline(never) static func burnInInner() async -> Int {
        await Task.yield()
        asyncThread.store(pp_gettid(), ordering: .releasing)
        var x = 0
        while !stopBurning.load(ordering: .relaxed) { x &+= 1 }
        return x
    }

    @inline(never) static func burnInMiddle() async -> Int { await burnInInner() &+ 1 }
    @inline(never) static func burnInOuter() async -> Int { await burnInMiddle() &+ 1 }

    /// `thread-dump-async <debug0 path>`: a task burns CPU in inner (called by middle, by outer).
    static func asyncTask(_ arguments: [String]) throws {
        let task = Task.detached { await burnInOuter() }
        while asyncThread.load(ordering: .acquiring) == 0 { usleep(1000) }
        try writeProfile("goroutine", debug: 0, to: arguments[0])
        stopBurning.store(true, ordering: .relaxed)
        let running = task
        let done = DispatchSemaphore(value: 0)
        Task {
            _ = await running.value; done.signal()
        }
        done.wait()
        print("done")
    }

    @inline(never) static func spawnFoundationThreads(_ count: Int) {
        for _ in 0..<count { Thread { usleep(1000) }.start() }
    }

    @inline(never) static func spawnRawThreads(_ count: Int) {
        for _ in 0..<count {
            var thread = pthread_t()
            if pthread_create(&thread, nil, { _ in nil }, nil) == 0 { pthread_join(thread, nil) }
        }
    }

    /// `threadcreate <debug0 path> <debug1 path>`: 5 threads from spawnFoundationThreads, 3 from
    /// spawnRawThreads.
    static func threadCreate(_ arguments: [String]) throws {
        spawnFoundationThreads(5)
        spawnRawThreads(3)
        usleep(100_000)
        let profile = Profile.lookup("threadcreate")!
        print("count \(profile.count)")
        for (debug, path) in zip([0, 1], arguments) {
            try writeProfile(profile, debug: debug, to: path)
        }
        print("done")
    }
}

/// SIGPROFs that reached the CPU-profiler-like handler of `sigprof-sharing`.
let sharedSigprofCount = Atomic<Int>(0)

/// SIGPROF shared by a CPU-profiler-like handler and thread dumps.
enum SignalSharingScenarios {
    /// `sigprof-sharing`: prints what each route received.
    static func sigprofSharing(_: [String]) throws {
        // A thread dump first takes the queued route (and installs the dispatcher)...
        _ = try Profile.lookup("goroutine")!.write(to: ProfileBuffer(), debug: 1)
        // ...then a CPU profiler claims SIGPROF as usual and gets the main route.
        var candidates = [SIGPROF]
        let claimed = pp_signal_claim(&candidates, 1, { _, _, _ in sharedSigprofCount.add(1, ordering: .relaxed) })
        // A second claimant with another handler is refused.
        let second = pp_signal_claim(&candidates, 1, { _, _, _ in })
        for _ in 0..<5 { pthread_kill(pthread_self(), SIGPROF) }
        let buffer = ProfileBuffer()
        try Profile.lookup("goroutine")!.write(to: buffer, debug: 1)
        let sampled = buffer.text.hasPrefix("goroutine profile: total") && !buffer.text.contains("threadDidNotAnswer")
        print(
            "claimed \(claimed == SIGPROF) second \(second) timer \(sharedSigprofCount.load(ordering: .relaxed)) dump \(sampled)"
        )
    }
}
