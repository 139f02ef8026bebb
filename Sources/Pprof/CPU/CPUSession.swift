import CPprof
import Dispatch
import Glibc
import Synchronization

/// One running CPU profile: the C sampler's configuration plus a dedicated reader thread that arms
/// threads as they appear, drains the sample rings, and at the end builds and writes the profile.
///
/// The reader is a plain pthread, not a task, so it keeps working when every thread of the
/// cooperative pool is stuck. Its mutable state is touched only on that thread (and by `finish`
/// after joining it), which is why the class is `@unchecked Sendable`.
final class CPUSession: @unchecked Sendable {
    let engine: CPUProfile.Engine
    let signal: Int32
    let rate: Int
    let periodNanos: Int64
    /// The process that started the session (a forked child inherits the object, not the run).
    let ownerProcess = getpid()
    private let options: CPUProfile.Options

    /// The part of the run that the next profile covers: `startNextWindow` closes one and opens the
    /// next without pausing the sampler.
    private struct Window {
        var sink: any ProfileSink
        var startUnixNanos: Int64
        var startMonotonicNanos: Int64
        var aggregator = CPUSampleAggregator()
        /// The sampler's cumulative lost counters when the window opened.
        var lostBefore: (samples: UInt64, weight: UInt64)

        init(sink: any ProfileSink, lostBefore: (samples: UInt64, weight: UInt64)) {
            self.sink = sink
            self.startUnixNanos = currentUnixNanos()
            self.startMonotonicNanos = monotonicNanos()
            self.lostBefore = lostBefore
        }
    }
    private var window: Window
    /// A window hand-over asked for by `startNextWindow`, taken by the reader thread.
    private let handOverRequest = Mutex<(next: any ProfileSink, done: DispatchSemaphore)?>(nil)
    private var closedWindow: ClosedWindow?

    private let wake = DispatchSemaphore(value: 0)
    private let ready = DispatchSemaphore(value: 0)
    private let stopRequested = Atomic<Bool>(false)
    private var reader: pthread_t?

    // Reader-thread state.
    private var threadDirectory = ProcessThreads.Directory()
    private var threads: [Int32: TrackedThread] = [:]
    private var armedByPerf = 0
    private var armedByTimer = 0
    private var notArmed = 0
    private var blockingSignal = 0
    private var lastArmError: Int32 = 0
    private var outcome: Result<CPUProfile.Summary, any Error> = .failure(PprofError.unavailable("profile not written"))

    /// How often the reader looks for new and exited threads: every 20 ms after a change, backing
    /// off to every 100 ms while the set of threads stays the same (a listing of /proc/self/task
    /// costs tens of microseconds). With PprofHooks linked, new threads arm themselves as they
    /// start (and a reused tid arrives as a new start), so the rescan only picks up threads
    /// created without pthread_create and releases the sources of exited ones: once a second.
    static let fastRescanInterval: Int64 = 20_000_000
    static let slowRescanInterval: Int64 = 100_000_000
    static let hookedRescanInterval: Int64 = 1_000_000_000
    /// How often the rings are emptied: every 100 ms, or every 400 ms at rates up to 100 Hz,
    /// where the smallest ring (4,096 words) still holds two intervals of a busy thread's
    /// samples. Each wake-up of the reader costs a continuous profiler its share of a core.
    static func drainInterval(rate: Int) -> Int64 { rate <= 100 ? 400_000_000 : 100_000_000 }
    /// How often the start times of known threads are checked again (a tid reused by a new
    /// thread); with the hooks a reused tid is announced by its start, so only every 10 s.
    static func verifyInterval(hooked: Bool) -> Int64 { hooked ? 10_000_000_000 : 1_000_000_000 }
    /// How long `stop` waits for signal handlers in flight to finish.
    static let quiesceMilliseconds: Int32 = 2_000

    private struct TrackedThread {
        enum State {
            case armed
            /// Claimed by the thread-start listener; its source arrives through the started queue.
            case pendingListener
            /// Could not be armed (resource limits); not sampled.
            case failed
        }
        var startTime: UInt64
        var source: pp_cpu_source
        var state: State
    }

    /// The tid of the reader thread of the running session, 0 if none.
    static let readerThreadID = Atomic<Int32>(0)

