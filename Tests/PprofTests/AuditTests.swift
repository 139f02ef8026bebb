import CPprof
import Foundation
import Testing

@testable import Pprof

/// Interplays between mechanisms found by the robustness audit, each run in a child process.
@Suite(.serialized)
struct AuditTests {
    /// A thread dump's SIGPROF pending on a thread when its perf event overflows makes the kernel
    /// drop the overflow's signal; the thread must not stay unsampled for the rest of the profile.
    @Test(.enabled(if: CPUTestSupport.perfEventAvailable))
    func perfEventThreadIsStillSampledAfterADumpSignalDisplacedItsOverflow() throws {
        let run = try CPUTestSupport.run("cpu-perf-after-dump", ["engine=perfEvent", "rate=1000", "seconds=0.3"])
        #expect(run.json["engine"] as? String == "perfEvent")
        let tid = String(run.json["tid"] as? Int ?? -1)
        var afterDump: Int64 = 0
        var beforeDump: Int64 = 0
        for sample in run.profile.data.samples
        where sample.labels.contains(where: { $0.key == "thread_id" && $0.string == tid }) {
            let names = run.profile.functionNames(of: sample)
            if names.contains(where: { $0.contains("burnAfterDump") }) { afterDump += sample.values[0] }
            if names.contains(where: { $0.contains("perfAfterDump") }) { beforeDump += sample.values[0] }
        }
        // 300 ms of CPU at 1000 Hz: about 300 samples; none at all if the event stayed disabled.
        #expect(beforeDump > 0, "the worker was never sampled")
        #expect(afterDump >= 30, "samples after the dump: \(afterDump)")
    }

    /// A child forked while another thread dumps inherits the dump lock held by a thread that does
    /// not exist in it; its own dumps must still work, not hang.
    @Test func dumpsWorkInAChildForkedDuringADump() throws {
        let result = try ChildProcess.run("thread-dump-fork", ["20"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("finished 20 failed 0 hung 0"), "\(result.stdout)")
    }

    /// A SIGSEGV handler the program installs after the walker set up fault recovery takes every
    /// fault for a crash; a walk that meets unreadable memory must not fault into it.
    @Test func walksDoNotFaultIntoALaterForeignSegvHandler() throws {
        let result = try ChildProcess.run("unwind-foreign-segv-handler")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("survived count 0 incomplete true"), "\(result.stdout)")
    }
}
