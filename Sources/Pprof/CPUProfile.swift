import CPprof
import Glibc
import Synchronization

/// CPU profiling, like Go's `pprof.StartCPUProfile` / `pprof.StopCPUProfile`.
///
/// While a profile runs, every thread of the process is sampled in proportion to the CPU time it
/// uses (user space for the perf-event engine, user and system time for the timer engines): at
/// each sampling period the thread's stack is recorded by a signal handler, and `stop()` writes
/// the aggregated samples as a gzip-compressed pprof profile (sample types `samples/count` and
/// `cpu/nanoseconds`). One CPU profile can run at a time per process.
///
/// ```swift
/// let file = try FileHandle(forWritingTo: url)
/// try CPUProfile.start(writingTo: file)      // 100 Hz
/// runWorkload()
/// try CPUProfile.stop()                      // returns once the profile is written
/// ```
///
/// `start` and `stop` may be called from any thread or task, any number of times. `stop` blocks
/// the calling thread while the profile is symbolized and written.
public enum CPUProfile {
    /// How samples are triggered; chosen by `start`, best first.
    public enum Engine: String, Sendable, CustomStringConvertible {
        /// A `perf_event_open` CPU-clock event per thread (user space only), which signals the very
        /// thread that used the CPU, at the requested rate even above the kernel tick. Needs
        /// `perf_event_paranoid` ≤ 2 and no seccomp filter against `perf_event_open`.
        case perfEvent
        /// A `timer_create` timer on each thread's CPU-time clock. Expirations between two kernel
        /// ticks are merged, and each sample is weighted by the expirations it stands for, so CPU
        /// totals stay right above the tick rate while the sample count does not.
        case threadTimer
        /// One process-wide `setitimer(ITIMER_PROF)`, the fallback: the kernel picks which running
        /// thread receives each signal; each sample is weighted by the process CPU time since the
        /// previous one, so totals stay right while threads are sampled unevenly.
        case processTimer

        public var description: String { rawValue }

        var cValue: Int32 {
            switch self {
            case .perfEvent: return Int32(PP_CPU_ENGINE_PERF)
            case .threadTimer: return Int32(PP_CPU_ENGINE_TIMER)
            case .processTimer: return Int32(PP_CPU_ENGINE_ITIMER)
            }
        }
    }

    /// Settings of a CPU profile beyond its rate.
    public struct Options: Sendable {
        /// Adds the labels `thread_name` and `thread_id` (the kernel thread id) to every sample.
        /// Off by default, as Go's profiles have no thread identity.
        public var threadLabels: Bool

        /// The form of Swift function names in this profile; `nil` takes `Profile.functionNames`
        /// when the profile is written.
        public var functionNames: FunctionNameStyle?

        /// Forces an engine instead of the best available one (tests and benchmarks).
        @_spi(Testing) public var engine: Engine?

        public init(threadLabels: Bool = false, functionNames: FunctionNameStyle? = nil) {
            self.threadLabels = threadLabels
            self.functionNames = functionNames
            self.engine = nil
        }
    }

    /// What a finished profile recorded.
    public struct Summary: Sendable {
        public var engine: Engine
        /// The profiling signal used.
        public var signal: Int32
        public var rate: Int
        /// Signals recorded as samples.
        public var samples: Int64
        /// Samples dropped because the buffers were full (shown in the profile as
        /// `pprof.lostSamples`).
        public var lostSamples: Int64
        /// Threads that had a sampling source of their own (0 for `processTimer`).
        public var threadsSampled: Int
        /// Threads that were not sampled: they could not be given a source (resource limits), or
        /// they block the profiling signal (the profile's comment says which).
        public var threadsNotSampled: Int
    }

    /// The sampling rates `start` accepts, in samples per CPU-second.
    public static let rateRange = 1...10_000

