import CPprof
import CTestSupport
import Foundation
import Pprof
import Synchronization

/// Delta profiles over scripted events, for the delta-profile tests. Each scenario writes the delta
/// profiles it takes and the cumulative profiles after them into the directory given as its first
/// argument, and prints what it knows as JSON on stdout.
enum DeltaScenarios {
    // MARK: Heap, scripted

    /// `delta-heap <dir>`: at sample rate 1, 100 objects of 1000 bytes allocated at
    /// `deltaHeapSiteA`, then 50 of 3000 bytes at `deltaHeapSiteB`, then A's freed. A "d" delta
    /// profiler is called after every phase, an "e" one after the second and third; the cumulative
    /// heap profile is written after each call (`heap-<tag>.pb.gz`, `heap-c<n>.pb.gz`). Everything
    /// between the phases runs with this thread's sampling paused, so the sites are all that is
    /// sampled between a delta and its cumulative twin.
    static func heap(_ arguments: [String]) throws {
        let directory = arguments[0]
        let first = DeltaHeapProfiler()
        let second = DeltaHeapProfiler()
        let siteA = UnsafeMutableBufferPointer<UnsafeMutableRawPointer?>.allocate(capacity: 100)
        let siteB = UnsafeMutableBufferPointer<UnsafeMutableRawPointer?>.allocate(capacity: 50)
        func heapProfiles(_ deltas: [(DeltaHeapProfiler, String)], cumulative: String) throws {
            pp_profiler_work_enter()
            defer { pp_profiler_work_leave() }
            for (profiler, tag) in deltas { try writeHeapDelta(profiler, to: "\(directory)/heap-\(tag).pb.gz") }
            try writeProfile("heap", debug: 0, to: "\(directory)/heap-\(cumulative).pb.gz")
        }
        try heapProfiles([], cumulative: "c0")
        HeapProfile.sampleRate = 1
        deltaHeapSiteA(siteA, size: 1000)
        try heapProfiles([(first, "d1")], cumulative: "c1")
        deltaHeapSiteB(siteB, size: 3000)
        try heapProfiles([(first, "d2"), (second, "e1")], cumulative: "c2")
        deltaHeapFree(siteA)
        try heapProfiles([(first, "d3"), (second, "e2")], cumulative: "c3")
        // A sink that fails: its error comes back and the change is reported by the next call.
        deltaHeapSiteA(siteA, size: 1000)
        var rethrown = false
        do {
            try first.profile(to: FailingSink())
        } catch is FailingSink.Failure {
            rethrown = true
        }
        try heapProfiles([(first, "d4")], cumulative: "c4")
        print(#"{"rethrown": \#(rethrown)}"#)
    }

    /// `delta-heap-concurrent <dir>`: at sample rate 4096, three threads allocate and free objects
    /// of random sizes at `deltaHeapChurnSite` while two others call one DeltaHeapProfiler over and
    /// over; after the threads are joined, one last delta and the cumulative profile, both with
    /// sampling paused (`heap-<n>.pb.gz`, `heap-cumulative.pb.gz`).
    static func heapConcurrent(_ arguments: [String]) throws {
        let directory = arguments[0]
        HeapProfile.sampleRate = 4096
        let delta = DeltaHeapProfiler()
        let written = Mutex<[[UInt8]]>([])
        let failures = Atomic(0)
        let allocating = Atomic(3)
        let calls = Atomic(0)
        runThreads(5) { thread in
            if thread < 3 {
                // However slowly the callers run on a loaded machine, several deltas fall in the middle.
                var seed = UInt64(thread + 1)
                repeat {
                    deltaHeapChurnSite(seed: seed, rounds: 5_000)
                    seed += 3
                } while calls.load(ordering: .acquiring) < 8
                allocating.subtract(1, ordering: .releasing)
            } else {
                var round = 0
                while allocating.load(ordering: .acquiring) > 0 || round < 3 {
                    let buffer = ProfileBuffer()
                    do {
                        try delta.profile(to: buffer)
                        written.withLock { $0.append(buffer.bytes) }
                        calls.add(1, ordering: .releasing)
                    } catch {
                        failures.add(1, ordering: .relaxed)
                    }
                    round += 1
                    sleepMicros(5000)
                }
            }
        }
        pp_profiler_work_enter()
        defer { pp_profiler_work_leave() }
        let last = ProfileBuffer()
        try delta.profile(to: last)
        try writeProfile("heap", debug: 0, to: "\(directory)/heap-cumulative.pb.gz")
        let profiles = written.withLock { $0 } + [last.bytes]
        for (index, bytes) in profiles.enumerated() {
            try Data(bytes).write(to: URL(fileURLWithPath: "\(directory)/heap-\(index).pb.gz"))
        }
        print(#"{"deltas": \#(profiles.count), "failures": \#(failures.load(ordering: .relaxed))}"#)
    }

    static func writeHeapDelta(_ profiler: DeltaHeapProfiler, to path: String) throws {
        let buffer = ProfileBuffer()
        try profiler.profile(to: buffer)
        try Data(buffer.bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Fills `slots` with objects of `size` bytes: one stack, one size.
    @inline(never) static func deltaHeapSiteA(_ slots: UnsafeMutableBufferPointer<UnsafeMutableRawPointer?>, size: Int)
    {
        for index in slots.indices { slots[index] = malloc(size) }
        keepFrame()
    }

    @inline(never) static func deltaHeapSiteB(_ slots: UnsafeMutableBufferPointer<UnsafeMutableRawPointer?>, size: Int)
    {
        for index in slots.indices { slots[index] = malloc(size) }
        keepFrame()
    }

    static func deltaHeapFree(_ slots: UnsafeMutableBufferPointer<UnsafeMutableRawPointer?>) {
        for index in slots.indices {
            free(slots[index])
            slots[index] = nil
        }
    }

    /// Allocates objects of 16 sizes from 16 bytes to 60 KB into 64 slots, freeing what a slot
    /// held before (few sizes, so that the records stay few however long it runs).
    @inline(never) static func deltaHeapChurnSite(seed: UInt64, rounds: Int) {
        var state = seed
        let slots = UnsafeMutableBufferPointer<UnsafeMutableRawPointer?>.allocate(capacity: 64)
        slots.initialize(repeating: nil)
        for _ in 0..<rounds {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let slot = Int(state >> 58)
            free(slots[slot])
            slots[slot] = malloc(16 + 4000 * Int((state >> 20) % 16))
        }
        for slot in slots where slot != nil { free(slot) }
        slots.deallocate()
        keepFrame()
    }

    // MARK: Block and mutex, scripted

    /// `delta-contention <dir>`: exactly 3 contended lock/unlock rounds at site A
    /// (`pthreadWaitSite`/`pthreadReleaseSite`), then 5 at site B (`waitSiteB`/`releaseSiteB`),
    /// then none, then 2 at A again, with two pairs of delta profilers ("d": block and mutex, called
    /// after every phase; "e": called after the second and last). After each call the cumulative
    /// profiles are written too: `<kind>-<tag>.pb.gz` for deltas, `<kind>-c<n>.pb.gz` for cumulative.
    static func contention(_ arguments: [String]) throws {
        let directory = arguments[0]
        BlockProfile.rate = 1
        MutexProfile.fraction = 1
        let first = ContentionDeltas()
        let second = ContentionDeltas()
        let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)

        try writeCumulative(to: directory, tag: "c0")
        contend(
            mutex,
            rounds: 3,
            wait: ContentionScenarios.pthreadWaitSite,
            release: ContentionScenarios.pthreadReleaseSite
        )
        // A sink that fails: its error comes back and the change is reported by the next call.
        var rethrown = 0
        for kind in ["block", "mutex"] {
            do {
                try first.profile(kind, to: FailingSink())
            } catch is FailingSink.Failure {
                rethrown += 1
            }
        }
        try first.write(to: directory, tag: "d1")
        try writeCumulative(to: directory, tag: "c1")
        contend(mutex, rounds: 5, wait: waitSiteB, release: releaseSiteB)
        try first.write(to: directory, tag: "d2")
        try second.write(to: directory, tag: "e1")
        try writeCumulative(to: directory, tag: "c2")
        try first.write(to: directory, tag: "d3")
        try writeCumulative(to: directory, tag: "c3")
        contend(
            mutex,
            rounds: 2,
            wait: ContentionScenarios.pthreadWaitSite,
            release: ContentionScenarios.pthreadReleaseSite
        )
        try second.write(to: directory, tag: "e2")
        try first.write(to: directory, tag: "d4")
        try writeCumulative(to: directory, tag: "c4")
        print(#"{"rethrown": \#(rethrown)}"#)
    }

    /// `delta-contention-concurrent <dir>`: four threads contend on a mutex while three others call
    /// one DeltaBlockProfiler and one DeltaMutexProfiler over and over; after the threads are
    /// joined, one last call of each. Writes every delta (`<kind>-<n>.pb.gz`) and the cumulative
    /// profiles (`<kind>-cumulative.pb.gz`); prints the number of deltas of each kind.
    static func contentionConcurrent(_ arguments: [String]) throws {
        let directory = arguments[0]
        BlockProfile.rate = 1
        MutexProfile.fraction = 1
        let deltas = ContentionDeltas()
        let written = Mutex<[String: [[UInt8]]]>([:])
        let failures = Atomic(0)
        let contending = Atomic(4)
        let calls = Atomic(0)
        let mutex = UncheckedSendable(UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1))
        pthread_mutex_init(mutex.value, nil)
        // Symbol tables loaded now, so that the first delta calls are as quick as the later ones.
        try writeCumulative(to: directory, tag: "warm-up")
        runThreads(7) { thread in
            if thread < 4 {
                // However slowly the callers run on a loaded machine, several deltas fall in the middle.
                var iterations = 0
                while iterations < 300 || calls.load(ordering: .acquiring) < 16 {
                    concurrentSite(mutex.value)
                    iterations += 1
                }
                contending.subtract(1, ordering: .releasing)
            } else {
                var round = 0
                while contending.load(ordering: .acquiring) > 0 || round < 5 {
                    for kind in ["block", "mutex"] {
                        let buffer = ProfileBuffer()
                        do {
                            try deltas.profile(kind, to: buffer)
                            written.withLock { $0[kind, default: []].append(buffer.bytes) }
                            calls.add(1, ordering: .releasing)
                        } catch {
                            failures.add(1, ordering: .relaxed)
                        }
                    }
                    round += 1
                    sleepMicros(2000)
                }
            }
        }
        for kind in ["block", "mutex"] {
            let buffer = ProfileBuffer()
            try deltas.profile(kind, to: buffer)
            written.withLock { $0[kind, default: []].append(buffer.bytes) }
        }
        let all = written.withLock { $0 }
        for (kind, profiles) in all {
            for (index, bytes) in profiles.enumerated() {
                try Data(bytes).write(to: URL(fileURLWithPath: "\(directory)/\(kind)-\(index).pb.gz"))
            }
        }
        try writeCumulative(to: directory, tag: "cumulative")
        print(
            #"{"block": \#(all["block"]?.count ?? 0), "mutex": \#(all["mutex"]?.count ?? 0), "failures": \#(failures.load(ordering: .relaxed))}"#
        )
    }

    @inline(never) static func concurrentSite(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        pthread_mutex_lock(mutex)
        sleepMicros(200)
        pthread_mutex_unlock(mutex)
        keepFrame()
    }

    /// A block and a mutex delta profiler used together, as one consumer would.
    final class ContentionDeltas: Sendable {
        let block = DeltaBlockProfiler()
        let mutex = DeltaMutexProfiler()

        func profile(_ kind: String, to sink: some ProfileSink) throws {
            if kind == "block" { try block.profile(to: sink) } else { try mutex.profile(to: sink) }
        }

        func write(to directory: String, tag: String) throws {
            for kind in ["block", "mutex"] {
                let buffer = ProfileBuffer()
                try profile(kind, to: buffer)
                try Data(buffer.bytes).write(to: URL(fileURLWithPath: "\(directory)/\(kind)-\(tag).pb.gz"))
            }
        }
    }

    static func writeCumulative(to directory: String, tag: String) throws {
        for kind in ["block", "mutex"] {
            let buffer = ProfileBuffer()
            try Profile.lookup(kind)!.write(to: buffer, debug: 0)
            try Data(buffer.bytes).write(to: URL(fileURLWithPath: "\(directory)/\(kind)-\(tag).pb.gz"))
        }
    }

    /// Exactly `rounds` contended lock/unlock pairs: a holder takes the mutex, waits until the other
    /// thread sleeps on it at `wait`, holds it 1 ms more and releases it at `release`. Every other
    /// lock and unlock here is uncontended, so the block profile gets `rounds` events at `wait` and
    /// the mutex profile `rounds` at `release`.
    static func contend(
        _ mutex: UnsafeMutablePointer<pthread_mutex_t>,
        rounds: Int,
        wait: @escaping @Sendable (UnsafeMutablePointer<pthread_mutex_t>) -> Void,
        release: @escaping @Sendable (UnsafeMutablePointer<pthread_mutex_t>) -> Void
    ) {
        let shared = UncheckedSendable(mutex)
        let held = Atomic(0)
        let done = Atomic(0)
        runThreads(2) { thread in
            let mutex = shared.value
            for round in 1...rounds {
                if thread == 0 {
                    pthread_mutex_lock(mutex)
                    held.store(round, ordering: .releasing)
                    while ctest_mutex_has_sleeper(mutex) == 0 { sleepMicros(50) }
                    sleepMicros(1000)
                    release(mutex)
                    while done.load(ordering: .acquiring) < round { sleepMicros(50) }
                } else {
                    while held.load(ordering: .acquiring) < round { sleepMicros(50) }
                    wait(mutex)
                    pthread_mutex_unlock(mutex)
                    done.store(round, ordering: .releasing)
                }
            }
        }
    }

    // Site A is the contention scenarios' pthreadWaitSite / pthreadReleaseSite.
    @inline(never) static func waitSiteB(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        pthread_mutex_lock(mutex)
        keepFrame()
    }

    @inline(never) static func releaseSiteB(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        pthread_mutex_unlock(mutex)
        keepFrame()
    }

    struct FailingSink: ProfileSink {
        struct Failure: Error {}
        func write(_ bytes: UnsafeRawBufferPointer) throws { throw Failure() }
    }
}
