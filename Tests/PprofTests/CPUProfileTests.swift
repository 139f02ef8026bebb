import CPprof
import Foundation
import Synchronization
import Testing

@testable import Pprof

/// CPU profiles of workloads with known ground truth, run in child processes (`pprof-testhelper
/// cpu-*`) so that rusage and thread counts belong to the workload alone. Each test decodes the
/// written profile and checks it against what the child measured.
@Suite(.serialized)
struct CPUProfileTests {
    // MARK: - Accuracy against rusage

    @Test(.enabled(if: CPUTestSupport.perfEventAvailable), arguments: [100, 1000])
    func perfEventEngineMatchesRusage(rate: Int) throws {
        try checkAccuracy(engine: .perfEvent, rate: rate)
    }

    @Test(arguments: [100, 1000])
    func threadTimerEngineMatchesRusage(rate: Int) throws {
        try checkAccuracy(engine: .threadTimer, rate: rate)
    }

    @Test func processTimerEngineMatchesRusage() throws {
        try checkAccuracy(engine: .processTimer, rate: 100)
    }

    /// Two threads burn CPU for 5 s: the profile's CPU total is within ±5% of the process's
    /// rusage CPU time over the same interval; with perf_event at 1000 Hz, at least 900 samples
    /// per busy thread-CPU-second (the kernel tick here is 250 Hz).
    private func checkAccuracy(engine: CPUProfile.Engine, rate: Int) throws {
        let run = try CPUTestSupport.run(
            "cpu-accuracy",
            ["rate=\(rate)", "engine=\(engine.rawValue)", "seconds=5", "threads=2"]
        )
        #expect(run.json["engine"] as? String == engine.rawValue)
        #expect(run.profile.data.periodType == ProfileData.ValueType(type: "cpu", unit: "nanoseconds"))
        #expect(run.profile.data.period == 1_000_000_000 / Int64(rate))
        #expect(run.profile.data.sampleTypes.map(\.description) == ["samples/count", "cpu/nanoseconds"])
        #expect(run.profile.data.durationNanos > 4_000_000_000)
        #expect(run.profile.data.comments.contains { $0.contains("engine \(engine.rawValue)") })

        let sampled = Double(run.profile.samples.reduce(0) { $0 + $1.values[1] })
        let rusage = Double(run.json["processCPUNanos"] as! Int)
        print("\(engine) \(rate) Hz: sampled \(sampled / 1e9) s, rusage \(rusage / 1e9) s")
        #expect(abs(sampled - rusage) <= 0.05 * rusage, "sampled \(sampled) ns vs rusage \(rusage) ns")

        let busyThreads = Set((run.json["tids"] as! [Int]).map(String.init))
        let busySamples = run.profile.samples.filter { sample in
            sample.labels.contains { $0.key == "thread_id" && busyThreads.contains($0.string ?? "") }
        }
        #expect(busySamples.contains { run.profile.functionNames(of: $0).contains { $0.contains("burnUntil") } })
        if engine == .perfEvent && rate == 1000 {
            let samples = Double(busySamples.reduce(0) { $0 + $1.values[0] })
            let busySeconds = Double((run.json["threadCPUNanos"] as! [Int]).reduce(0, +)) / 1e9
            print("perf_event 1000 Hz: \(samples / busySeconds) samples per busy thread-CPU-second")
            #expect(samples / busySeconds >= 900)
        }
    }

    // MARK: - Windows

