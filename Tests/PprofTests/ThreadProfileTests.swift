import CPprof
import Foundation
import Testing

@testable import Pprof

/// A decoded profile's samples as (function names leaf first, value, labels).
func decodedStacks(_ profile: ProfileData) -> [(names: [String], value: Int64, labels: [ProfileData.Label])] {
    let functions = Dictionary(uniqueKeysWithValues: profile.functions.map { ($0.id, $0.name) })
    let locations = Dictionary(uniqueKeysWithValues: profile.locations.map { ($0.id, $0) })
    return profile.samples.map { sample in
        let names = sample.locationIDs.flatMap { id in
            (locations[id]?.lines ?? []).map { functions[$0.functionID] ?? "?" }
        }
        return (names, sample.values.first ?? 0, sample.labels)
    }
}

/// Whether `names` holds each of `ordered` (by substring), in that order, leaf to root.
func containsInOrder(_ names: [String], _ ordered: [String]) -> Bool {
    var index = names.startIndex
    for wanted in ordered {
        guard let found = names[index...].firstIndex(where: { $0.contains(wanted) }) else { return false }
        index = found + 1
    }
    return true
}

/// `go tool pprof -traces` of a profile; nil when Go is not installed (CI installs it).
func goToolTraces(_ path: String) throws -> String? {
    guard CPUTestSupport.goAvailable else { return nil }
    return try CPUTestSupport.go(["tool", "pprof", "-traces", path])
}

func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("pprof-\(getpid())-\(name)").path
}

@Suite struct GoroutineProfileTests {
    @Test func parkedThreadsShowTheirSwiftCallersNamesAndExactCounts() throws {
        let paths = ["g0.pb.gz", "g1.txt", "g2.txt"].map(temporaryPath)
        defer { paths.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let result = try ChildProcess.run("thread-dump-parked", ["67"] + paths)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("done"))

        let profile = try ProfileData(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: paths[0]))))
        #expect(profile.sampleTypes.map(\.description) == ["goroutine/count"])
        let stacks = decodedStacks(profile)
        let total = stacks.map(\.value).reduce(0, +)
        #expect(result.stdout.contains("count \(total)") || total >= 202)
        // Every parked thread shows its wait, the Swift function that parked it and that
        // function's caller: complete through glibc's and libdispatch's waits.
        let kinds = [
            ["pthread_cond_wait", "parkInConditionWait", "runConditionWorker", "startParkedThreads"],
            ["parkOnSemaphore", "runSemaphoreWorker", "startParkedThreads"],
            ["Thread.sleep", "parkInSleep", "runSleepWorker", "startParkedThreads"],
        ]
        for kind in kinds {
            let matching = stacks.filter { containsInOrder($0.names, kind) }
            #expect(matching.map(\.value).reduce(0, +) == 67, "\(kind)")
        }
        #expect(!stacks.contains { $0.names.contains("pprof.threadBlocksSignal") })

        let text = try String(contentsOfFile: paths[1], encoding: .utf8)
        #expect(text.hasPrefix("goroutine profile: total \(total)\n"))
        #expect(text.contains("\n67 @ 0x"))

        let dump = try String(contentsOfFile: paths[2], encoding: .utf8)
        for index in 0..<67 {
            #expect(dump.contains("\"cond-\(index)\" [sleeping, cond wait]:\n"))
            #expect(dump.contains("\"sema-\(index)\" [sleeping, semaphore wait]:\n"))
            #expect(dump.contains("\"sleep-\(index)\" [sleeping, sleep]:\n"))
        }
        #expect(dump.components(separatedBy: "\nthread ").count == total)
        #expect(dump.hasPrefix("thread "))
        // The writing thread is doing the profiler's work, and says so.
        #expect(dump.contains("[running] {\"pprof_internal\":\"true\"}:\npp_thread_dump\n"))

        if let traces = try goToolTraces(paths[0]) {
            #expect(traces.contains("Type: goroutine"))
            #expect(traces.contains("parkInConditionWait"))
            #expect(traces.contains("parkOnSemaphore"))
        }
    }

    @Test func threadsCreatedAndExitingDuringDumpsNeverCrashOrHang() throws {
        let result = try ChildProcess.run("thread-dump-churn", ["30"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("dumps 30 threads created "), "\(result.stdout)")
    }

    @Test func aThreadBlockingTheSignalIsListedAsUnsampled() throws {
        let paths = ["b0.pb.gz", "b2.txt"].map(temporaryPath)
        defer { paths.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let result = try ChildProcess.run("thread-dump-blocker", paths)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("again ok"))
        let stacks = decodedStacks(
            try ProfileData(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: paths[0]))))
        )
        #expect(stacks.filter { $0.names == ["pprof.threadBlocksSignal"] }.map(\.value).reduce(0, +) == 1)
        let dump = try String(contentsOfFile: paths[1], encoding: .utf8)
        #expect(
            dump.contains(
                "\"blocker\" [sleeping, blocks the dump signal]:\n\tstack unavailable: the thread blocks the dump signal\n"
            )
        )
    }

    @Test func aTaskRunningOnAThreadShowsItsAsyncCallers() throws {
        let path = temporaryPath("a0.pb.gz")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try ChildProcess.run("thread-dump-async", [path])
        #expect(result.status == 0, "\(result.stderr)")
        let stacks = decodedStacks(try ProfileData(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: path)))))
        // The task runs on a Swift concurrency pool thread (which blocks every signal but SIGPROF).
        #expect(stacks.contains { containsInOrder($0.names, ["burnInInner", "burnInMiddle", "burnInOuter"]) })
        #expect(!stacks.contains { $0.names.contains("pprof.threadBlocksSignal") })
    }

    @Test func theCallingThreadIsSampledInProcess() throws {
        let profile = try #require(Profile.lookup("goroutine"))
        #expect(profile.count >= 1)
        let buffer = ProfileBuffer()
        try profile.write(to: buffer, debug: 1)
        #expect(buffer.text.hasPrefix("goroutine profile: total "))
        #expect(buffer.text.contains("theCallingThreadIsSampledInProcess"))
    }
}

