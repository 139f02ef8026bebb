import CTestSupport
import Foundation
import Pprof
import Synchronization

/// Delta profiles over scripted events, for the delta-profile tests. Each scenario writes the delta
/// profiles it takes and the cumulative profiles after them into the directory given as its first
/// argument, and prints what it knows as JSON on stdout.
enum DeltaScenarios {
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
        let mutex = UncheckedSendable(UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1))
        pthread_mutex_init(mutex.value, nil)
        runThreads(7) { thread in
            if thread < 4 {
                for _ in 0..<150 { concurrentSite(mutex.value) }
                contending.subtract(1, ordering: .releasing)
            } else {
                var round = 0
                while contending.load(ordering: .acquiring) > 0 || round < 5 {
                    for kind in ["block", "mutex"] {
                        let buffer = ProfileBuffer()
                        do {
                            try deltas.profile(kind, to: buffer)
                            written.withLock { $0[kind, default: []].append(buffer.bytes) }
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
        sleepMicros(100)
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
