import Foundation
import Testing

@testable import Pprof

/// Wall-clock profiles of workloads with measured ground truth, run in child processes
/// (`pprof-testhelper wall-*`), checked on the decoded profiles and with `go tool pprof`.
@Suite(.serialized)
struct WallProfileTests {
    struct Run {
        var profile: ProfileData
        var samples: [ProfileData.ResolvedSample]
        var json: [String: Any]
        var paths: [String]
    }

    /// Runs the scenario with `outputs` new profile paths first; decodes the first.
    static func run(_ scenario: String, outputs: Int = 1, _ arguments: [String] = []) throws -> Run {
        let paths = (0..<outputs).map { CPUTestSupport.temporaryPath("\(scenario)-\($0).pb.gz") }
        let result = try ChildProcess.run(scenario, paths + arguments)
        guard result.status == 0, !result.crashed else {
            throw PprofError.unavailable("\(scenario) failed (\(result.status)): \(result.stderr)")
        }
        let line = result.stdout.split(separator: "\n").last.map(String.init) ?? "{}"
        let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
        let profile = try ProfileData(decoding: [UInt8](Data(contentsOf: URL(fileURLWithPath: paths[0]))))
        return Run(profile: profile, samples: profile.resolvedSamples(), json: json, paths: paths)
    }

    static func remove(_ run: Run) {
        for path in run.paths { try? FileManager.default.removeItem(atPath: path) }
    }

    /// The handler waits on a lock ~60 %, sleeps ~30 % and burns CPU ~10 % of its time (as the
    /// child measured): the route's samples show those shares within ±5 points, the lock waits
    /// with the handler's Swift callers above `pthread_mutex_lock`.
    @Test func requestHandlerSharesUnderItsRoute() throws {
        let run = try Self.run("wall-request", ["8", "200"])
        defer { Self.remove(run) }
        #expect(run.profile.sampleTypes.map(\.type) == ["samples", "wall"])
        #expect(run.profile.sampleTypes.map(\.unit) == ["count", "nanoseconds"])
        func measured(_ key: String) -> Double { Double(run.json[key] as! Int) }
        // Ground truth from the handler's clock. "running" also holds the glue between the phases
        // and the time the thread, woken from the lock or the sleep, waited for a CPU (its
        // schedstat run delay); the lock hand-off is a semaphore wait.
        let total = measured("totalNanos")
        let lockRunDelay = measured("lockRunDelayNanos")
        let sleepRunDelay = measured("sleepRunDelayNanos")
        let lock = measured("lockNanos") - lockRunDelay
        let sleep = measured("sleepNanos") - sleepRunDelay
        let running = total - lock - sleep - measured("handoffNanos")
        var byState: [String: Double] = [:]
        var routeTotal = 0.0
        var lockWithCallers = 0.0
        for sample in run.samples where sample.label("route") == "/checkout" {
            let wall = Double(sample.values[1])
            routeTotal += wall
            byState[sample.label("state") ?? "none", default: 0] += wall
            let names = sample.functionNames
            if sample.label("state") == "waiting:lock",
                names.contains(where: { $0.contains("pthread_mutex_lock") }),
                names.contains(where: { $0.contains("wallLockStep") }),
                names.contains(where: { $0.contains("handleCheckoutRequests") })
            {
                lockWithCallers += wall
            }
        }
        #expect(routeTotal > 0)
        // The workload is the 60/30/10 the issue asks for (before the run-queue correction).
        #expect(abs(measured("lockNanos") / total - 0.6) < 0.05 && abs(measured("sleepNanos") / total - 0.3) < 0.05)
        for (state, truth) in [("waiting:lock", lock), ("waiting:sleep", sleep), ("running", running)] {
            let share = (byState[state] ?? 0) / routeTotal
            print("wall \(state): profile \(share), measured \(truth / total)")
            #expect(abs(share - truth / total) <= 0.05, "\(state): profile \(share) vs measured \(truth / total)")
        }
        if abs((byState["waiting:sleep"] ?? 0) / routeTotal - sleep / total) > 0.05 {
            // What the sleep phase's samples looked like, for a kernel or sandbox that reports them differently.
            var sleepStacks: [String: Double] = [:]
            for sample in run.samples where sample.functionNames.contains(where: { $0.contains("wallSleepStep") }) {
                let leaf = sample.functionNames.prefix(3).joined(separator: " < ")
                sleepStacks["\(sample.label("state") ?? "none"): \(leaf)", default: 0] += Double(sample.values[1]) / 1e9
            }
            let kernel = (try? String(contentsOfFile: "/proc/version", encoding: .utf8)) ?? "?"
            print("sleep-phase samples (s) by state and leaf: \(sleepStacks); kernel: \(kernel)")
        }
        let unknown = run.samples.filter { $0.label("state") == "unknown" }.map { Double($0.values[1]) }.reduce(0, +)
        print("states \(byState.mapValues { $0 / routeTotal }); unlabelled unknown \(unknown / 1e9) s")
        print("run-queue delay after the lock \(lockRunDelay / total), after the sleep \(sleepRunDelay / total)")
        // The route's wall time is the handler thread's: ~8 s.
        #expect(abs(routeTotal - total) / total < 0.05, "\(routeTotal) vs \(total)")
        #expect(lockWithCallers / max(byState["waiting:lock"] ?? 1, 1) >= 0.95)
    }