    /// Starts profiling every thread of the process at `rate` samples per CPU-second.
    ///
    /// - Throws: `PprofError.cpuProfilingAlreadyInUse` if a CPU profile is running,
    ///   `PprofError.invalidArgument` if `rate` is outside `rateRange`, and
    ///   `PprofError.unavailable` if no sampling engine or signal can be used.
    public static func start(writingTo sink: some ProfileSink, rate: Int = 100, options: Options = Options()) throws {
        // The profiler's work from the start, a first call's generic metadata included.
        pp_profiler_work_enter()
        defer { pp_profiler_work_leave() }
        guard rateRange.contains(rate) else {
            throw PprofError.invalidArgument(
                "CPU profile rate \(rate) Hz is outside \(rateRange.lowerBound)…\(rateRange.upperBound)"
            )
        }
        if CPUSession.isReaderThread { throw PprofError.cpuProfilingAlreadyInUse }
        try lifecycle.withLock { current in
            if let session = current, session.ownerProcess != getpid() {
                current = nil  // inherited through fork(): it runs in the parent only
            }
            guard current == nil else { throw PprofError.cpuProfilingAlreadyInUse }
            let session = try CPUSession.start(sink: sink, rate: rate, options: options)
            current = session
            runningEngine.store(session.engine.cValue, ordering: .releasing)
            runningProcess.store(getpid(), ordering: .releasing)
        }
    }

    /// Stops the running profile and returns once the whole profile has been written.
    ///
    /// Does nothing (and returns `nil`) if no profile is running. A concurrent `start` waits until
    /// the profile is written.
    ///
    /// - Throws: the error the sink threw while the profile was written. The profiler is stopped
    ///   either way and can be started again.
    @discardableResult
    public static func stop() throws -> Summary? {
        // The profiler's work from the start, a first call's generic metadata included.
        pp_profiler_work_enter()
        defer { pp_profiler_work_leave() }
        // The sink runs on the profiler's thread; stopping from inside it would wait for itself.
        if CPUSession.isReaderThread { return nil }
        return try lifecycle.withLock { current in
            guard let session = current else { return nil }
            current = nil
            if session.ownerProcess != getpid() { return nil }  // inherited through fork()
            defer { runningEngine.store(0, ordering: .releasing) }
            return try session.finish()
        }
    }

    /// Ends the running profile's current window and goes on profiling into `sink`, without a gap:
    /// every sample falls in exactly one window. The window that ends is written as a complete
    /// profile (covering the time since `start` or the previous `startNextWindow`) to the sink it
    /// was writing to, on the calling thread; `stop()` writes the last window. This is how
    /// continuous profilers cut a running profile into back-to-back periods.
    ///
    /// - Returns: what the ended window recorded.
    /// - Throws: `PprofError.unavailable` if no CPU profile is running in this process, or the
    ///   error the ended window's sink threw (profiling goes on into `sink` either way).
    @discardableResult
    public static func startNextWindow(writingTo sink: some ProfileSink) throws -> Summary {
        // The profiler's work from the start, a first call's generic metadata included.
        pp_profiler_work_enter()
        defer { pp_profiler_work_leave() }
        if CPUSession.isReaderThread { throw PprofError.unavailable("startNextWindow called from a profile's sink") }
        return try lifecycle.withLock { current in
            guard let session = current, session.ownerProcess == getpid() else {
                throw PprofError.unavailable("no CPU profile is running")
            }
            return try session.startNextWindow(writingTo: sink)
        }
    }

    /// Whether a CPU profile is running.
    public static var isRunning: Bool { engine != nil }

    /// The engine of the running profile, `nil` when none runs.
    public static var engine: Engine? {
        guard runningProcess.load(ordering: .acquiring) == getpid() else { return nil }
        switch runningEngine.load(ordering: .acquiring) {
        case Int32(PP_CPU_ENGINE_PERF): return .perfEvent
        case Int32(PP_CPU_ENGINE_TIMER): return .threadTimer
        case Int32(PP_CPU_ENGINE_ITIMER): return .processTimer
        default: return nil
        }
    }

    private static let lifecycle = Mutex<CPUSession?>(nil)
    private static let runningEngine = Atomic<Int32>(0)
    private static let runningProcess = Atomic<Int32>(0)
}
