import CPprof

/// The profiler's own work on the calling thread (`pp_profiler_work.h`): what runs inside is not
/// the service's, so its allocations are not sampled, its lock waits are not block or mutex
/// events, and its stack and the threads it starts are marked `pprof_internal` in the goroutine
/// and threadcreate profiles. Scopes nest.
@_spi(Integration) public enum ProfilerWork {
    /// The label the goroutine and threadcreate profiles put on the profiler's own threads.
    public static let labelKey = "pprof_internal"

    @inline(__always)
    public static func run<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        pp_profiler_work_enter()
        defer { pp_profiler_work_leave() }
        return try body()
    }

    /// Marks the calling thread (one the profiler created) as the profiler's for the rest of its life.
    public static func markCurrentThread() { pp_profiler_work_mark_thread() }
}
