import CPprof
import Dispatch
import Glibc
import Synchronization

/// One running wall profile: a sampler pthread that, at each period, lists the process's threads
/// (every `listInterval`), picks the next `maxThreadsPerPeriod` eligible ones in rotation, asks
/// them for their stacks through the thread-dump signal (`ThreadDump.capture`), and accumulates the
/// answers; at the end it builds and writes the profile.
///
/// Its mutable state is touched only on the sampler thread (and by `finish` after joining it),
/// which is why the class is `@unchecked Sendable`.
final class WallSession: @unchecked Sendable {
    let ownerProcess = getpid()
    let rate: Int
    let periodNanos: Int64
    private let sink: any ProfileSink
    private let options: WallProfile.Options
    private let startUnixNanos = currentUnixNanos()
    private let startMonotonicNanos = monotonicNanos()

    private let wake = DispatchSemaphore(value: 0)
    private let ready = DispatchSemaphore(value: 0)
    private let stopRequested = Atomic<Bool>(false)
    private var sampler: pthread_t?
    private var outcome: Result<WallProfile.Summary, any Error> = .failure(
        PprofError.unavailable("profile not written")
    )

    /// How often the sampler lists /proc/self/task again (new threads, exited ones).
    static let listInterval: Int64 = 100_000_000

    // Sampler-thread state.
    private struct TrackedThread {
        var name: String
        var eligible: Bool
        /// Start of the wall time the thread's next sample stands for.
        var since: Int64
        /// The aggregate its last sample went to, which the time after it joins at the end.
        var lastEntry: Int?
    }

    private var directory = ProcessThreads.Directory()
    private var threads: [Int32: TrackedThread] = [:]
    private var rotation: [Int32] = []
    /// The previous listing, and when it was taken (every tracked thread was alive then).
    private var lastListing: [Int32] = []
    private var lastListingTime: Int64 = 0
    private var cursor = 0
    private var aggregator = WallSampleAggregator()
    private var periods: Int64 = 0
    private var maxEligible = 0
    private var threadsSeen = 0
    private var captureFailures = 0

    private static let samplerThreadID = Atomic<Int32>(0)

    static var isSamplerThread: Bool {
        let sampler = samplerThreadID.load(ordering: .acquiring)
        return sampler != 0 && sampler == pp_gettid()
    }

    private init(sink: any ProfileSink, rate: Int, options: WallProfile.Options) {
        self.sink = sink
        self.rate = rate
        self.periodNanos = 1_000_000_000 / Int64(rate)
        self.options = options
    }

    static func start(sink: any ProfileSink, rate: Int, options: WallProfile.Options) throws -> WallSession {
        UnwindTables.prepare()
        // Claims the dump signal (throws if every candidate belongs to another handler).
        _ = try ThreadDump.capture(threads: [pp_gettid()], prepareTables: false)
        LabelTags.pin()
        let session = WallSession(sink: sink, rate: rate, options: options)
        let context = Unmanaged.passRetained(session).toOpaque()
        var thread = pthread_t()
        let result = ProfilerWork.run {
            pthread_create(
                &thread,
                nil,
                { context in
                    ProfilerWork.markCurrentThread()
                    Unmanaged<WallSession>.fromOpaque(context!).takeRetainedValue().run()
                    return nil
                },
                context
            )
        }
        guard result == 0 else {
            Unmanaged<WallSession>.fromOpaque(context).release()
            LabelTags.unpin()
            throw PprofError.unavailable("wall profiling: cannot create its sampler thread: \(errorName(result))")
        }
        session.sampler = thread
        session.ready.wait()
        return session
    }

    func finish() throws -> WallProfile.Summary {
        stopRequested.store(true, ordering: .releasing)
        wake.signal()
        if let sampler { pthread_join(sampler, nil) }
        return try outcome.get()
    }

    // MARK: - The sampler thread

