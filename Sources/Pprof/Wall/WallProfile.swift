import CPprof
import Glibc
import Synchronization

/// Wall-clock profiling: where the time of the process's threads goes, on and off the CPU.
///
/// While a profile runs, a sampler thread wakes at each wall-clock period and asks the threads of
/// the process (at most `Options.maxThreadsPerPeriod` of them per period, in fair rotation) to
/// record their stacks, through the same signal and handler as the `goroutine` thread dump. Each
/// sample says whether the thread was running (on a CPU or runnable) or waiting, and in what
/// (`state` label: `running`, `waiting:lock`, `waiting:condition`, `waiting:semaphore`,
/// `waiting:sleep`, `waiting:io`, …), with the labels in force on that thread. `stop()` writes a
/// gzip-compressed pprof profile with sample types `samples/count` and `wall/nanoseconds`.
///
/// ```swift
/// try WallProfile.start(writingTo: file)   // 100 Hz
/// handleRequests()
/// try WallProfile.stop()                   // returns once the profile is written
/// ```
///
/// A sample of a thread stands for the wall time since that thread's previous sample (or since the
/// profile started, or the thread appeared), so each thread's samples add up to its wall time in
/// the profile however the rotation spaced them. Idle threads of pools (libdispatch workers,
/// and so the Swift cooperative pool, and SwiftNIO event loops waiting for work) are recognised by
/// their stacks and left out unless `includeIdle` is set; the comments count them. Suspended Swift
/// tasks are not on a thread and are not sampled (docs/wall.md).
///
/// One wall profile can run at a time per process, alongside a CPU profile.
public enum WallProfile {
    /// Settings of a wall profile beyond its rate.
    public struct Options: Sendable {
        /// Keeps samples of pool threads waiting for work (left out by default).
        public var includeIdle: Bool
        /// Samples only the threads whose name (`comm`, at most 15 bytes) it accepts; all by default.
        public var threadFilter: (@Sendable (_ name: String) -> Bool)?
        /// At most this many threads are sampled per period; the rest are taken in turn in later
        /// periods. Bounds the cost with thousands of threads.
        public var maxThreadsPerPeriod: Int
        /// Adds the labels `thread_name` and `thread_id` to every sample.
        public var threadLabels: Bool

        public init(
            includeIdle: Bool = false,
            threadFilter: (@Sendable (_ name: String) -> Bool)? = nil,
            maxThreadsPerPeriod: Int = 16,
            threadLabels: Bool = false
        ) {
            self.includeIdle = includeIdle
            self.threadFilter = threadFilter
            self.maxThreadsPerPeriod = maxThreadsPerPeriod
            self.threadLabels = threadLabels
        }
    }

    /// What a finished profile recorded, and what it cost.
    public struct Summary: Sendable {
        public var rate: Int
        /// Sampling periods the sampler ran.
        public var periods: Int64
        /// Thread samples taken (answers, plus threads that block the signal or did not answer).
        public var samples: Int64
        /// Samples of idle pool threads, left out of the profile unless `includeIdle` is set.
        public var idleSamples: Int64
        /// Samples of threads that block the signal: counted (`pprof.threadBlocksSignal`), not waited for.
        public var blockedSignalSamples: Int64
        /// Samples of threads that did not answer within the period's deadline.
        public var unansweredSamples: Int64
        /// Distinct threads the filter let through.
        public var threadsSeen: Int
        /// The most threads eligible in one period.
        public var maxEligibleThreads: Int
        /// CPU time of the sampler thread (listing, signalling, collecting; not the handlers' time
        /// on the sampled threads, which `pprof-bench wall` measures).
        public var samplerCPUNanos: Int64
        /// Wall time the profile covered.
        public var durationNanos: Int64

        /// Sampler CPU time per thread sample.
        public var samplerNanosPerSample: Double { samples > 0 ? Double(samplerCPUNanos) / Double(samples) : 0 }
    }

    /// The sampling rates `start` accepts, in periods per second.
    public static let rateRange = 1...1000

    /// Starts sampling the process's threads `rate` times per second of wall-clock time.
    ///
    /// - Throws: `PprofError.wallProfilingAlreadyInUse` if one runs, `PprofError.invalidArgument`
    ///   for a rate outside `rateRange` or a cap below 1, `PprofError.unavailable` if no signal can
    ///   be used.
    public static func start(writingTo sink: some ProfileSink, rate: Int = 100, options: Options = Options()) throws {
        // The profiler's work from the start, a first call's generic metadata included.
        pp_profiler_work_enter()
        defer { pp_profiler_work_leave() }
        guard rateRange.contains(rate) else {
            throw PprofError.invalidArgument(
                "wall profile rate \(rate) Hz is outside \(rateRange.lowerBound)…\(rateRange.upperBound)"
            )
        }
        guard options.maxThreadsPerPeriod >= 1 else {
            throw PprofError.invalidArgument("maxThreadsPerPeriod must be at least 1")
        }
        if WallSession.isSamplerThread { throw PprofError.wallProfilingAlreadyInUse }
        try lifecycle.withLock { current in
            if let session = current, session.ownerProcess != getpid() { current = nil }
            guard current == nil else { throw PprofError.wallProfilingAlreadyInUse }
            current = try WallSession.start(sink: sink, rate: rate, options: options)
        }
    }

    /// Stops the running profile and returns once it has been written; `nil` if none runs.
    ///
    /// - Throws: the error the sink threw. The profiler is stopped either way.
    @discardableResult
    public static func stop() throws -> Summary? {
        // The profiler's work from the start, a first call's generic metadata included.
        pp_profiler_work_enter()
        defer { pp_profiler_work_leave() }
        if WallSession.isSamplerThread { return nil }
        return try lifecycle.withLock { current in
            guard let session = current else { return nil }
            current = nil
            if session.ownerProcess != getpid() { return nil }
            return try session.finish()
        }
    }

    /// Whether a wall profile is running in this process.
    public static var isRunning: Bool {
        lifecycle.withLock { $0.map { $0.ownerProcess == getpid() } ?? false }
    }

    private static let lifecycle = Mutex<WallSession?>(nil)
}
