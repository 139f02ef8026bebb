import CPprof
import CTestSupport
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

extension AuditScenarios {
    static let stopDumping = Atomic<Bool>(false)

    /// `thread-dump-fork <forks>`: one thread dumps 20 parked threads back to back while another
    /// forks; each child dumps its own thread. Prints how many children finished, failed or hung
    /// (a child inherits the dump lock held by a thread that does not exist in it).
    static func forkWhileDumping(_ arguments: [String]) throws {
        let forks = Int(arguments.first ?? "20") ?? 20
        ThreadScenarios.startParkedThreads(count: 20)
        let dumps = Atomic<Int>(0)
        let dumper = Thread {
            let directory = pp_thread_list_open()
            var tids = [Int32](repeating: 0, count: 256)
            tids.removeSubrange(Int(pp_thread_list_read(directory, &tids, 256))...)
            close(directory)
            var out = [pp_thread_stack](repeating: pp_thread_stack(), count: tids.count)
            while !stopDumping.load(ordering: .relaxed) {
                _ = pp_thread_dump(&tids, Int32(tids.count), &out, 8, 1_000_000_000)
                dumps.add(1, ordering: .relaxed)
            }
        }
        dumper.start()
        while dumps.load(ordering: .relaxed) == 0 { usleep(1000) }
        var finished = 0
        var failed = 0
        var hung = 0
        for _ in 0..<forks {
            let status = ctest_fork_and_dump(3000)
            if status == 0 { finished += 1 } else if status == -1 { hung += 1 } else { failed += 1 }
        }
        stopDumping.store(true, ordering: .relaxed)
        print("finished \(finished) failed \(failed) hung \(hung) dumps \(dumps.load(ordering: .relaxed))")
    }
}

extension AuditScenarios {
    /// `unwind-foreign-segv-handler`: fault recovery is set up (a thread dump prepares the walker),
    /// then the program installs a SIGSEGV handler of its own that treats every fault as a crash
    /// (exit 42), then a walk meets a frame pointer into unreadable memory. The walk must not fault
    /// into that handler. Prints what the walk returned.
    static func foreignSegvHandler(_: [String]) throws {
        _ = try Profile.lookup("goroutine")!.write(to: ProfileBuffer(), debug: 1)
        var crash = sigaction()
        crash.__sigaction_handler.sa_handler = { _ in _exit(42) }
        sigaction(SIGSEGV, &crash, nil)
        sigaction(SIGBUS, &crash, nil)
        let page = mmap(nil, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        var regs = pp_regs()
        regs.fp = UInt(bitPattern: page)
        var pcs = [UInt](repeating: 0, count: 8)
        var flags: UInt32 = 0
        let count = pp_unwind(&regs, UInt32(PP_UNWIND_FAULTS_UNBLOCKED), &pcs, 8, &flags)
        print("survived count \(count) incomplete \(flags & UInt32(PP_STACK_INCOMPLETE) != 0)")
    }
}