@Suite struct SignalSharingTests {
    /// Thread dumps and a CPU profiler share SIGPROF (the only signal the Swift concurrency pool's
    /// threads accept): queued dump requests reach the dump, everything else the profiler.
    @Test func sigprofIsSharedBetweenDumpsAndTheCPUProfiler() throws {
        let result = try ChildProcess.run("sigprof-sharing")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("claimed true second -1 timer 5 dump true"), "\(result.stdout)")
    }
}

@Suite struct ThreadCreateProfileTests {
    @Test func showsTheSwiftCallSiteThatStartedEachThread() throws {
        let paths = ["t0.pb.gz", "t1.txt"].map(temporaryPath)
        defer { paths.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let result = try ChildProcess.run("threadcreate", paths)
        #expect(result.status == 0, "\(result.stderr)")
        let profile = try ProfileData(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: paths[0]))))
        #expect(profile.sampleTypes.map(\.description) == ["threadcreate/count"])
        let stacks = decodedStacks(profile)
        let foundation = stacks.filter { containsInOrder($0.names, ["spawnFoundationThreads", "threadCreate"]) }
        let raw = stacks.filter { $0.names.first?.contains("spawnRawThreads") == true }
        #expect(foundation.map(\.value).reduce(0, +) == 5)
        #expect(raw.map(\.value).reduce(0, +) == 3)
        let text = try String(contentsOfFile: paths[1], encoding: .utf8)
        #expect(text.hasPrefix("threadcreate profile: total "))
        #expect(text.contains("\n3 @ 0x"))
        if let traces = try goToolTraces(paths[0]) {
            #expect(traces.contains("Type: threadcreate"))
            #expect(traces.contains("spawnRawThreads"))
        }
    }

    @Test func withoutTheHookItSaysSo() throws {
        // The test process does not link PprofHooks.
        let profile = try #require(Profile.lookup("threadcreate"))
        #expect(profile.count == 0)
        #expect(throws: PprofError.self) { try profile.write(to: ProfileBuffer(), debug: 0) }
        do {
            try profile.write(to: ProfileBuffer(), debug: 0)
        } catch {
            #expect("\(error)".contains("PprofHooks"))
        }
    }
}