    private func run() {
        let own = pp_gettid()
        WallSession.samplerThreadID.store(own, ordering: .releasing)
        pp_cpu_name_current_thread("pprof-wall")
        let cpuAtStart = threadCPUTimeNanos()
        refreshThreads(now: startMonotonicNanos, own: own)
        var nextList = monotonicNanos() + WallSession.listInterval
        ready.signal()

        // A thread that does not answer within a period (at least 10 ms, at most 50 ms) is counted
        // as such. A woken thread may wait milliseconds for a CPU on a loaded machine before its
        // handler runs; too short a deadline would turn those waits into unlabelled "unknown"
        // samples. A slow period only delays the next (the weights are measured time).
        let answerTimeout = Duration.nanoseconds(min(max(periodNanos, 10_000_000), 50_000_000))
        var nextTick = startMonotonicNanos + periodNanos
        while !stopRequested.load(ordering: .acquiring) {
            let delay = nextTick - monotonicNanos()
            if delay > 0 { _ = wake.wait(timeout: .now() + .nanoseconds(Int(delay))) }
            if stopRequested.load(ordering: .acquiring) { break }
            let now = monotonicNanos()
            if now >= nextList {
                refreshThreads(now: now, own: own)
                nextList = now + WallSession.listInterval
            }
            samplePeriod(now: now, timeout: answerTimeout)
            periods += 1
            nextTick += periodNanos
            // Behind (a slow period, a descheduled sampler): skip the missed ticks; the weights
            // are measured time, so nothing is lost but resolution.
            let after = monotonicNanos()
            if nextTick <= after { nextTick = after + periodNanos }
        }
        let end = monotonicNanos()
        // Each thread's time after its last sample joins that sample's aggregate.
        for thread in threads.values {
            if let entry = thread.lastEntry { aggregator.extend(entry, byNanos: end - thread.since) }
        }
        let samplerCPU = threadCPUTimeNanos() - cpuAtStart
        outcome = Result { try write(durationNanos: end - startMonotonicNanos, samplerCPUNanos: samplerCPU) }
        WallSession.samplerThreadID.store(0, ordering: .releasing)
    }

    /// Brings the tracked threads in line with /proc/self/task: drops exited ones, names and filters
    /// new ones (their time starts now), and rebuilds the rotation in a stable order.
    private func refreshThreads(now: Int64, own: Int32) {
        guard let live = directory?.list(), !live.isEmpty else { return }
        // The same threads as last time (the common case): nothing to do but note the time.
        if live == lastListing {
            lastListingTime = now
            return
        }
        let liveSet = Set(live)
        for (tid, thread) in threads where !liveSet.contains(tid) {
            // Gone since the last listing: its time up to then joins its last sample.
            retire(thread)
            threads[tid] = nil
        }
        lastListing = live
        lastListingTime = now
        var added: [Int32] = []
        for tid in live where threads[tid] == nil {
            // Names cost a file read per thread: only when something uses them.
            let needsName = options.threadFilter != nil || options.threadLabels
            let name = needsName ? ProcessThreads.name(of: tid) ?? "" : ""
            // The profiler's own threads: this sampler and the CPU profile's reader.
            var eligible = tid != own && tid != CPUSession.readerThreadID.load(ordering: .acquiring)
            if eligible, let filter = options.threadFilter { eligible = filter(name) }
            threads[tid] = TrackedThread(name: name, eligible: eligible, since: now, lastEntry: nil)
            if eligible {
                added.append(tid)
                threadsSeen += 1
            }
        }
        let before = rotation.count
        rotation.removeAll { threads[$0] == nil }
        if rotation.count != before { cursor = rotation.isEmpty ? 0 : cursor % rotation.count }
        rotation += added.sorted()
        maxEligible = max(maxEligible, rotation.count)
    }