    /// 1,000 parked threads and 2 busy ones at 100 Hz, at most 16 threads per period: the profile
    /// is taken, each busy thread's running time matches its lifetime, the parked threads show
    /// condition waits, at most 16 threads were asked per period, and the cost is in the comments.
    @Test func thousandIdleThreadsAndTwoBusy() throws {
        let run = try Self.run("wall-many-threads", ["1000", "5"])
        defer { Self.remove(run) }
        let busy = (run.json["busyTids"] as! [Int]).map(String.init)
        let lifetimes = (run.json["busyLifetimes"] as! [Int]).map(Double.init)
        let periods = run.json["periods"] as! Int
        let samples = run.json["samples"] as! Int
        #expect(run.json["threadsSeen"] as! Int >= 1002)
        // The sampler keeps (at least half) its rate: a period waits at most 10 ms for late answers.
        let expectedPeriods = Double(run.profile.durationNanos) / 1e9 * 100
        #expect(Double(periods) >= 0.5 * expectedPeriods, "periods \(periods) of \(expectedPeriods)")
        #expect(samples <= periods * 16)
        var busyRunning: [String: Double] = [:]
        var busyTotal = 0.0
        var condition = 0.0
        var total = 0.0
        for sample in run.samples {
            let wall = Double(sample.values[1])
            total += wall
            if let tid = sample.label("thread_id"), busy.contains(tid) {
                busyTotal += wall
                if sample.label("state") == "running" { busyRunning[tid, default: 0] += wall }
            }
            if sample.label("state") == "waiting:condition" { condition += wall }
        }
        // Each busy thread's wall time is its lifetime (±10 %: up to one listing interval at each end).
        let lifetime = lifetimes.reduce(0, +) / Double(max(lifetimes.count, 1))
        for tid in busy {
            let running = busyRunning[tid] ?? 0
            print("busy \(tid): running \(running / 1e9) s of a \(lifetime / 1e9) s life")
            #expect(abs(running - lifetime) / lifetime <= 0.10, "\(tid): \(running) vs \(lifetime)")
        }
        #expect(busyTotal > 0 && (busyRunning.values.reduce(0, +) / busyTotal) >= 0.98)
        // The parked threads: ~1,000 × the profile's duration of condition wait.
        let duration = Double(run.profile.durationNanos)
        #expect(condition / (1000 * duration) > 0.85, "condition wait \(condition / 1e9) s over \(duration / 1e9) s")
        #expect(total / 1e9 > 900 * duration / 1e9)
        let cost = run.profile.comments.first { $0.hasPrefix("cost: sampler thread") }
        #expect(cost != nil, "comments: \(run.profile.comments)")
        #expect(run.json["samplerCPUNanos"] as! Int > 0)
        print("1,000 + 2 threads: \(cost ?? "no cost line"); \(samples) samples in \(periods) periods")
    }

