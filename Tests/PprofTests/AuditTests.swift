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

    /// Every mechanism at once in one process: CPU profiling at 1000 Hz, heap sampling at rate 1,
    /// block and mutex profiles at rate 1, thread dumps back to back, label scopes, thread churn
    /// and profiles written all the while. Nothing crashes or hangs, every profile decodes, and the
    /// CPU profile still accounts for the labelled workers' CPU time.
    @Test func everythingAtOnceNeitherCrashesNorHangs() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("audit-stress-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try ChildProcess.run("audit-stress", [directory.path, "seconds=8"])
        #expect(result.status == 0 && !result.crashed, "\(result.status) \(result.stderr)")
        let line = result.stdout.split(separator: "\n").last.map(String.init) ?? "{}"
        let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
        for key in ["rawDumps", "dumps", "threadsCreated", "lockRounds", "taskRounds", "allocRounds", "profileWrites"] {
            #expect((json[key] as? Int ?? 0) > 0, "\(key): \(line)")
        }
        var profiles: [String: ProfileData] = [:]
        for name in ["cpu", "heap", "allocs", "block", "mutex", "threadcreate", "goroutine"] {
            let bytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent("\(name).pb.gz")))
            profiles[name] = try ProfileData(decoding: bytes)
            #expect(profiles[name]?.samples.isEmpty == false, "\(name) has no samples")
        }
        let cpu = try #require(profiles["cpu"])
        let cpuIndex = try #require(cpu.sampleTypes.firstIndex { $0.type == "cpu" })
        for worker in 0..<2 {
            let sampledNanos = cpu.samples
                .filter { $0.labels.contains { $0.key == "worker" && $0.string == "alloc-\(worker)" } }
                .map { $0.values[cpuIndex] }.reduce(0, +)
            let usedMillis = json["allocCPUMillis-\(worker)"] as? Int ?? 0
            // User-space samples of a thread that also spends time in the kernel (mmap, munmap).
            #expect(
                Double(sampledNanos) / 1e6 >= Double(usedMillis) * 0.4,
                "alloc-\(worker): \(sampledNanos) ns sampled, \(usedMillis) ms used"
            )
        }
    }
}