    static var isReaderThread: Bool {
        let reader = readerThreadID.load(ordering: .acquiring)
        return reader != 0 && reader == pp_gettid()
    }

    private init(
        sink: any ProfileSink,
        rate: Int,
        options: CPUProfile.Options,
        engine: CPUProfile.Engine,
        signal: Int32
    ) {
        self.window = Window(sink: sink, lostBefore: (0, 0))
        self.rate = rate
        self.periodNanos = 1_000_000_000 / Int64(rate)
        self.options = options
        self.engine = engine
        self.signal = signal
    }

    // MARK: - Start

    /// Chooses an engine and a signal, starts the sampler and the reader, and returns once every
    /// existing thread is armed.
    static func start(sink: any ProfileSink, rate: Int, options: CPUProfile.Options) throws -> CPUSession {
        let (engine, signal) = try chooseEngine(forced: options.engine)
        UnwindTables.prepare()
        LabelTags.pin()
        let session = CPUSession(sink: sink, rate: rate, options: options, engine: engine, signal: signal)
        var config = pp_cpu_config(
            engine: engine.cValue,
            signo: signal,
            period_ns: session.periodNanos,
            thread_info: options.threadLabels ? 1 : 0,
            ring_words: ringWords(rate: rate),
            perf_fd_limit: perfDescriptorLimit()
        )
        let begun = pp_cpu_begin(&config)
        guard begun == 0 else {
            LabelTags.unpin()
            throw PprofError.unavailable("CPU profiling could not start: \(errorName(-begun))")
        }
        do {
            try session.spawnReader()
        } catch {
            _ = pp_cpu_end(quiesceMilliseconds)
            LabelTags.unpin()
            throw error
        }
        session.ready.wait()
        return session
    }

    private static func chooseEngine(forced: CPUProfile.Engine?) throws -> (CPUProfile.Engine, Int32) {
        let candidates: [CPUProfile.Engine] = forced.map { [$0] } ?? [.perfEvent, .threadTimer, .processTimer]
        var reasons: [String] = []
        for engine in candidates {
            let probe = pp_cpu_probe_engine(engine.cValue)
            guard probe == 0 else {
                reasons.append("\(engine): \(errorName(-probe))")
                continue
            }
            let signal = pp_cpu_claim_signal(engine.cValue)
            guard signal > 0 else {
                reasons.append(
                    engine == .processTimer
                        ? "\(engine): SIGPROF has another handler"
                        : "\(engine): SIGPROF and every real-time signal have other handlers"
                )
                continue
            }
            return (engine, signal)
        }
        throw PprofError.unavailable("CPU profiling unavailable: " + reasons.joined(separator: "; "))
    }

    /// Words per ring: room for two drain intervals of one thread sampled at `rate` with stacks
    /// of about 48 words. Pages are committed only as rings fill.
    private static func ringWords(rate: Int) -> UInt32 {
        let words = Double(rate) * (Double(drainInterval(rate: rate)) / 1e9) * 48 * 2
        return UInt32(min(max(words, 4096), Double(1 << 24)))
    }