    /// Idle cooperative-pool (libdispatch) workers are left out by default and kept with
    /// `includeIdle`; a thread that blocks every signal is counted, not waited for.
    @Test func idlePoolThreadsAndSignalBlockers() throws {
        let run = try Self.run("wall-idle", outputs: 2)
        defer { Self.remove(run) }
        let withIdle = try ProfileData(decoding: [UInt8](Data(contentsOf: URL(fileURLWithPath: run.paths[1]))))
            .resolvedSamples()
        #expect(run.json["idleSamples0"] as! Int > 0)
        #expect(!run.samples.contains { $0.label("state")?.hasPrefix("idle:") == true })
        let idle = withIdle.filter { $0.label("state")?.hasPrefix("idle:") == true }
        #expect(idle.contains { $0.functionNames.contains { $0.contains("_dispatch_worker_thread") } })
        // Busy-free pool workers are idle, never "waiting" in the pool's semaphore.
        #expect(
            !run.samples.contains {
                $0.label("state") == "waiting:semaphore"
                    && $0.functionNames.first { $0.contains("_dispatch_") }
                        == "_dispatch_sema4_timedwait"
                    && $0.functionNames.contains { $0.contains("_dispatch_worker_thread") }
            }
        )
        // The blocker: one sample per period, about the profile's second of wall time, not waited for.
        let blocked = run.samples.filter { $0.functionNames == ["pprof.threadBlocksSignal"] }
        let blockedWall = blocked.map { Double($0.values[1]) }.reduce(0, +)
        #expect(blocked.allSatisfy { $0.label("state") == "unknown" })
        #expect(abs(blockedWall / Double(run.profile.durationNanos) - 1) < 0.1, "\(blockedWall)")
        let periods = run.json["periods0"] as! Int
        #expect(periods >= 90, "the sampler kept its rate: \(periods) periods in 1 s")
        // The labelled worker sleeping for the whole second.
        let sleepy = run.samples.filter { $0.label("route") == "/sleepy" }
        let sleepyWall = sleepy.map { Double($0.values[1]) }.reduce(0, +)
        let sleeping = sleepy.filter { $0.label("state") == "waiting:sleep" }.map { Double($0.values[1]) }
            .reduce(0, +)
        #expect(sleepyWall > 0 && sleeping / sleepyWall > 0.95)
    }

    /// `go tool pprof` reads the profile: its sample types, the state tag and the route.
    @Test(.enabled(if: CPUTestSupport.goAvailable)) func goToolPprofReadsIt() throws {
        let run = try Self.run("wall-request", ["2"])
        defer { Self.remove(run) }
        let raw = try CPUTestSupport.go(["tool", "pprof", "-raw", run.paths[0]])
        #expect(raw.contains("PeriodType: wall nanoseconds"), "\(raw.prefix(400))")
        #expect(raw.contains("samples/count wall/nanoseconds"))
        let tags = try CPUTestSupport.go(["tool", "pprof", "-tags", run.paths[0]])
        #expect(tags.contains("waiting:lock") && tags.contains("/checkout"), "\(tags)")
        let top = try CPUTestSupport.go([
            "tool", "pprof", "-top", "-tagfocus=state=waiting:lock", "-cum", run.paths[0],
        ])
        #expect(top.contains("wallLockStep"), "\(top)")
    }

    @Test func rejectsBadSettingsAndASecondProfile() throws {
        #expect(throws: PprofError.self) { try WallProfile.start(writingTo: ProfileBuffer(), rate: 0) }
        #expect(throws: PprofError.self) {
            try WallProfile.start(writingTo: ProfileBuffer(), options: WallProfile.Options(maxThreadsPerPeriod: 0))
        }
        let buffer = ProfileBuffer()
        try WallProfile.start(writingTo: buffer, rate: 200, options: WallProfile.Options(includeIdle: true))
        #expect(throws: PprofError.wallProfilingAlreadyInUse) { try WallProfile.start(writingTo: ProfileBuffer()) }
        #expect(WallProfile.isRunning)
        // The profiler's signal ends a usleep early: sleep to a deadline.
        let deadline = ContinuousClock.now + .milliseconds(100)
        while ContinuousClock.now < deadline { usleep(10_000) }
        let summary = try #require(try WallProfile.stop())
        #expect(!WallProfile.isRunning)
        #expect(try WallProfile.stop() == nil)
        #expect(summary.periods >= 5)
        let profile = try ProfileData(decoding: buffer.bytes)
        #expect(profile.periodType?.type == "wall")
        #expect(profile.samples.count > 0)
    }

    /// A CPU profile and a wall profile at once share the signal: both get their samples.
    @Test func runsAlongsideACPUProfile() throws {
        let cpu = ProfileBuffer()
        let wall = ProfileBuffer()
        try CPUProfile.start(writingTo: cpu, rate: 100)
        try WallProfile.start(writingTo: wall, rate: 100)
        let deadline = ContinuousClock.now + .milliseconds(500)
        var x: UInt64 = 1
        while ContinuousClock.now < deadline {
            for i in 0..<10_000 { x = x &* 6_364_136_223_846_793_005 &+ UInt64(i) }
        }
        #expect(x != 0)
        let wallSummary = try #require(try WallProfile.stop())
        let cpuSummary = try #require(try CPUProfile.stop())
        #expect(cpuSummary.samples >= 20, "\(cpuSummary)")
        #expect(wallSummary.samples >= 40, "\(wallSummary)")
        let running = try ProfileData(decoding: wall.bytes).resolvedSamples().filter {
            $0.label("state") == "running" && $0.functionNames.contains { $0.contains("runsAlongsideACPUProfile") }
        }
        let runningWall = running.map { $0.values[1] }.reduce(0, +)
        #expect(runningWall >= 400_000_000, "this thread ran ~0.5 s: \(runningWall) ns")
    }

    /// Idle recognition on stacks as the symbolizer names them (leaf first): pool threads waiting
    /// for work are idle; the same pools waiting inside work are not.
    /// A sample whose registers do not show the interrupted system call is still a wait when it
    /// was taken inside a blocking call's libc wrapper (found by address, as samples are).
    @Test func blockingCallWrappersAreRecognised() throws {
        for name in [
            "clock_nanosleep", "__GI___clock_nanosleep", "__libc_read", "__futex_abstimed_wait_common64", "epoll_wait",
        ] {
            #expect(ThreadProfiles.isBlockingCallWrapper(name), "\(name)")
        }
        for name in ["readdir", "pollster", "App.read()", "memcpy", "Swift.Task.sleep"] {
            #expect(!ThreadProfiles.isBlockingCallWrapper(name), "\(name)")
        }
        let process = dlopen(nil, RTLD_NOW)
        let sleep = try #require(dlsym(process, "clock_nanosleep"))
        let inSleep = UInt(bitPattern: sleep) + 8 + 1
        #expect(ThreadProfiles.leafIsBlockingCallWrapper([inSleep], symbolizer: .shared))
        #expect(
            WallState.classify(stack: [inSleep], syscall: nil, systemCall: .noneSeen, symbolizer: .shared)
                == .waiting("sleep")
        )
        // Just returned from the sleep (woken, waiting for a CPU): running, as the kernel sees it.
        #expect(
            WallState.classify(stack: [inSleep], syscall: nil, systemCall: .returned, symbolizer: .shared) == .running
        )
        let copy = try #require(dlsym(process, "memcpy"))
        #expect(!ThreadProfiles.leafIsBlockingCallWrapper([UInt(bitPattern: copy) + 1], symbolizer: .shared))
    }

    @Test func idlePoolStacksAreRecognised() {
        let dispatchIdle = [
            "__futex_abstimed_wait_common64", "__new_sem_wait_slow64.constprop.0", "call_real_sem", "sem_timedwait",
            "_dispatch_sema4_timedwait", "_dispatch_semaphore_wait_slow", "_dispatch_worker_thread", "thread_start",
        ]
        let nioIdle = [
            "epoll_wait", "closure #1 () -> Swift.Int32 in static NIOPosix.Epoll.epoll_wait(epfd: Swift.Int32)",
            "NIOPosix.syscall<A>(blocking: Swift.Bool)", "static NIOPosix.Epoll.epoll_wait(epfd: Swift.Int32)",
            "NIOPosix.Selector.whenReady0(strategy:)", "NIOPosix.Selector.whenReady(strategy:)",
            "NIOPosix.SelectableEventLoop._blockingWaitForWork(nextReadyDeadline:)",
            "closure #2 () throws -> () in NIOPosix.SelectableEventLoop.run() throws -> ()",
        ]
        let taskBlockedOnLock = [
            "__lll_lock_wait", "___pthread_mutex_lock", "App.Store.update()", "swift_job_run",
            "_dispatch_continuation_pop", "_dispatch_root_queue_drain", "_dispatch_worker_thread",
        ]
        let handlerSleeping = [
            "clock_nanosleep", "App.Handler.channelRead(context:data:)",
            "NIOCore.ChannelHandlerContext.invokeChannelRead",
            "NIOPosix.Selector.whenReady(strategy:)", "NIOPosix.SelectableEventLoop.run() throws -> ()",
        ]
        let plainThread = ["pthread_cond_wait", "Foundation.NSCondition.wait()", "App.worker()", "start_thread"]
        #expect(IdlePoolWait.matches(dispatchIdle))
        #expect(IdlePoolWait.matches(nioIdle))
        #expect(!IdlePoolWait.matches(taskBlockedOnLock))
        #expect(!IdlePoolWait.matches(handlerSleeping))
        #expect(!IdlePoolWait.matches(plainThread))
        #expect(WallState.waitKind("mutex lock") == "lock")
        #expect(WallState.waitKind("cond wait") == "condition")
        #expect(WallState.waitKind(nil) == "syscall")
        #expect(WallState.idle("io").label == "idle:io" && WallState.waiting("lock").label == "waiting:lock")
    }
}