    /// `startNextWindow` cuts one run into back-to-back profiles: together they hold the CPU time
    /// that rusage measured (±5 %), each window starts where the previous one ended, and each shows
    /// the workload. Without a running profile it throws.
    @Test func nextWindowContinuesWithoutAGap() throws {
        let path = CPUTestSupport.temporaryPath("windows.pb.gz")
        let windows = 4
        let result = try ChildProcess.run("cpu-windows", [path, "seconds=4", "threads=2", "cycles=\(windows)"])
        #expect(result.status == 0 && !result.crashed, "\(result.stderr)")
        let line = result.stdout.split(separator: "\n").last.map(String.init) ?? "{}"
        let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
        var profiles: [IndexedProfile] = []
        for index in 1...windows {
            let file = "\(path).\(index)"
            defer { try? FileManager.default.removeItem(atPath: file) }
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
            profiles.append(IndexedProfile(try ProfileData(decoding: bytes)))
        }
        let sampled = Double(profiles.reduce(0) { total, profile in total + profile.data.total(at: 1) })
        let rusage = Double(json["processCPUNanos"] as? Int ?? 0)
        print("4 windows: sampled \(sampled / 1e9) s, rusage \(rusage / 1e9) s")
        #expect(abs(sampled - rusage) <= 0.05 * rusage, "sampled \(sampled) ns vs rusage \(rusage) ns")
        for (previous, next) in zip(profiles, profiles.dropFirst()) {
            let end = previous.data.timeNanos + previous.data.durationNanos
            #expect(abs(next.data.timeNanos - end) < 5_000_000, "gap of \(next.data.timeNanos - end) ns")
        }
        // Windows of 1 s each, give or take a late cut: the cutter writes each closed window itself.
        for profile in profiles {
            #expect(profile.data.durationNanos > 500_000_000, "\(profiles.map(\.data.durationNanos))")
            #expect(
                profile.data.samples.contains { profile.functionNames(of: $0).contains { $0.contains("burnUntil") } }
            )
        }
        #expect((json["notRunningError"] as? String ?? "").contains("no CPU profile is running"))
    }

    // MARK: - Shares

    @Test(.enabled(if: CPUTestSupport.perfEventAvailable))
    func perfEventSharesMatchCPUTime() throws {
        try checkShares(engine: .perfEvent, rate: 1000, seconds: 5, threads: 1, statisticalTolerance: false)
    }

    @Test func threadTimerSharesMatchCPUTime() throws {
        // At most one signal per kernel tick (HZ 250 here) while a thread runs, and far fewer on
        // a loaded machine (each then weighted by its overruns): two threads, and a tolerance of
        // four standard errors of the weighted sample where that exceeds 3 points.
        try checkShares(engine: .threadTimer, rate: 250, seconds: 6, threads: 2, statisticalTolerance: true)
    }

    /// Threads spend ~50/30/20 % of `seconds` of their CPU time in three functions (measured with
    /// their CPU-time clocks): each function's share of the sampled CPU is within ±3 points of
    /// its measured share, and ≥ 99% of those samples carry the chain up to the thread's entry
    /// function.
    private func checkShares(
        engine: CPUProfile.Engine,
        rate: Int,
        seconds: Int,
        threads: Int,
        statisticalTolerance: Bool
    ) throws {
        let run = try CPUTestSupport.run(
            "cpu-shares",
            ["rate=\(rate)", "engine=\(engine.rawValue)", "seconds=\(seconds)", "threads=\(threads)"]
        )
        let spent = (run.json["spentNanos"] as! [Int]).map(Double.init)
        let functions = ["shareFifty", "shareThirty", "shareTwenty"]
        var sampled = [0.0, 0.0, 0.0]
        var samplesInFunctions = 0.0
        var samplesWithEntry = 0.0
        var weightSquares = 0.0
        for sample in run.profile.samples {
            let names = run.profile.functionNames(of: sample)
            guard let index = functions.firstIndex(where: { function in names.contains { $0.contains(function) } })
            else { continue }
            sampled[index] += Double(sample.values[1])
            samplesInFunctions += Double(sample.values[0])
            // values[1] / count is the CPU each signal of this stack stood for.
            let perSignal = Double(sample.values[1]) / Double(max(sample.values[0], 1))
            weightSquares += perSignal * perSignal * Double(sample.values[0])
            if names.contains(where: { $0.contains("sharesWorkerEntry") }) {
                samplesWithEntry += Double(sample.values[0])
            }
        }
        let truthTotal = spent.reduce(0, +)
        let sampledTotal = sampled.reduce(0, +)
        #expect(sampledTotal > 0)
        // Kish's effective sample size of the weighted signals.
        let effectiveSamples = sampledTotal * sampledTotal / max(weightSquares, 1)
        for index in 0..<3 {
            let truth = spent[index] / truthTotal
            let share = sampled[index] / sampledTotal
            var tolerance = 0.03
            if statisticalTolerance {
                tolerance = max(tolerance, 4 * (truth * (1 - truth) / effectiveSamples).squareRoot())
            }
            print("\(engine) \(functions[index]): sampled \(share), measured \(truth), tolerance \(tolerance)")
            #expect(abs(share - truth) <= tolerance, "\(functions[index]): sampled \(share) vs measured \(truth)")
        }
        print("\(engine): \(samplesInFunctions) signals, effective sample size \(effectiveSamples)")
        #expect(samplesWithEntry / samplesInFunctions >= 0.99, "\(samplesWithEntry) of \(samplesInFunctions)")
    }

    // MARK: - Aliasing

    @Test(.enabled(if: CPUTestSupport.perfEventAvailable), arguments: [100, 1000])
    func perfEventDoesNotAlias(rate: Int) throws {
        try checkNoAliasing(engine: .perfEvent, rate: rate)
    }

    @Test(arguments: [100, 1000])
    func threadTimerDoesNotAlias(rate: Int) throws {
        try checkNoAliasing(engine: .threadTimer, rate: rate)
    }

    @Test(arguments: [100, 1000])
    func processTimerDoesNotAlias(rate: Int) throws {
        try checkNoAliasing(engine: .processTimer, rate: rate)
    }

    /// A thread alternates two functions for half a cycle of its CPU time each, with a cycle of one
    /// and of two sampling periods: each function gets its half of the sampled CPU. With fixed
    /// periods the samples locked onto the cycle at 100 Hz (perf_event 82/18, thread timer 97/3,
    /// process timer 100/0 at two periods), so every period is drawn at random around its mean.
    private func checkNoAliasing(engine: CPUProfile.Engine, rate: Int) throws {
        for alternation in [1, 2] {
            let run = try CPUTestSupport.run(
                "cpu-aliasing",
                [
                    "rate=\(rate)", "engine=\(engine.rawValue)", "seconds=\(rate == 100 ? 3 : 2)",
                    "alternation=\(alternation)",
                ]
            )
            #expect(run.json["engine"] as? String == engine.rawValue)
            #expect(run.json["processTimerArmed"] as? Bool == false)
            var sampled = [0.0, 0.0]
            var signals = 0.0
            var weightSquares = 0.0
            for sample in run.profile.samples {
                let names = run.profile.functionNames(of: sample)
                guard
                    let index = ["aliasFirst", "aliasSecond"].firstIndex(where: { function in
                        names.contains { $0.contains(function) }
                    })
                else { continue }
                sampled[index] += Double(sample.values[1])
                signals += Double(sample.values[0])
                let perSignal = Double(sample.values[1]) / Double(max(sample.values[0], 1))
                weightSquares += perSignal * perSignal * Double(sample.values[0])
            }
            let spent = (run.json["spentNanos"] as! [Int]).map(Double.init)
            let truth = spent[0] / (spent[0] + spent[1])
            let share = sampled[0] / max(sampled[0] + sampled[1], 1)
            // Four standard errors of the weighted share (Kish's effective sample size: the process
            // timer weighs each signal by the CPU since the previous one). The timer engines'
            // samples, taken on kernel ticks, spread more than that between runs (up to 17 points seen
            // here at 100 Hz): at least 20 points, which still fails the fixed periods (97/3, 100/0).
            let effectiveSamples = pow(sampled[0] + sampled[1], 2) / max(weightSquares, 1)
            var tolerance = max(0.05, 4 * (truth * (1 - truth) / max(effectiveSamples, 1)).squareRoot())
            if engine != .perfEvent { tolerance = max(tolerance, 0.20) }
            print(
                "\(engine) \(rate) Hz, cycle of \(alternation) periods: share \(share), measured \(truth), \(signals) signals, effective \(effectiveSamples)"
            )
            #expect(signals > 0)
            #expect(abs(share - truth) <= tolerance, "\(engine) \(rate) Hz cycle \(alternation): \(share) vs \(truth)")
        }
    }

    // MARK: - Fairness between threads

    @Test(.enabled(if: CPUTestSupport.perfEventAvailable))
    func perfEventEqualThreadsGetEqualSamples() throws {
        try checkEqualThreads(engine: .perfEvent)
    }

    @Test func threadTimerEqualThreadsGetEqualSamples() throws {
        try checkEqualThreads(engine: .threadTimer)
    }

    /// Two threads burn exactly 2 s of CPU each: their samples (told apart by the thread_id
    /// labels, counted in sampling periods: each timer signal stands for 1 + its overruns) are
    /// within ±10% of each other, and each thread's is within ±10% of the CPU it used.
    private func checkEqualThreads(engine: CPUProfile.Engine) throws {
        let run = try CPUTestSupport.run("cpu-equal-threads", ["rate=100", "engine=\(engine.rawValue)", "seconds=2"])
        let tids = (run.json["tids"] as! [Int]).map(String.init)
        let used = (run.json["threadCPUNanos"] as! [Int]).map(Double.init)
        #expect(tids.count == 2)
        var signals: [String: Int64] = [:]
        var nanos: [String: Int64] = [:]
        for sample in run.profile.samples {
            guard let tid = sample.labels.first(where: { $0.key == "thread_id" })?.string else { continue }
            signals[tid, default: 0] += sample.values[0]
            nanos[tid, default: 0] += sample.values[1]
        }
        let periods = tids.map { Double(nanos[$0] ?? 0) / Double(run.profile.data.period) }
        print("\(engine): sampling periods per thread \(periods), signals \(tids.map { signals[$0] ?? 0 })")
        #expect(abs(periods[0] - periods[1]) <= 0.10 * max(periods[0], periods[1]))
        for index in 0..<2 {
            let sampled = periods[index] * Double(run.profile.data.period)
            #expect(
                abs(sampled - used[index]) <= 0.10 * used[index],
                "thread \(index): \(sampled) vs \(used[index]) ns"
            )
        }
        // Every sample carries its thread's name as well.
        #expect(
            run.profile.samples.allSatisfy { sample in
                sample.labels.contains { $0.key == "thread_name" && $0.string?.isEmpty == false }
            }
        )
    }

    // MARK: - Threads that start while profiling

    /// 200 threads that each live for ~4 ms of CPU, announced as the pthread_create hook does:
    /// each is armed before it runs, so their CPU is in the profile (a 20 ms rescan alone sees
    /// fewer than half of them).
    @Test(.enabled(if: CPUTestSupport.perfEventAvailable))
    func shortLivedThreadsAreSampledFromTheirStart() throws {
        let run = try CPUTestSupport.run(
            "cpu-short-threads",
            ["rate=1000", "engine=perfEvent", "threads=200", "announce=1"]
        )
        #expect(run.json["threadsSampled"] as! Int >= 200)
        let burned = Double((run.json["entryCPUNanos"] as! [Int]).reduce(0, +))
        let sampled = Double(
            run.profile.samples.filter {
                run.profile.functionNames(of: $0).contains { $0.contains("shortThreadEntry") }
            }
            .reduce(0) { $0 + $1.values[1] }
        )
        print("short threads: sampled \(sampled / 1e9) s of \(burned / 1e9) s")
        #expect(sampled >= 0.85 * burned && sampled <= 1.15 * burned)
    }

    // MARK: - Signals

    /// With SIGPROF owned by another handler, the per-thread engines sample on SIGURG (which
    /// libdispatch's workers leave unblocked), and with SIGURG taken too on a real-time signal;
    /// the foreign handlers stay in place; the SIGPROF-only process timer refuses clearly; and a
    /// thread that blocks the signal is reported as not sampled, with no samples of its own.
    @Test(arguments: ["PROF", "PROF,URG"])
    func foreignSignalHandlersAreNeverStolen(foreign: String) throws {
        let engines: [CPUProfile.Engine] =
            CPUTestSupport.perfEventAvailable ? [.perfEvent, .threadTimer] : [.threadTimer]
        for engine in engines {
            let run = try CPUTestSupport.run(
                "cpu-foreign-signals",
                ["engine=\(engine.rawValue)", "seconds=1", "foreign=\(foreign)"]
            )
            let signal = Int32(run.json["signal"] as! Int)
            if foreign == "PROF" {
                #expect(signal == SIGURG)
                #expect(run.profile.data.comments.contains { $0.contains("signal SIGURG") })
            } else {
                #expect(signal > 32)
                #expect(run.profile.data.comments.contains { $0.contains("signal real-time signal \(signal)") })
            }
            #expect(run.json["foreignUntouched"] as? Bool == true)
            #expect((run.json["processTimerError"] as! String).contains("SIGPROF has another handler"))
            #expect(
                run.profile.samples.contains { run.profile.functionNames(of: $0).contains { $0.contains("burnUntil") } }
            )
            let blocker = String(run.json["blockerTid"] as! Int)
            #expect(
                !run.profile.samples.contains { $0.labels.contains { $0.key == "thread_id" && $0.string == blocker } }
            )
            #expect(run.json["threadsNotSampled"] as! Int >= 1)
            #expect(run.profile.data.comments.contains { $0.contains("not sampled (they block") })
        }
    }

    // MARK: - Start/stop cycles

    @Test func thousandCyclesLeakNothing() throws {
        try checkCycles(engine: nil, cycles: 1000)
    }

    @Test func timerEngineCyclesLeakNoTimers() throws {
        try checkCycles(engine: .threadTimer, cycles: 300)
    }

    /// Start/stop cycles while another thread keeps creating and joining threads: the process
    /// ends with the fds, threads and POSIX timers it started with (and had timers while running).
    private func checkCycles(engine: CPUProfile.Engine?, cycles: Int) throws {
        var arguments = ["cycles=\(cycles)", "rate=1000"]
        if let engine { arguments.append("engine=\(engine.rawValue)") }
        let run = try CPUTestSupport.run("cpu-cycles", arguments, decode: false)
        let baseline = run.json["baseline"] as! [String: Int]
        let during = run.json["duringRun"] as! [String: Int]
        let final = run.json["final"] as! [String: Int]
        print("cycles \(engine?.rawValue ?? "auto"): \(run.json)")
        #expect(run.json["cycles"] as! Int == cycles)
        #expect(run.json["threadBatches"] as! Int > 10)
        #expect(final["fds"] == baseline["fds"])
        #expect(final["threads"] == baseline["threads"])
        #expect(final["timers"] == baseline["timers"])
        if engine == .threadTimer { #expect(during["timers"]! > baseline["timers"]!) }
    }

    // MARK: - Errors (in this process)

    @Test func invalidRatesAreRejected() {
        for rate in [0, 10_001, -5] {
            #expect {
                try CPUProfile.start(writingTo: ProfileBuffer(), rate: rate)
            } throws: { error in
                guard case .invalidArgument = error as? PprofError else { return false }
                return true
            }
        }
        #expect(!CPUProfile.isRunning)
    }

    @Test func lifecycleErrorsAndRecovery() throws {
        try CPUTestSupport.exclusively {
            #expect(try CPUProfile.stop() == nil)  // not running: a no-op, like Go

            let buffer = ProfileBuffer()
            try CPUProfile.start(writingTo: buffer, rate: 250)
            #expect(CPUProfile.isRunning)
            #expect(CPUProfile.engine != nil)
            #expect(throws: PprofError.cpuProfilingAlreadyInUse) {
                try CPUProfile.start(writingTo: ProfileBuffer())
            }
            CPUTestSupport.burn(milliseconds: 200)
            let summary = try #require(try CPUProfile.stop())
            #expect(!CPUProfile.isRunning)
            #expect(summary.samples > 0)
            let profile = IndexedProfile(try ProfileData(decoding: buffer.bytes))
            #expect(
                profile.samples.contains {
                    profile.functionNames(of: $0).contains { $0.contains("CPUTestSupport.burn") }
                }
            )

            // A failing sink: stop throws its error, and the profiler can start again.
            try CPUProfile.start(writingTo: FailingSink(), rate: 100)
            CPUTestSupport.burn(milliseconds: 50)
            #expect(throws: FailingSink.Failure.diskFull) { try CPUProfile.stop() }
            #expect(!CPUProfile.isRunning)
            let again = ProfileBuffer()
            try CPUProfile.start(writingTo: again)
            try CPUProfile.stop()
            #expect(try ProfileData(decoding: again.bytes).periodType?.type == "cpu")
        }
    }

    @Test func concurrentStartsAndStopsFromTasks() async {
        await CPUTestSupport.exclusively {
            let started = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<8 {
                    group.addTask { (try? CPUProfile.start(writingTo: ProfileBuffer())) != nil }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(started == 1)
            let stopped = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<8 {
                    group.addTask { ((try? CPUProfile.stop()) ?? nil) != nil }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(stopped == 1)
            #expect(!CPUProfile.isRunning)
        }
    }

    // MARK: - go tool pprof

    /// `go tool pprof -top` on the demo's CPU profile names the demo's hot Swift functions in
    /// the short form (`Module.Type.method(label:)`), whether pprof reads our symbols as written
    /// (`-symbolize=none`) or is left to its default (local symbolization of what is unnamed).
    @Test(.enabled(if: CPUTestSupport.goAvailable))
    func goToolPprofListsDemoHotFunctions() throws {
        let path = CPUTestSupport.temporaryPath("demo-cpu.pb.gz")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let demo = ChildProcess.helperURL.deletingLastPathComponent().appendingPathComponent("pprof-demo")
        let result = try ChildProcess.run("cpu", [path, "2"], executable: demo)
        #expect(result.status == 0, "\(result.stderr)")
        for symbolize in [["-symbolize=none"], []] {
            let top = try CPUTestSupport.go(["tool", "pprof"] + symbolize + ["-top", "-nodecount=40", path])
            print(top)
            #expect(top.contains("Type: cpu"))
            #expect(top.contains("pprof_demo.CPUDemo.countPrimes(below:)"), "\(symbolize)")
            #expect(top.contains("pprof_demo.CPUDemo.checksum(of:)"), "\(symbolize)")
            #expect(!top.contains("$s10pprof_demo"), "\(symbolize)")
            #expect(!top.contains("-> Swift."), "a full signature in \(symbolize)'s top")
        }
        // The full form stays in reach: each function's system name is its mangled linker name.
        let profile = try ProfileData(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        let countPrimes = try #require(
            profile.functions.first { $0.name.hasSuffix("pprof_demo.CPUDemo.countPrimes(below:)") }
        )
        #expect(countPrimes.systemName.hasPrefix("$s10pprof_demo"))
    }

    // MARK: - Stacks the full walker completes

    /// A thread copying large buffers spends most samples inside glibc's memcpy, which has no
    /// frame pointers; the Swift caller must still appear above it.
    @Test func memcpyShowsItsSwiftCaller() throws {
        let run = try CPUTestSupport.run("cpu-memcpy", ["rate=500", "seconds=2"])
        let fraction = CPUTestSupport.samplesShowing("copyLargeBuffers", in: run) { _, _, mapping in
            mapping.contains("libc.so")
        }
        print("memcpy: \(fraction.matching) of \(fraction.total) libc samples show copyLargeBuffers")
        #expect(fraction.total > 100)
        #expect(Double(fraction.matching) >= 0.95 * Double(fraction.total))
    }

    /// qsort (glibc, no frame pointers) calling a Swift comparator: samples in qsort and in the
    /// comparator show the Swift function that called qsort.
    @Test func qsortShowsItsSwiftCaller() throws {
        let run = try CPUTestSupport.run("cpu-qsort", ["rate=500", "seconds=2"])
        let fraction = CPUTestSupport.samplesShowing("sortWithQsort", in: run) { _, names, mapping in
            mapping.contains("libc.so") || names.contains { $0.contains("closure") }
        }
        print("qsort: \(fraction.matching) of \(fraction.total) samples show sortWithQsort")
        #expect(fraction.total > 100)
        #expect(Double(fraction.matching) >= 0.95 * Double(fraction.total))
    }

    /// `outer -> middle -> inner` async chain burning CPU in inner after awaits: samples in inner
    /// show middle and outer as callers.
    @Test func asyncCallersAppear() throws {
        let run = try CPUTestSupport.run("cpu-async", ["rate=500", "seconds=2"])
        var inner = 0
        var complete = 0
        for sample in run.profile.samples {
            let names = run.profile.functionNames(of: sample)
            guard names.contains(where: { $0.contains("asyncInner") }) else { continue }
            inner += Int(sample.values[0])
            if names.contains(where: { $0.contains("asyncMiddle") })
                && names.contains(where: { $0.contains("asyncOuter") })
            {
                complete += Int(sample.values[0])
            }
        }
        print("async: \(complete) of \(inner) samples in asyncInner show asyncMiddle and asyncOuter")
        #expect(inner > 100)
        #expect(Double(complete) >= 0.95 * Double(inner))
    }
}

struct FailingSink: ProfileSink {
    enum Failure: Error { case diskFull }
    func write(_ bytes: UnsafeRawBufferPointer) throws { throw Failure.diskFull }
}

enum CPUTestSupport {
    static var perfEventAvailable: Bool { pp_cpu_probe_engine(Int32(PP_CPU_ENGINE_PERF)) == 0 }

    static var goAvailable: Bool { (try? go(["version"]))?.hasPrefix("go version") == true }

    struct Run {
        var profile: IndexedProfile
        var json: [String: Any]
    }

    static func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-\(name)").path
    }

    /// Runs `pprof-testhelper <scenario> <profile path> <arguments>` and decodes what it wrote.
    static func run(_ scenario: String, _ arguments: [String], decode: Bool = true) throws -> Run {
        let path = temporaryPath("\(scenario).pb.gz")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try ChildProcess.run(scenario, [path] + arguments)
        guard result.status == 0, !result.crashed else {
            throw PprofError.unavailable("\(scenario) failed (\(result.status)): \(result.stderr)")
        }
        let line = result.stdout.split(separator: "\n").last.map(String.init) ?? "{}"
        let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
        guard decode else { return Run(profile: IndexedProfile(ProfileData()), json: json) }
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        return Run(profile: IndexedProfile(try ProfileData(decoding: bytes)), json: json)
    }

    /// Runs the `go` command and returns its combined output.
    static func go(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["go"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = try output.fileHandleForReading.readToEnd() ?? Data()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// Among the samples of the child's worker thread (`tid` in its JSON) whose leaf satisfies
    /// `leaf`, the sample counts of those that show `function` anywhere, and of all.
    static func samplesShowing(
        _ function: String,
        in run: Run,
        whereLeaf leaf: (_ location: ProfileData.Location, _ names: [String], _ mapping: String) -> Bool
    ) -> (matching: Int, total: Int) {
        let tid = String(run.json["tid"] as? Int ?? -1)
        let profile = run.profile
        var total = 0
        var matching = 0
        for sample in profile.data.samples
        where sample.labels.contains(where: { $0.key == "thread_id" && $0.string == tid }) {
            guard let leafID = sample.locationIDs.first, let location = profile.locations[leafID] else { continue }
            let mapping = profile.mappings[location.mappingID]?.filename ?? ""
            guard leaf(location, profile.functionNames(of: location), mapping) else { continue }
            total += Int(sample.values[0])
            if profile.functionNames(of: sample).contains(where: { $0.contains(function) }) {
                matching += Int(sample.values[0])
            }
        }
        return (matching, total)
    }

    /// Burns CPU on the calling thread in a function the profile can name.
    @inline(never)
    static func burn(milliseconds: Int) {
        var x: UInt64 = 5
        let end = DispatchTime.now().uptimeNanoseconds + UInt64(milliseconds) * 1_000_000
        while DispatchTime.now().uptimeNanoseconds < end {
            for i in 0..<10_000 { x = x &* 6_364_136_223_846_793_005 &+ UInt64(i) }
        }
        if x == 42 { print(x) }
    }

    /// Serializes the tests that start a CPU profile in this process (one profile per process).
    private static let busy = Atomic<Bool>(false)

    private static func tryEnter() -> Bool {
        busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    }

    static func exclusively<T>(_ body: () throws -> T) rethrows -> T {
        while !tryEnter() { usleep(1000) }
        defer { busy.store(false, ordering: .releasing) }
        return try body()
    }

    static func exclusively<T>(_ body: () async throws -> T) async rethrows -> T {
        while !tryEnter() { try? await Task.sleep(nanoseconds: 1_000_000) }
        defer { busy.store(false, ordering: .releasing) }
        return try await body()
    }
}

/// A decoded profile with its locations, functions and mappings indexed by id.
struct IndexedProfile {
    let data: ProfileData
    let locations: [UInt64: ProfileData.Location]
    let functions: [UInt64: ProfileData.Function]
    let mappings: [UInt64: ProfileData.Mapping]

    init(_ data: ProfileData) {
        self.data = data
        locations = Dictionary(data.locations.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        functions = Dictionary(data.functions.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        mappings = Dictionary(data.mappings.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    var samples: [ProfileData.Sample] { data.samples }

    /// Every function name of a sample's stack, leaf first (inlined frames included).
    func functionNames(of sample: ProfileData.Sample) -> [String] {
        sample.locationIDs.flatMap { id in locations[id].map { functionNames(of: $0) } ?? [] }
    }

    func functionNames(of location: ProfileData.Location) -> [String] {
        location.lines.compactMap { functions[$0.functionID]?.name }
    }
}