    /// A quarter of the soft descriptor limit: threads beyond it get timers, so the host keeps
    /// its descriptors.
    private static func perfDescriptorLimit() -> UInt32 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 256 }
        return UInt32(min(limit.rlim_cur / 4, 60_000))
    }

    private func spawnReader() throws {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        // Created as the profiler's work, so that threadcreate marks it; it stays the profiler's.
        let result = ProfilerWork.run {
            pthread_create(
                &thread,
                nil,
                { context in
                    ProfilerWork.markCurrentThread()
                    let session = Unmanaged<CPUSession>.fromOpaque(context!).takeRetainedValue()
                    session.run()
                    return nil
                },
                context
            )
        }
        guard result == 0 else {
            Unmanaged<CPUSession>.fromOpaque(context).release()
            throw PprofError.unavailable("CPU profiling: cannot create its reader thread: \(errorName(result))")
        }
        reader = thread
    }

    // MARK: - Stop

    /// Stops the reader, which writes the profile, and waits for it.
    func finish() throws -> CPUProfile.Summary {
        stopRequested.store(true, ordering: .releasing)
        wake.signal()
        if let reader { pthread_join(reader, nil) }
        return try outcome.get()
    }

    // MARK: - Windows

    /// A window that the reader has closed: its samples, to be built and written by the caller.
    private struct ClosedWindow {
        var window: Window
        var durationNanos: Int64
        var lost: (samples: Int64, periods: Int64)
    }

    /// Closes the current window and opens the next one writing to `next`, then builds and writes
    /// the closed window's profile on the calling thread. Sampling goes on meanwhile: no sample
    /// falls between the two windows. Callers are serialized (with `finish`) by `CPUProfile`.
    func startNextWindow(writingTo next: any ProfileSink) throws -> CPUProfile.Summary {
        let done = DispatchSemaphore(value: 0)
        handOverRequest.withLock { $0 = (next, done) }
        wake.signal()
        done.wait()
        guard let closed = closedWindow else {
            throw PprofError.unavailable("CPU profile window not handed over")
        }
        closedWindow = nil
        return try write(closed)
    }

    /// On the reader thread: drains the rings into the current window, and closes it.
    private func closeWindow(openingNext next: (any ProfileSink)?) -> ClosedWindow {
        drain()
        var counters = pp_cpu_counters()
        pp_cpu_read_counters(&counters)
        let lost = (
            samples: Int64(counters.lost_samples &- window.lostBefore.samples),
            periods: Int64(counters.lost_weight &- window.lostBefore.weight)
        )
        let closed = ClosedWindow(
            window: window,
            durationNanos: monotonicNanos() - window.startMonotonicNanos,
            lost: lost
        )
        if let next { window = Window(sink: next, lostBefore: (counters.lost_samples, counters.lost_weight)) }
        return closed
    }

    /// Takes a pending hand-over, if any; the caller is woken once the closed window is ready.
    private func handOverWindow() {
        guard
            let request = handOverRequest.withLock({ request in
                defer { request = nil }; return request
            })
        else {
            return
        }
        closedWindow = closeWindow(openingNext: request.next)
        request.done.signal()
    }

    /// Builds and writes a closed window's profile.
    private func write(_ closed: ClosedWindow) throws -> CPUProfile.Summary {
        let summary = CPUProfile.Summary(
            engine: engine,
            signal: signal,
            rate: rate,
            samples: closed.window.aggregator.totalSamples,
            lostSamples: closed.lost.samples,
            threadsSampled: armedByPerf + armedByTimer,
            threadsNotSampled: notArmed + blockingSignal
        )
        let profile = closed.window.aggregator.build(
            periodNanos: periodNanos,
            startUnixNanos: closed.window.startUnixNanos,
            durationNanos: closed.durationNanos,
            lost: closed.lost,
            threadLabels: options.threadLabels,
            functionNames: options.functionNames ?? Profile.functionNames,
            comments: comments(lostSamples: closed.lost.samples)
        )
        try profile.write(to: closed.window.sink)
        return summary
    }

    // MARK: - The reader thread

    private var perThreadSources: Bool { engine != .processTimer }

    private func run() {
        CPUSession.readerThreadID.store(pp_gettid(), ordering: .releasing)
        pp_cpu_name_current_thread("pprof-cpu")
        if perThreadSources {
            rescan(verifyStartTimes: false)
        } else {
            let armed = pp_cpu_arm_process_timer()
            if armed != 0 { lastArmError = -armed }
        }
        ready.signal()

        let hooked = pp_thread_events_hooked() != 0
        let drainInterval = CPUSession.drainInterval(rate: rate)
        let verifyInterval = CPUSession.verifyInterval(hooked: hooked)
        let settledRescanInterval = hooked ? CPUSession.hookedRescanInterval : CPUSession.slowRescanInterval
        var rescanInterval = hooked ? settledRescanInterval : CPUSession.fastRescanInterval
        var unchangedRescans = 0
        var nextDrain = monotonicNanos() + drainInterval
        var nextRescan = monotonicNanos() + rescanInterval
        var nextVerify = monotonicNanos() + verifyInterval
        while !stopRequested.load(ordering: .acquiring) {
            // One wake-up serves whichever of draining and rescanning is due first.
            let now = monotonicNanos()
            let sleep = max(0, min(nextDrain, perThreadSources ? nextRescan : nextDrain) - now)
            _ = wake.wait(timeout: .now() + .nanoseconds(Int(sleep)))
            handOverWindow()
            if stopRequested.load(ordering: .acquiring) { break }
            let woke = monotonicNanos()
            if perThreadSources && woke >= nextRescan {
                let verify = woke >= nextVerify
                if verify { nextVerify = woke + verifyInterval }
                if rescan(verifyStartTimes: verify) {
                    unchangedRescans = 0
                    if !hooked { rescanInterval = CPUSession.fastRescanInterval }
                } else {
                    unchangedRescans += 1
                    if unchangedRescans >= 5 { rescanInterval = settledRescanInterval }
                }
                nextRescan = woke + rescanInterval
            }
            if woke >= nextDrain {
                drain()
                nextDrain = woke + drainInterval
            }
        }
        outcome = Result { try stopSampling() }
        CPUSession.readerThreadID.store(0, ordering: .releasing)
    }

    /// Brings the armed threads in line with `/proc/self/task`: adopts threads the listener armed,
    /// arms new threads, releases the sources of exited ones, and (every `verifyInterval`)
    /// notices a tid that was reused by a new thread.
    /// Returns whether the set of threads changed.
    @discardableResult
    private func rescan(verifyStartTimes: Bool) -> Bool {
        var changed = adoptStartedThreads()
        guard let live = threadDirectory?.list(), !live.isEmpty else { return changed }
        let liveSet = Set(live)
        for tid in threads.keys where !liveSet.contains(tid) {
            retire(tid)
            changed = true
        }
        for tid in live {
            guard let tracked = threads[tid] else {
                discover(tid, startTime: pp_thread_start_time(tid))
                changed = true
                continue
            }
            switch tracked.state {
            case .pendingListener:
                // The listener either hands over its source or undoes its claim; in the latter case
                // the thread is ours to arm.
                if pp_cpu_claim_thread(tid, tracked.startTime) == 1 { arm(tid, startTime: tracked.startTime) }
            case .armed, .failed:
                if verifyStartTimes {
                    let startTime = pp_thread_start_time(tid)
                    if startTime != 0 && startTime != tracked.startTime {
                        retire(tid)
                        discover(tid, startTime: startTime)
                        changed = true
                    }
                }
            }
        }
        return changed
    }

    private func discover(_ tid: Int32, startTime: UInt64) {
        guard startTime != 0 else { return }  // exited meanwhile
        switch pp_cpu_claim_thread(tid, startTime) {
        case 0:
            threads[tid] = TrackedThread(startTime: startTime, source: pp_cpu_source(), state: .pendingListener)
        default:
            arm(tid, startTime: startTime)
        }
    }

    private func arm(_ tid: Int32, startTime: UInt64) {
        var source = pp_cpu_source()
        let result = pp_cpu_arm_thread(tid, &source)
        if result == 0 {
            count(source, tid: tid)
            threads[tid] = TrackedThread(startTime: startTime, source: source, state: .armed)
        } else if result == -ESRCH || pp_thread_start_time(tid) != startTime {
            pp_cpu_unclaim_thread(tid, startTime)  // it exited
            threads[tid] = nil
        } else {
            notArmed += 1
            lastArmError = -result
            threads[tid] = TrackedThread(startTime: startTime, source: source, state: .failed)
        }
    }

    /// Counts a newly armed thread by source, and notes whether it blocks the profiling signal
    /// (libdispatch workers block most signals): then it is armed but never sampled.
    private func count(_ source: pp_cpu_source, tid: Int32) {
        if pp_thread_blocks_signal(tid, signal) == 1 { blockingSignal += 1 }
        switch source.kind {
        case Int32(PP_CPU_SOURCE_PERF): armedByPerf += 1
        case Int32(PP_CPU_SOURCE_TIMER): armedByTimer += 1
        default: break
        }
    }

    /// Takes over the threads that the thread-start listener armed; returns whether there were any.
    @discardableResult
    private func adoptStartedThreads() -> Bool {
        var adopted = false
        var started = pp_cpu_started_thread()
        while pp_cpu_take_started_thread(&started) != 0 {
            adopted = true
            if let old = threads[started.tid], old.startTime != started.start_time { retire(started.tid) }
            if started.error == 0 {
                count(started.source, tid: started.tid)
                threads[started.tid] = TrackedThread(
                    startTime: started.start_time,
                    source: started.source,
                    state: .armed
                )
            } else if started.error == -ESRCH {
                threads[started.tid] = nil
            } else {
                notArmed += 1
                lastArmError = -started.error
                threads[started.tid] = TrackedThread(
                    startTime: started.start_time,
                    source: started.source,
                    state: .failed
                )
            }
        }
        return adopted
    }

    /// Releases the source of an exited (or replaced) thread. No handler can be using it: the
    /// thread it signalled is gone.
    private func retire(_ tid: Int32) {
        guard var tracked = threads.removeValue(forKey: tid) else { return }
        pp_cpu_quiet_source(&tracked.source)
        pp_cpu_release_source(&tracked.source)
        pp_cpu_unclaim_thread(tid, tracked.startTime)
    }

    private func drain() {
        withUnsafeMutablePointer(to: &window.aggregator) { aggregator in
            pp_cpu_drain(
                { context, record, thread, stack, count in
                    guard let context, let record else { return }
                    let aggregator = context.assumingMemoryBound(to: CPUSampleAggregator.self)
                    aggregator.pointee.add(
                        record.pointee,
                        thread: thread?.pointee,
                        stack: UnsafeBufferPointer(start: stack, count: Int(count))
                    )
                },
                aggregator
            )
        }
    }

    /// Silences every source, waits for handlers in flight, releases the sources, drains the last
    /// samples, and writes the last window's profile.
    private func stopSampling() throws -> CPUProfile.Summary {
        defer { LabelTags.unpin() }
        if perThreadSources {
            for tid in threads.keys { pp_cpu_quiet_source(&threads[tid]!.source) }
        } else {
            pp_cpu_quiet_process_timer()
        }
        _ = pp_cpu_end(CPUSession.quiesceMilliseconds)
        // A handler that was in flight may have drawn its next period and re-armed the process
        // timer after the quiet above; none can once pp_cpu_end has returned.
        if !perThreadSources { pp_cpu_quiet_process_timer() }
        adoptStartedThreads()
        for tid in Array(threads.keys) { pp_cpu_release_source(&threads[tid]!.source) }
        threads.removeAll()
        threadDirectory = nil
        return try write(closeWindow(openingNext: nil))
    }

    /// The profile's comments: which engine and signal sampled, and how many threads.
    private func comments(lostSamples: Int64) -> [String] {
        let how: String
        switch engine {
        case .perfEvent: how = "perf_event cpu-clock per thread (user space)"
        case .threadTimer: how = "timer_create on each thread's CPU-time clock"
        case .processTimer: how = "setitimer(ITIMER_PROF), process-wide"
        }
        var lines = ["cpu profile: engine \(engine) — \(how); signal \(signalName(signal)); \(rate) Hz"]
        if perThreadSources {
            var line = "threads: \(armedByPerf) by perf_event, \(armedByTimer) by CPU-time timer"
            if notArmed > 0 { line += "; \(notArmed) not sampled (\(errorName(lastArmError)))" }
            if blockingSignal > 0 { line += "; \(blockingSignal) not sampled (they block \(signalName(signal)))" }
            lines.append(line)
        } else if lastArmError != 0 {
            lines.append("setitimer failed: \(errorName(lastArmError))")
        }
        if lostSamples > 0 {
            lines.append("lost samples: \(lostSamples) (buffers full)")
        }
        if let reason = pp_labels_task_labels_unreadable_reason() {
            lines.append(
                "labels: samples carry only threads' own labels (setForCurrentThread); the signal handler "
                    + "cannot read Swift tasks' labels in this process (\(String(cString: reason)))"
            )
        }
        return lines
    }
}

func monotonicNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// "EACCES (Permission denied)" for an errno value.
func errorName(_ code: Int32) -> String {
    let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM",
        EACCES: "EACCES", EBUSY: "EBUSY", EINVAL: "EINVAL", EMFILE: "EMFILE", ENFILE: "ENFILE", ENOSYS: "ENOSYS",
        ENODEV: "ENODEV", EOPNOTSUPP: "EOPNOTSUPP",
    ]
    let text = String(cString: strerror(code))
    return names[code].map { "\($0) (\(text))" } ?? text
}

func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGPROF: return "SIGPROF"
    case SIGURG: return "SIGURG"
    default: return "real-time signal \(signal)"
    }
}
