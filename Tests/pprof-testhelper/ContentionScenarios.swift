import CTestSupport
import Foundation
import Pprof
import Synchronization

/// Lock contention with known sites, durations and ground truth, for the block and mutex profile
/// tests. Each scenario writes `block.pb.gz`, `mutex.pb.gz` (and debug=1 text where useful) into
/// the directory given as its first argument and prints its ground truth as JSON on stdout.
enum ContentionScenarios {
    // MARK: Accuracy

    /// `contention-accuracy <dir> <fraction> <threads> <iterations> <holdMicros> [spin] [pause:<µs>]`:
    /// threads take one pthread mutex at `pthreadWaitSite`, hold it (sleeping, or spinning with
    /// `spin`), release it at `pthreadReleaseSite`, and with `pause` sleep that long before taking
    /// it again (work outside the lock: the lock then passes from thread to thread).
    static func accuracy(_ arguments: [String]) throws {
        let directory = arguments[0]
        let fraction = Int(arguments[1])!
        let threads = Int(arguments[2])!
        let iterations = Int(arguments[3])!
        let hold = Int(arguments[4])!
        let options = arguments.dropFirst(5)
        let spin = options.contains("spin")
        let pause = options.first { $0.hasPrefix("pause:") }.map { Int($0.dropFirst(6))! } ?? 0
        BlockProfile.rate = 1
        MutexProfile.fraction = fraction

        let shared = UncheckedSendable(UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1))
        pthread_mutex_init(shared.value, nil)
        let log = TimingLog(threads: threads)
        runThreads(threads) { thread in
            let mutex = shared.value
            ctest_precise_sleeps()
            for _ in 0..<iterations {
                let start = monotonicNanos()
                pthreadWaitSite(mutex)
                let acquired = monotonicNanos()
                if spin {
                    while monotonicNanos() - acquired < hold * 1000 {}
                } else {
                    sleepMicros(hold)
                }
                let released = monotonicNanos()
                pthreadReleaseSite(mutex)
                log.append(thread: thread, Hold(waitStart: start, acquired: acquired, released: released))
                if pause > 0 { sleepMicros(pause) }
            }
        }
        try writeProfiles(to: directory, text: true)
        let holds = log.all
        let caused = waitingCausedByHolds(holds)
        let fields = [
            "\"blockTruth\": \(blockTruth(holds))", "\"mutexTruth\": \(caused.reduce(0, +))",
            "\"mutexSamplingError\": \(mutexSamplingError(caused, fraction: fraction))", "\"holds\": \(holds.count)",
            "\"contendedHolds\": \(caused.filter { $0 > 0 }.count)",
        ]
        print("{" + fields.joined(separator: ", ") + "}")
    }

    @inline(never) static func pthreadWaitSite(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        pthread_mutex_lock(mutex)
        keepFrame()
    }

    @inline(never) static func pthreadReleaseSite(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        pthread_mutex_unlock(mutex)
        keepFrame()
    }

    // MARK: Lock kinds

    /// `contention-kinds <dir>`: contention on NSLock, NSCondition, a C library's pthread mutex,
    /// Synchronization.Mutex, a pthread rwlock and a POSIX semaphore, each at its own sites.
    static func kinds(_ arguments: [String]) throws {
        let directory = arguments[0]
        BlockProfile.rate = 1
        MutexProfile.fraction = 1
        var truth: [String: Int64] = [:]

        let nsLock = NSLock()
        truth["nslock"] = measureWaits(threads: 3, iterations: 20) {
            let start = monotonicNanos()
            nsLockWaitSite(nsLock)
            let waited = monotonicNanos() - start
            sleepMicros(1000)
            nsLockReleaseSite(nsLock)
            return waited
        }

        truth["c"] = ctest_contend_pthread_mutex(3, 20, 1000)

        let syncMutex = SynchronizationMutexBox()
        truth["sync"] = measureWaits(threads: 3, iterations: 20) {
            synchronizationMutexSite(syncMutex)
        }

        let rwlock = UncheckedSendable(UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1))
        pthread_rwlock_init(rwlock.value, nil)
        truth["rwlock"] = measureWaits(threads: 3, iterations: 20) {
            let start = monotonicNanos()
            rwlockWaitSite(rwlock.value)
            let waited = monotonicNanos() - start
            sleepMicros(1000)
            rwlockReleaseSite(rwlock.value)
            return waited
        }

        // One thread waits on the condition (and on a semaphore), another signals after a delay.
        let condition = NSCondition()
        let signalled = Atomic(0)
        let semaphore = UncheckedSendable(UnsafeMutablePointer<sem_t>.allocate(capacity: 1))
        sem_init(semaphore.value, 0, 0)
        let rounds = 10
        let waitedCondition = Atomic<Int64>(0)
        let waitedSemaphore = Atomic<Int64>(0)
        runThreads(2) { thread in
            for round in 1...rounds {
                if thread == 0 {
                    let start = monotonicNanos()
                    condition.lock()
                    while signalled.load(ordering: .acquiring) < round { conditionWaitSite(condition) }
                    condition.unlock()
                    waitedCondition.add(monotonicNanos() - start, ordering: .relaxed)
                    let semaphoreStart = monotonicNanos()
                    semaphoreWaitSite(semaphore.value)
                    waitedSemaphore.add(monotonicNanos() - semaphoreStart, ordering: .relaxed)
                } else {
                    sleepMicros(3000)
                    condition.lock()
                    signalled.store(round, ordering: .releasing)
                    condition.signal()
                    condition.unlock()
                    sleepMicros(3000)
                    sem_post(semaphore.value)
                }
            }
        }
        truth["condition"] = waitedCondition.load(ordering: .relaxed)
        truth["semaphore"] = waitedSemaphore.load(ordering: .relaxed)

        // A condition wait releases its mutex: a thread blocked on that mutex meanwhile is charged
        // to the wait's call site in the mutex profile (Go's Cond.Wait calls L.Unlock).
        let handover = NSCondition()
        let turn = Atomic(0)
        let blockedOnMutex = Atomic<Int64>(0)
        runThreads(2) { thread in
            for round in 1...rounds {
                if thread == 0 {
                    handover.lock()
                    turn.store(round, ordering: .releasing)
                    sleepMicros(3000)  // the other thread is blocked on the mutex meanwhile
                    while turn.load(ordering: .acquiring) == round { conditionReleaseSite(handover) }
                    handover.unlock()
                } else {
                    while turn.load(ordering: .acquiring) < round { sleepMicros(100) }
                    let start = monotonicNanos()
                    handover.lock()
                    blockedOnMutex.add(monotonicNanos() - start, ordering: .relaxed)
                    turn.store(-round, ordering: .releasing)
                    handover.signal()
                    handover.unlock()
                }
            }
        }
        truth["conditionRelease"] = blockedOnMutex.load(ordering: .relaxed)

        // libdispatch's semaphores wait in sem_wait.
        let dispatchSemaphore = DispatchSemaphore(value: 0)
        let waitedDispatch = Atomic<Int64>(0)
        runThreads(2) { thread in
            for _ in 0..<5 {
                if thread == 0 {
                    let start = monotonicNanos()
                    dispatchSemaphoreWaitSite(dispatchSemaphore)
                    waitedDispatch.add(monotonicNanos() - start, ordering: .relaxed)
                } else {
                    sleepMicros(3000)
                    dispatchSemaphore.signal()
                }
            }
        }
        truth["dispatchSemaphore"] = waitedDispatch.load(ordering: .relaxed)

        // Re-locking a recursive lock one already holds is no contention.
        let recursive = NSRecursiveLock()
        for _ in 0..<100 { recursiveLockSite(recursive, depth: 5) }

        try writeProfiles(to: directory, text: false)
        let fields = truth.keys.sorted().map { "\"\($0)\": \(truth[$0]!)" }
        print("{" + fields.joined(separator: ", ") + "}")
    }

    @inline(never) static func nsLockWaitSite(_ lock: NSLock) {
        lock.lock()
        keepFrame()
    }

    @inline(never) static func nsLockReleaseSite(_ lock: NSLock) {
        lock.unlock()
        keepFrame()
    }

    final class SynchronizationMutexBox: Sendable {
        let mutex = Mutex(0)
    }

    /// Returns the time spent waiting for the mutex.
    @inline(never) static func synchronizationMutexSite(_ box: SynchronizationMutexBox) -> Int64 {
        let start = monotonicNanos()
        let waited = box.mutex.withLock { value in
            let acquired = monotonicNanos()
            sleepMicros(1000)
            value += 1
            return acquired - start
        }
        keepFrame()
        return waited
    }

    @inline(never) static func rwlockWaitSite(_ lock: UnsafeMutablePointer<pthread_rwlock_t>) {
        pthread_rwlock_wrlock(lock)
        keepFrame()
    }

    @inline(never) static func rwlockReleaseSite(_ lock: UnsafeMutablePointer<pthread_rwlock_t>) {
        pthread_rwlock_unlock(lock)
        keepFrame()
    }

    @inline(never) static func conditionWaitSite(_ condition: NSCondition) {
        condition.wait()
        keepFrame()
    }

    @inline(never) static func conditionReleaseSite(_ condition: NSCondition) {
        condition.wait()
        keepFrame()
    }

    @inline(never) static func dispatchSemaphoreWaitSite(_ semaphore: DispatchSemaphore) {
        semaphore.wait()
        keepFrame()
    }

    @inline(never) static func recursiveLockSite(_ lock: NSRecursiveLock, depth: Int) {
        lock.lock()
        if depth > 0 { recursiveLockSite(lock, depth: depth - 1) }
        lock.unlock()
        keepFrame()
    }

    @inline(never) static func semaphoreWaitSite(_ semaphore: UnsafeMutablePointer<sem_t>) {
        while sem_wait(semaphore) != 0 && errno == EINTR {}
        keepFrame()
    }

    // MARK: Fork

    /// `contention-fork <dir>`: forks while threads wait for a mutex; the child (C only) contends
    /// on a mutex of its own and must finish; then the parent contends again at `onSite`.
    static func forkWhileWaiting(_ arguments: [String]) throws {
        let directory = arguments[0]
        BlockProfile.rate = 1
        MutexProfile.fraction = 1
        let shared = UncheckedSendable(UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1))
        pthread_mutex_init(shared.value, nil)
        let childStatus = Atomic<Int32>(-2)
        runThreads(4) { thread in
            if thread == 0 {
                sleepMicros(5000)  // the others are waiting for the mutex by now
                childStatus.store(ctest_fork_and_contend(3, 10, 500, 10_000), ordering: .relaxed)
            } else {
                for _ in 0..<10 { onSite(shared.value) }
            }
        }
        try writeProfiles(to: directory, text: false)
        print(#"{"childStatus": \#(childStatus.load(ordering: .relaxed))}"#)
    }

    // MARK: Switching on and off

    /// `contention-toggle <dir>`: contention with both profiles off (`offSite`), then on
    /// (`onSite`), then off again (`offAgainSite`); profiles are written after each phase as
    /// `<phase>-block.pb.gz` and `<phase>-mutex.pb.gz`.
    static func toggle(_ arguments: [String]) throws {
        let directory = arguments[0]
        let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        func contend(_ site: @escaping @Sendable (UnsafeMutablePointer<pthread_mutex_t>) -> Void) {
            let shared = UncheckedSendable(mutex)
            runThreads(3) { _ in
                for _ in 0..<10 { site(shared.value) }
            }
        }
        BlockProfile.rate = 0
        MutexProfile.fraction = 0
        contend(offSite)
        try writeProfiles(to: directory, prefix: "1-", text: false)
        BlockProfile.rate = 1
        MutexProfile.fraction = 1
        contend(onSite)
        try writeProfiles(to: directory, prefix: "2-", text: false)
        BlockProfile.rate = 0
        MutexProfile.fraction = 0
        contend(offAgainSite)
        try writeProfiles(to: directory, prefix: "3-", text: false)
        let counts = [Profile.lookup("block")!.count, Profile.lookup("mutex")!.count]
        print(#"{"rates": [\#(BlockProfile.rate), \#(MutexProfile.fraction)], "counts": \#(counts)}"#)
    }

    // Three sites that differ only in name, so each phase's samples are told apart.
    @inline(never) static func offSite(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        lockHoldAndUnlock(mutex)
        keepFrame()
    }

    @inline(never) static func onSite(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        lockHoldAndUnlock(mutex)
        keepFrame()
    }

    @inline(never) static func offAgainSite(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        lockHoldAndUnlock(mutex)
        keepFrame()
    }

    @inline(never) static func lockHoldAndUnlock(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        pthread_mutex_lock(mutex)
        sleepMicros(1000)
        pthread_mutex_unlock(mutex)
        keepFrame()
    }

    // MARK: Support

    struct Hold {
        var waitStart: Int64
        var acquired: Int64
        var released: Int64
    }

    /// Per-thread logs of holds, merged after the threads are joined.
    final class TimingLog: Sendable {
        final class ThreadLog: Sendable {
            let holds = Mutex<[Hold]>([])
        }
        private let logs: [ThreadLog]

        init(threads: Int) { logs = (0..<threads).map { _ in ThreadLog() } }

        func append(thread: Int, _ hold: Hold) { logs[thread].holds.withLock { $0.append(hold) } }

        var all: [Hold] { logs.flatMap { $0.holds.withLock { $0 } } }
    }

    /// Total time spent waiting for the lock.
    static func blockTruth(_ holds: [Hold]) -> Int64 {
        holds.reduce(0) { $0 + ($1.acquired - $1.waitStart) }
    }

    /// The waiting each hold caused: for every wait, its overlap with the holds of other threads
    /// (a wait's last moments, between a release and the waiter's wake-up, are caused by no hold
    /// and charged to none). The mutex profile's truth is their sum.
    static func waitingCausedByHolds(_ holds: [Hold]) -> [Int64] {
        let sorted = holds.sorted { $0.acquired < $1.acquired }
        let starts = sorted.map(\.acquired)
        var caused = [Int64](repeating: 0, count: sorted.count)
        for wait in holds where wait.acquired > wait.waitStart {
            // Holds never overlap, so both their starts and their ends are sorted: scan back from the
            // last one that began before this wait ended to the first that ended before it began.
            var index = upperBound(starts, wait.acquired) - 1
            while index >= 0 {
                let hold = sorted[index]
                if hold.released <= wait.waitStart { break }
                let overlap = min(hold.released, wait.acquired) - max(hold.acquired, wait.waitStart)
                if overlap > 0 { caused[index] += overlap }
                index -= 1
            }
        }
        return caused
    }

    /// The relative standard error of Go's mutex estimate when each hold's charge is kept with
    /// probability 1/fraction and multiplied by fraction: sqrt((fraction - 1) * sum(c^2)) / sum(c).
    static func mutexSamplingError(_ caused: [Int64], fraction: Int) -> Double {
        let total = Double(caused.reduce(0, +))
        guard fraction > 1, total > 0 else { return 0 }
        let squares = caused.reduce(0.0) { $0 + Double($1) * Double($1) }
        return (Double(fraction - 1) * squares).squareRoot() / total
    }

    private static func upperBound(_ values: [Int64], _ value: Int64) -> Int {
        var low = 0
        var high = values.count
        while low < high {
            let middle = (low + high) / 2
            if values[middle] <= value { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Runs `body` `iterations` times on each of `threads` threads; returns the total of the wait
    /// times it reports.
    static func measureWaits(threads: Int, iterations: Int, _ body: @escaping @Sendable () -> Int64) -> Int64 {
        let total = Atomic<Int64>(0)
        runThreads(threads) { _ in
            for _ in 0..<iterations { total.add(body(), ordering: .relaxed) }
        }
        return total.load(ordering: .relaxed)
    }

    static func writeProfiles(to directory: String, prefix: String = "", text: Bool) throws {
        for name in ["block", "mutex"] {
            let profile = Profile.lookup(name)!
            let buffer = ProfileBuffer()
            try profile.write(to: buffer, debug: 0)
            try Data(buffer.bytes).write(to: URL(fileURLWithPath: "\(directory)/\(prefix)\(name).pb.gz"))
            if text {
                let legacy = ProfileBuffer()
                try profile.write(to: legacy, debug: 1)
                try Data(legacy.bytes).write(to: URL(fileURLWithPath: "\(directory)/\(prefix)\(name).txt"))
            }
        }
    }
}

/// A value that is only handed to threads that are joined before it goes away.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Starts `count` threads running `body(index)` and joins them all.
func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Start: @unchecked Sendable {
        let body: @Sendable (Int) -> Void
        let index: Int
        init(_ body: @escaping @Sendable (Int) -> Void, _ index: Int) {
            self.body = body
            self.index = index
        }
    }
    var threads: [pthread_t] = []
    for index in 0..<count {
        var thread = pthread_t()
        let start = Unmanaged.passRetained(Start(body, index)).toOpaque()
        let created = pthread_create(
            &thread,
            nil,
            { context in
                let start = Unmanaged<Start>.fromOpaque(context!).takeRetainedValue()
                start.body(start.index)
                return nil
            },
            start
        )
        precondition(created == 0, "pthread_create failed: \(created)")
        threads.append(thread)
    }
    for thread in threads { pthread_join(thread, nil) }
}

func monotonicNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

func sleepMicros(_ micros: Int) {
    var duration = timespec(tv_sec: micros / 1_000_000, tv_nsec: (micros % 1_000_000) * 1000)
    var remaining = timespec()
    while nanosleep(&duration, &remaining) != 0 && errno == EINTR { duration = remaining }
}

/// A call with an effect after the interesting one, so that the interesting call stays a call
/// (its return address is the site) instead of becoming a tail call in optimized builds.
@inline(never) func keepFrame() {
    keptFrames.add(1, ordering: .relaxed)
}

private let keptFrames = Atomic<Int>(0)