    private func samplePeriod(now: Int64, timeout: Duration) {
        guard !rotation.isEmpty else { return }
        let count = min(options.maxThreadsPerPeriod, rotation.count)
        var picked: [Int32] = []
        picked.reserveCapacity(count)
        for _ in 0..<count {
            picked.append(rotation[cursor])
            cursor = (cursor + 1) % rotation.count
        }
        let answers: [ThreadSample]
        do {
            answers = try ThreadDump.capture(
                threads: picked,
                timeout: timeout,
                window: min(count, ThreadDump.window),
                prepareTables: false
            )
        } catch {
            captureFailures += 1
            return
        }
        for answer in answers {
            guard var thread = threads[answer.tid] else { continue }
            if answer.status == .exited {
                retire(thread)
                threads[answer.tid] = nil
                continue
            }
            let entry = aggregator.add(
                answer,
                wallNanos: now - thread.since,
                threadName: options.threadLabels ? thread.name : nil
            )
            thread.since = now
            thread.lastEntry = entry
            threads[answer.tid] = thread
        }
    }

    /// A thread that exited: the time from its last sample to the last listing that found it
    /// alive joins that sample (the rest, less than `listInterval`, is not known).
    private func retire(_ thread: TrackedThread) {
        guard let entry = thread.lastEntry, lastListingTime > thread.since else { return }
        aggregator.extend(entry, byNanos: lastListingTime - thread.since)
    }

    private func write(durationNanos: Int64, samplerCPUNanos: Int64) throws -> WallProfile.Summary {
        defer { LabelTags.unpin() }
        let built = aggregator.build(
            periodNanos: periodNanos,
            startUnixNanos: startUnixNanos,
            durationNanos: durationNanos,
            includeIdle: options.includeIdle,
            threadLabels: options.threadLabels
        )
        let counts = built.counts
        let summary = WallProfile.Summary(
            rate: rate,
            periods: periods,
            samples: counts.samples,
            idleSamples: counts.idle,
            blockedSignalSamples: counts.blocksSignal,
            unansweredSamples: counts.unanswered,
            threadsSeen: threadsSeen,
            maxEligibleThreads: maxEligible,
            samplerCPUNanos: samplerCPUNanos,
            durationNanos: durationNanos
        )
        var profile = built.profile
        profile.comments = comments(summary)
        try profile.write(to: sink)
        return summary
    }

    private func comments(_ summary: WallProfile.Summary) -> [String] {
        var lines = [
            "wall profile: \(rate) Hz, at most \(options.maxThreadsPerPeriod) threads per period in rotation; "
                + "\(summary.periods) periods, \(summary.threadsSeen) threads (at most \(summary.maxEligibleThreads) at once), "
                + "\(summary.samples) thread samples"
        ]
        let perSample = summary.samplerNanosPerSample / 1000
        let share =
            summary.durationNanos > 0 ? Double(summary.samplerCPUNanos) / Double(summary.durationNanos) * 100 : 0
        lines.append(
            "cost: sampler thread \(formatted(Double(summary.samplerCPUNanos) / 1e6)) ms CPU "
                + "(\(formatted(perSample)) µs per thread sample, \(formatted(share)) % of one core)"
        )
        if summary.idleSamples > 0 {
            lines.append(
                options.includeIdle
                    ? "idle pool threads: \(summary.idleSamples) samples kept (includeIdle)"
                    : "idle pool threads: \(summary.idleSamples) samples left out (includeIdle = false)"
            )
        }
        if summary.blockedSignalSamples > 0 {
            lines.append(
                "\(summary.blockedSignalSamples) samples of threads that block the signal "
                    + "(pprof.threadBlocksSignal, state unknown)"
            )
        }
        if summary.unansweredSamples > 0 {
            lines.append("\(summary.unansweredSamples) samples of threads that did not answer in time")
        }
        if captureFailures > 0 { lines.append("\(captureFailures) periods could not signal any thread") }
        lines.append("swift tasks: only tasks running on a thread are sampled; suspended tasks are not on any thread")
        if let reason = pp_labels_task_labels_unreadable_reason() {
            lines.append(
                "labels: samples carry only threads' own labels; the signal handler cannot read Swift "
                    + "tasks' labels in this process (\(String(cString: reason)))"
            )
        }
        return lines
    }

    private func formatted(_ value: Double) -> String {
        let rounded = (value * 100).rounded() / 100
        return String(rounded)
    }
}

func threadCPUTimeNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
