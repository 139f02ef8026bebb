import CPprof
import Foundation
@_spi(Testing) import Pprof
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Scenarios of the robustness audit: interplays between mechanisms that share a signal or a table.
enum AuditScenarios {
    static let phase = Atomic<Int>(0)

    /// `cpu-perf-after-dump <path> engine=perfEvent rate=… seconds=…`: a thread dump's SIGPROF is
    /// pending on a CPU-profiled thread (the thread blocks SIGPROF for a moment) while its perf event
    /// overflows. The kernel drops the overflow's signal (a standard signal is queued once); the
    /// thread must still be sampled afterwards, in `burnAfterDump`. Prints the engine and the tid.
    static func perfAfterDump(_ arguments: [String]) throws {
        let settings = try CPUScenarios.Settings(arguments)
        let file = try CPUScenarios.createFile(settings.path)
        try CPUProfile.start(writingTo: file, rate: settings.rate, options: settings.options)
        let engine = CPUProfile.engine
        let tid = Atomic<Int32>(0)
        let dumper = Thread {
            while phase.load(ordering: .acquiring) < 1 { usleep(1000) }
            // The worker blocks SIGPROF: the request stays pending on it after the dump gives up.
            _ = try? Profile.lookup("goroutine")!.write(to: ProfileBuffer(), debug: 1)
            phase.store(2, ordering: .releasing)
        }
        dumper.start()
        let threadCPU = CPUScenarios.runThreads(1) { _ in
            tid.store(pp_gettid(), ordering: .relaxed)
            CPUScenarios.burnThreadCPU(50_000_000)
            var profiling = sigset_t()
            sigemptyset(&profiling)
            sigaddset(&profiling, SIGPROF)
            pthread_sigmask(SIG_BLOCK, &profiling, nil)
            phase.store(1, ordering: .releasing)
            while phase.load(ordering: .acquiring) < 2 { usleep(1000) }
            burnWhileDumpPending(50_000_000)
            pthread_sigmask(SIG_UNBLOCK, &profiling, nil)
            burnAfterDump(Int64(settings.seconds * 1e9))
        }
        try CPUProfile.stop()
        try file.close()
        CPUScenarios.printJSON([
            "engine": engine?.rawValue ?? "", "tid": Int(tid.load(ordering: .relaxed)), "threadCPUNanos": threadCPU,
        ])
    }

    @inline(never) static func burnWhileDumpPending(_ nanos: Int64) {
        CPUScenarios.burnThreadCPU(nanos)
        blackHole(1)
    }

    @inline(never) static func burnAfterDump(_ nanos: Int64) {
        CPUScenarios.burnThreadCPU(nanos)
        blackHole(2)
    }
}
