import CPprof
import Dispatch
import Foundation
import Pprof
import Synchronization

/// Labels on real profiles: a CPU profile of labelled work whose expected labels are known per
/// function, and a goroutine profile of threads parked under known labels.
extension LabelScenarios {
    // MARK: - CPU profile

    /// `labels-cpu <profile path> [rate=] [engine=] [seconds=]`: every `burn…` function below burns
    /// `seconds` of its own CPU time (default 0.3) under the labels its name documents; the two
    /// concurrent routes burn twice as long. Prints one JSON line.
    static func cpu(_ arguments: [String]) throws {
        var settings = try CPUScenarios.Settings(arguments)
        if !arguments.contains(where: { $0.hasPrefix("seconds=") }) { settings.seconds = 0.3 }
        let budget = Int64(settings.seconds * 1e9)
        let file = try CPUScenarios.createFile(settings.path)
        try CPUProfile.start(writingTo: file, rate: settings.rate, options: settings.options)
        let engine = CPUProfile.engine
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            await concurrentRoutes(budget: 2 * budget)
            await scopes(budget: budget)
            done.signal()
        }
        done.wait()
        _ = CPUScenarios.runThreads(2) { index in
            if index == 0 {
                ProfileLabels.setForCurrentThread(["worker": "w1"])
                burnThreadW1(budget)
                withProfileLabels(["route": "/on-thread"]) { burnThreadScoped(budget) }
                ProfileLabels.setForCurrentThread(ProfileLabels())
                burnThreadUnlabelled(budget)
            } else {
                ProfileLabels.setForCurrentThread(["worker": "w2"])
                burnThreadW2(budget)
            }
        }
        let summary = try CPUProfile.stop()
        try file.close()
        CPUScenarios.printJSON([
            "engine": engine?.rawValue ?? "",
            "samples": summary?.samples ?? -1,
            "taskLabelsReadable": Int(pp_labels_task_labels_readable()),
        ])
    }

    /// Two concurrent tasks, `route=/a` and `route=/b`, each burning in its own function across
    /// many `await`s that resume on whichever pool thread is free, and for half of the time on
    /// `hopExecutor`'s thread: so each surely runs on several threads, even on a loaded machine
    /// that might keep a task on one pool thread.
    static func concurrentRoutes(budget: Int64) async {
        async let a: Void = withProfileLabels(["route": "/a"]) {
            await burnRouteA(budget / 2)
            await withTaskExecutorPreference(hopExecutor) { await burnRouteA(budget / 2) }
        }
        async let b: Void = withProfileLabels(["route": "/b"]) {
            await withTaskExecutorPreference(hopExecutor) { await burnRouteB(budget / 2) }
            await burnRouteB(budget / 2)
        }
        _ = await (a, b)
    }

    static let hopExecutor = HopExecutor()

    /// Runs jobs on one serial queue, off Swift's cooperative pool.
    final class HopExecutor: TaskExecutor {
        private let queue = DispatchQueue(label: "labels-hop")

        func enqueue(_ job: consuming ExecutorJob) {
            let job = UnownedJob(job)
            queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
        }
    }

    struct Expected: Error {}

    /// Inheritance by child tasks, the outer labels after a scope returns or throws (async and
    /// sync), and nested scopes overriding a key, all inside `scope=outer`.
    static func scopes(budget: Int64) async {
        await withProfileLabels(["scope": "outer"]) {
            await withProfileLabels(["route": "/parent"]) {
                async let child: Void = burnAsyncLetChild(budget)
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await burnGroupChild(budget) }
                }
                let unstructured = Task { await burnUnstructuredChild(budget) }
                await child
                await unstructured.value
            }
            await burnAfterReturn(budget)
            do {
                try await withProfileLabels(["route": "/throwing"]) { () async throws(Expected) in
                    await burnBeforeThrow(budget)
                    throw Expected()
                }
            } catch {}
            await burnAfterThrow(budget)

            withProfileLabels(["route": "/sync"]) { burnSyncScope(budget) }
            burnAfterSyncReturn(budget)
            do {
                try withProfileLabels(["route": "/sync-throwing"]) { () throws(Expected) in
                    burnBeforeSyncThrow(budget)
                    throw Expected()
                }
            } catch {}
            burnAfterSyncThrow(budget)

            await withProfileLabels(["route": "/outer", "tenant": "t1"]) {
                await burnNestedBefore(budget)
                await withProfileLabels(["route": "/inner"]) { await burnNestedInner(budget) }
                await burnNestedAfter(budget)
                withProfileLabels(["route": "/inner-sync"]) { burnNestedInnerSync(budget) }
                await burnNestedAfterSync(budget)
            }
        }
    }

    // Each function burns in slices of ~0.5 ms, suspending between slices: mostly Task.yield, and
    // every eighth time a short sleep, so the task resumes on another thread now and then.
    @inline(__always)
    static func burnAcrossAwaits(_ budget: Int64, seed: UInt64) async {
        var spent: Int64 = 0
        var slice = 0
        while spent < budget {
            let start = threadCPUNanos()
            blackHole(CPUScenarios.mix(400_000, seed: seed))
            spent += threadCPUNanos() - start
            slice += 1
            if slice % 8 == 0 {
                try? await Task.sleep(nanoseconds: 200_000)
            } else {
                await Task.yield()
            }
        }
    }

    @inline(__always)
    static func burnOnThread(_ budget: Int64, seed: UInt64) {
        let end = threadCPUNanos() + budget
        while threadCPUNanos() < end { blackHole(CPUScenarios.mix(400_000, seed: seed)) }
    }

    @inline(never) static func burnRouteA(_ budget: Int64) async { await burnAcrossAwaits(budget, seed: 1) }
    @inline(never) static func burnRouteB(_ budget: Int64) async { await burnAcrossAwaits(budget, seed: 2) }
    @inline(never) static func burnAsyncLetChild(_ budget: Int64) async { await burnAcrossAwaits(budget, seed: 3) }
    @inline(never) static func burnGroupChild(_ budget: Int64) async { await burnAcrossAwaits(budget, seed: 4) }
    @inline(never) static func burnUnstructuredChild(_ budget: Int64) async {
        await burnAcrossAwaits(budget, seed: 5)
    }
    @inline(never) static func burnAfterReturn(_ budget: Int64) async { await burnAcrossAwaits(budget, seed: 6) }
    @inline(never) static func burnBeforeThrow(_ budget: Int64) async { await burnAcrossAwaits(budget, seed: 7) }
    @inline(never) static func burnAfterThrow(_ budget: Int64) async { await burnAcrossAwaits(budget, seed: 8) }
    @inline(never) static func burnNestedBefore(_ budget: Int64) async { await burnAcrossAwaits(budget, seed: 9) }
    @inline(never) static func burnNestedInner(_ budget: Int64) async { await burnAcrossAwaits(budget, seed: 10) }
    @inline(never) static func burnNestedAfter(_ budget: Int64) async { await burnAcrossAwaits(budget, seed: 11) }
    @inline(never) static func burnNestedAfterSync(_ budget: Int64) async {
        await burnAcrossAwaits(budget, seed: 12)
    }
    @inline(never) static func burnSyncScope(_ budget: Int64) { burnOnThread(budget, seed: 13) }
    @inline(never) static func burnAfterSyncReturn(_ budget: Int64) { burnOnThread(budget, seed: 14) }
    @inline(never) static func burnBeforeSyncThrow(_ budget: Int64) { burnOnThread(budget, seed: 15) }
    @inline(never) static func burnAfterSyncThrow(_ budget: Int64) { burnOnThread(budget, seed: 16) }
    @inline(never) static func burnNestedInnerSync(_ budget: Int64) { burnOnThread(budget, seed: 17) }
    @inline(never) static func burnThreadW1(_ budget: Int64) { burnOnThread(budget, seed: 18) }
    @inline(never) static func burnThreadW2(_ budget: Int64) { burnOnThread(budget, seed: 19) }
    @inline(never) static func burnThreadScoped(_ budget: Int64) { burnOnThread(budget, seed: 20) }
    @inline(never) static func burnThreadUnlabelled(_ budget: Int64) { burnOnThread(budget, seed: 21) }

    // MARK: - Goroutine profile

    /// `labels-goroutine <debug0 path> <debug1 path>`: three threads with their own labels, a
    /// thread with labels inside a sync scope, a task inside a scope and a task without labels,
    /// each parked in its own function while the goroutine profile is written.
    static func goroutine(_ arguments: [String]) throws {
        guard arguments.count == 2 else { throw ScenarioError.usage("labels-goroutine <debug0> <debug1>") }
        let parked = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let parkers = 6
        var threads: [Thread] = []
        for index in 0..<3 {
            threads.append(
                Thread {
                    ProfileLabels.setForCurrentThread(["worker": "parked-\(index)"])
                    parkWithThreadLabels(parked, release)
                }
            )
        }
        threads.append(
            Thread {
                ProfileLabels.setForCurrentThread(["worker": "scoped"])
                withProfileLabels(["route": "/sync"]) { parkInSyncScope(parked, release) }
            }
        )
        threads.forEach { $0.start() }
        Task.detached { withProfileLabels(["route": "/task"]) { parkInLabelledTask(parked, release) } }
        Task.detached { parkInUnlabelledTask(parked, release) }
        for _ in 0..<parkers { parked.wait() }
        usleep(100_000)  // from signalling `parked` to waiting on `release`
        let profile = Profile.lookup("goroutine")!
        for (debug, path) in zip([0, 1], arguments) {
            try writeProfile(profile, debug: debug, to: path)
        }
        for _ in 0..<parkers { release.signal() }
        print("done")
    }

    // One function per situation, so the profile tells them apart.
    @inline(never)
    static func parkWithThreadLabels(_ parked: DispatchSemaphore, _ release: DispatchSemaphore) {
        park(parked, release)
        blackHole(1)  // work after the wait: a call, not a tail call
    }

    @inline(never)
    static func parkInSyncScope(_ parked: DispatchSemaphore, _ release: DispatchSemaphore) {
        park(parked, release)
        blackHole(2)  // work after the wait: a call, not a tail call
    }

    @inline(never)
    static func parkInLabelledTask(_ parked: DispatchSemaphore, _ release: DispatchSemaphore) {
        park(parked, release)
        blackHole(3)  // work after the wait: a call, not a tail call
    }

    @inline(never)
    static func parkInUnlabelledTask(_ parked: DispatchSemaphore, _ release: DispatchSemaphore) {
        park(parked, release)
        blackHole(4)  // work after the wait: a call, not a tail call
    }

    @inline(never)
    static func park(_ parked: DispatchSemaphore, _ release: DispatchSemaphore) {
        parked.signal()
        release.wait()
    }
}
