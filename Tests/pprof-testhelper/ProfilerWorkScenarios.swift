import Foundation
@_spi(Integration) import Pprof
import Synchronization

/// The profiler's own work kept out of the service's profiles: the same kinds of work done once
/// as the service and once inside `ProfilerWork`, with heap sampling, block and mutex recording at
/// full rate and a CPU profile running (its reader thread).
enum ProfilerWorkScenarios {
    /// The service's own sink (a `ProfileBuffer` would put a Pprof frame in the service's heap).
    final class CountingSink: ProfileSink {
        let bytes = Atomic<Int>(0)
        func write(_ chunk: UnsafeRawBufferPointer) throws { bytes.add(chunk.count, ordering: .relaxed) }
    }

    nonisolated(unsafe) static var kept: [[UInt8]] = []
    static let parked = Atomic<Int>(0)

    @inline(never) static func allocateAsService() -> Int {
        var total = 0
        for index in 0..<400 {
            let bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: 1000 + index)
            total &+= Int(bytes[index % bytes.count])
            kept.append(bytes)
        }
        return total
    }

    @inline(never) static func allocateInProfilerWork() -> Int {
        var total = 1
        for index in 0..<300 {
            var bytes = [UInt8](repeating: 7, count: 2048 + 3 * index)
            bytes[0] = UInt8(truncatingIfNeeded: index * 5)
            total &+= Int(bytes[0]) * 3
            kept.append(bytes)
        }
        return total
    }

    /// One contended acquisition of `lock`: a holder thread (`hold`) keeps it 20 ms while this
    /// thread (`wait`) waits for it.
    static func contend(
        _ lock: UnsafeMutablePointer<pthread_mutex_t>,
        hold: @escaping @Sendable (UnsafeMutablePointer<pthread_mutex_t>, DispatchSemaphore) -> Void,
        wait: (UnsafeMutablePointer<pthread_mutex_t>) -> Void
    ) {
        nonisolated(unsafe) let shared = lock
        let held = DispatchSemaphore(value: 0)
        let holder = Thread { hold(shared, held) }
        holder.start()
        held.wait()
        wait(lock)
        usleep(20_000)
    }

    @inline(never) static func holdAsService(_ lock: UnsafeMutablePointer<pthread_mutex_t>, _ held: DispatchSemaphore) {
        pthread_mutex_lock(lock)
        held.signal()
        usleep(20_000)
        pthread_mutex_unlock(lock)
    }

    @inline(never) static func holdInProfilerWork(
        _ lock: UnsafeMutablePointer<pthread_mutex_t>,
        _ held: DispatchSemaphore
    ) {
        ProfilerWork.run {
            pthread_mutex_lock(lock)
            held.signal()
            usleep(25_000)
            pthread_mutex_unlock(lock)
        }
    }

    @inline(never) static func waitAsService(_ lock: UnsafeMutablePointer<pthread_mutex_t>) {
        pthread_mutex_lock(lock)
        pthread_mutex_unlock(lock)
    }

    @inline(never) static func waitInProfilerWork(_ lock: UnsafeMutablePointer<pthread_mutex_t>) {
        ProfilerWork.run {
            pthread_mutex_lock(lock)
            usleep(10)
            pthread_mutex_unlock(lock)
        }
    }

    @inline(never) static func spawnServiceThreads(_ count: Int) {
        for _ in 0..<count {
            var thread = pthread_t()
            if pthread_create(&thread, nil, { _ in nil }, nil) == 0 { pthread_join(thread, nil) }
        }
    }

    @inline(never) static func spawnProfilerThreads(_ count: Int) {
        ProfilerWork.run {
            for _ in 0..<count {
                var thread = pthread_t()
                if pthread_create(&thread, nil, { argument in argument }, nil) == 0 { pthread_join(thread, nil) }
            }
        }
    }

    @inline(never) static func parkAsService() {
        parked.add(1, ordering: .relaxed)
        while true { sleep(3600) }
    }

    @inline(never) static func parkAsProfilerThread() {
        ProfilerWork.markCurrentThread()
        parked.add(1, ordering: .relaxed)
        while true { pause() }
    }

    /// `profiler-work <heap> <block> <mutex> <goroutine> <threadcreate>` (debug=0 files).
    static func run(_ arguments: [String]) throws {
        guard arguments.count == 5 else {
            throw ScenarioError.usage("profiler-work <heap> <block> <mutex> <goroutine> <threadcreate>")
        }
        HeapProfile.sampleRate = 1
        BlockProfile.rate = 1
        MutexProfile.fraction = 1
        try CPUProfile.start(writingTo: CountingSink())
        Thread { parkAsService() }.start()
        Thread { parkAsProfilerThread() }.start()
        while parked.load(ordering: .relaxed) < 2 { usleep(1000) }

        print("service \(allocateAsService()) profiler \(ProfilerWork.run { allocateInProfilerWork() })")
        let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        for _ in 0..<3 {
            contend(lock, hold: holdAsService, wait: waitAsService)
            contend(lock, hold: holdInProfilerWork, wait: waitInProfilerWork)
        }
        spawnServiceThreads(2)
        spawnProfilerThreads(3)
        usleep(100_000)

        for (name, path) in zip(["heap", "block", "mutex", "goroutine", "threadcreate"], arguments) {
            try writeProfile(name, debug: 0, to: path)
        }
        try CPUProfile.stop()
        print("done")
    }
}
