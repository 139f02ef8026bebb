import CPprof
import Foundation
import Pprof
import Synchronization

/// Processes for the task tests (issue 14).
enum TaskScenarios {
    /// Continuations kept forever: the tasks stay suspended and nothing reports a leak.
    static let parked = Mutex<[CheckedContinuation<Int, Never>]>([])

    static let finished = Atomic<Int>(0)
    static let spinning = Atomic<Bool>(false)

    @inline(never) static func taskSpin() async -> Int {
        spinning.store(true, ordering: .relaxed)
        var turns = 0
        while spinning.load(ordering: .relaxed) { turns &+= 1 }
        return turns
    }

    @inline(never) static func taskLevelThree(_ value: Int) async -> Int {
        let resumed = await withCheckedContinuation { continuation in
            parked.withLock { $0.append(continuation) }
        }
        return resumed &+ value &* 3
    }

    @inline(never) static func taskLevelTwo(_ value: Int) async -> Int {
        let three = await taskLevelThree(value &+ 1)
        return three &* 7 &+ 2
    }

    @inline(never) static func taskLevelOne(_ value: Int) async -> Int {
        let two = await taskLevelTwo(value &* 2)
        return two &- 5
    }

    /// `tasks-suspended <count> [<debug0 path> <debug2 path> [<longest path>]]`: `count` tasks suspended three async functions deep on a
    /// continuation never resumed; prints one line per live task: `task <id> <job flags> <status flags> <name or -> f1|f2|…`.
    static func suspended(_ arguments: [String]) throws {
        let count = Int(arguments[0])!
        TaskRegistry.prepare()
        // Tasks that finished before the dump must not be listed (their entries are stale).
        for _ in 0..<5000 { Task.detached { _ = finished.add(1, ordering: .relaxed) } }
        while finished.load(ordering: .relaxed) < 5000 { usleep(1000) }
        // The counter is bumped before a task finishes: let the last ones complete and be freed.
        usleep(50_000)
        // Finished tasks whose handles keep their memory: complete, so not listed either.
        let held = (0..<100).map { index in Task.detached { await costLeaf(index) } }
        precondition(awaitAll(held) == 100)
        usleep(20_000)
        // The first half a second before the rest: their suspension bounds must show it.
        var suspended: [Task<Void, Never>] = []
        for index in 0..<count {
            if index == count / 2 {
                while parked.withLock({ $0.count }) < index { usleep(1000) }
                usleep(1_000_000)
            }
            suspended.append(Task.detached(name: "worker-\(index)") { print("never \(await taskLevelOne(index))") })
        }
        while parked.withLock({ $0.count }) < count { usleep(1000) }
        // The last continuation is stored just before its task finishes suspending.
        usleep(100_000)
        // One task running on a thread throughout the dump.
        let spinner = Task.detached { print("spun \(await taskSpin())") }
        while !spinning.load(ordering: .relaxed) { usleep(1000) }
        // Every other task cancelled: cancellation does not resume a checked continuation.
        for (index, task) in suspended.enumerated() where index % 2 == 0 { task.cancel() }
        print("layout \(TaskRegistry.layoutVersion.map(String.init) ?? "none")")
        guard let tasks = TaskRegistry.liveTasks() else {
            print("unavailable \(TaskRegistry.unavailableReason ?? "?")")
            return
        }
        print("live \(tasks.count) dropped \(TaskRegistry.dropped)")
        for task in tasks {
            let names = TaskRegistry.functionNames(of: task)
            let flags = "\(String(task.jobFlags, radix: 16)) \(String(task.statusFlags, radix: 16))"
            let name = task.name ?? "-"
            print("task \(task.id) \(flags) \(name) \(names.joined(separator: "|"))")
        }
        // The goroutine profile with the tasks: debug=0 and debug=2 to the paths given.
        let profile = Profile.lookup("goroutine")!
        for (debug, path) in zip([0, 2], arguments.dropFirst()) {
            try writeProfile(profile, debug: debug, to: path)
        }
        // The tasks suspended longest, to a third path.
        if arguments.count > 3 {
            let longest = ProfileBuffer()
            try TaskDump.writeLongestSuspended(5, to: longest)
            try Data(longest.bytes).write(to: URL(fileURLWithPath: arguments[3]))
        }
        spinning.store(false, ordering: .relaxed)
        _ = spinner
        _ = held
        print("done")
    }

    /// Waits for every one of `tasks` (whose values are positive); returns how many finished.
    static func awaitAll(_ tasks: [Task<Int, Never>]) -> Int {
        let done = DispatchSemaphore(value: 0)
        let count = Atomic<Int>(0)
        Task.detached {
            for task in tasks { _ = count.add(await task.value > 0 ? 1 : 0, ordering: .relaxed) }
            done.signal()
        }
        done.wait()
        return count.load(ordering: .relaxed)
    }

    static let churning = Atomic<Bool>(true)
    static let churned = Atomic<Int>(0)
    static let created = Atomic<Int>(0)

    @inline(never) static func churnLeaf(_ value: Int) async -> Int {
        await Task.yield()
        return value &* 5
    }

    /// malloc's bytes in use (mallinfo2), 0 when unknown.
    static func heapInUse() -> Int {
        var info = pp_malloc_info()
        return pp_heap_malloc_info(&info) != 0 ? Int(info.uordblks) : 0
    }

    /// Two creator threads start tasks at `rate` a second in all (paced by the clock, at most 4,000
    /// in flight) until `churning` is cleared.
    @discardableResult static func startChurn(rate: Int) -> [Thread] {
        churning.store(true, ordering: .relaxed)
        return (0..<2).map { _ in
            let creator = Thread {
                let start = ContinuousClock.now
                var started = 0
                while churning.load(ordering: .relaxed) {
                    let elapsed = ContinuousClock.now - start
                    let due = Int(TaskScenarios.seconds(elapsed) * Double(rate / 2))
                    guard started < due, created.load(ordering: .relaxed) - churned.load(ordering: .relaxed) < 4000
                    else {
                        usleep(200)
                        continue
                    }
                    _ = created.add(64, ordering: .relaxed)
                    started += 64
                    for index in 0..<64 {
                        Task.detached { _ = churned.add(await churnLeaf(index) > -1 ? 1 : 0, ordering: .relaxed) }
                    }
                }
            }
            creator.start()
            return creator
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Stops the creators and waits (up to 10 s) until every task they started has finished.
    static func stopChurn() -> Bool {
        churning.store(false, ordering: .relaxed)
        usleep(20_000)
        var waited = 0
        while churned.load(ordering: .relaxed) < created.load(ordering: .relaxed), waited < 10_000 {
            usleep(1000)
            waited += 1
        }
        // A task's counter is bumped just before it finishes: let the last ones be freed.
        usleep(50_000)
        return churned.load(ordering: .relaxed) == created.load(ordering: .relaxed)
    }

    /// `tasks-churn <dumps> <rate>`: tasks created and finishing at `rate` a second while the
    /// tasks are listed at least `dumps` times back to back (every tenth time as a whole goroutine profile);
    /// prints the rate reached, the malloc bytes in use and the registry's live entries after a
    /// warm-up churn and after the dumps, once every task has finished.
    static func churn(_ arguments: [String]) throws {
        let dumps = Int(arguments[0])!
        let rate = Int(arguments[1])!
        TaskRegistry.prepare()
        let goroutine = Profile.lookup("goroutine")!
        // Warm-up: the pool's threads, the allocator's arenas, the symbol tables and a few dumps.
        startChurn(rate: rate)
        for _ in 0..<20 { try goroutine.write(to: ProfileBuffer(), debug: 0) }
        usleep(300_000)
        guard stopChurn() else {
            print("warm-up tasks did not finish")
            return
        }
        let before = (heap: heapInUse(), live: TaskRegistry.liveTasks()?.count ?? -1)
        let createdBefore = created.load(ordering: .relaxed)
        startChurn(rate: rate)
        var most = 0
        var slowest = Duration.zero
        let start = ContinuousClock.now
        // At least `dumps` dumps and a second of churn, so the rate is measured over enough tasks.
        var dump = 0
        while dump < dumps || ContinuousClock.now - start < .seconds(1) {
            defer { dump += 1 }
            let dumpStart = ContinuousClock.now
            defer { slowest = max(slowest, ContinuousClock.now - dumpStart) }
            if dump % 10 == 0 {
                try goroutine.write(to: ProfileBuffer(), debug: 0)
            } else {
                guard let tasks = TaskRegistry.liveTasks() else {
                    print("unavailable \(TaskRegistry.unavailableReason ?? "?")")
                    return
                }
                most = max(most, tasks.count)
                for task in tasks.prefix(16) { _ = TaskRegistry.functionNames(of: task) }
            }
        }
        let elapsed = seconds(ContinuousClock.now - start)
        let during = created.load(ordering: .relaxed) - createdBefore
        let finished = stopChurn()
        let after = (heap: heapInUse(), live: TaskRegistry.liveTasks()?.count ?? -1)
        print(
            "dumps \(dump) created \(during) rate \(Int(Double(during) / elapsed)) most \(most) "
                + "seconds \(Double(Int(elapsed * 100)) / 100) slowest \(Int(seconds(slowest) * 1000)) ms "
                + "finished \(finished)"
        )
        print("before heap \(before.heap) live \(before.live)")
        print(
            "after heap \(after.heap) live \(after.live) registered \(pp_tasks_registered()) dropped \(TaskRegistry.dropped)"
        )
        print("done")
    }

    @inline(never) static func costLeaf(_ value: Int) async -> Int { value &+ 1 }
}

/// Suspended tasks with profiler labels (issue 14).
enum TaskLabelScenarios {
    static let parked = Mutex<[CheckedContinuation<Int, Never>]>([])
    static let churnRunning = Atomic<Bool>(true)
    static let churnStarted = Atomic<Int>(0)
    static let churnFinished = Atomic<Int>(0)

    @inline(never) static func labelledWait(_ value: Int) async -> Int {
        let resumed = await withCheckedContinuation { continuation in
            parked.withLock { $0.append(continuation) }
        }
        return resumed &+ value &* 13
    }

    @inline(never) static func labelledRequest(_ value: Int) async -> Int {
        let waited = await labelledWait(value &+ 3)
        return waited &- 1
    }

    @inline(never) static func churnStep(_ value: Int) async -> Int {
        await Task.yield()
        return value &* 17 &+ 1
    }

    /// `tasks-labels <debug0 path> <debug2 path>`: 200 tasks each in a `withProfileLabels` scope
    /// (`request` r-0…r-3, 50 each, `route` /a), 40 in nested scopes (`tenant` t1 outside,
    /// `request` inner inside), a task group whose parent's scope (`job` group) its 30 children
    /// inherit, and 60 tasks without labels, all suspended on continuations. Then 300 dumps while
    /// tasks enter and leave label scopes all the time (sets die during dumps), then the profiles.
    static func run(_ arguments: [String]) throws {
        TaskRegistry.prepare()
        for index in 0..<200 {
            Task.detached {
                let value = await withProfileLabels(["request": "r-\(index % 4)", "route": "/a"]) {
                    await labelledRequest(index)
                }
                print("never \(value)")
            }
        }
        for index in 0..<40 {
            Task.detached {
                await withProfileLabels(["tenant": "t1"]) {
                    await withProfileLabels(["request": "inner"]) { print("never \(await labelledRequest(index))") }
                }
            }
        }
        Task.detached {
            await withProfileLabels(["job": "group"]) {
                await withTaskGroup(of: Int.self) { group in
                    for index in 0..<30 { group.addTask { await labelledRequest(index) } }
                    for await value in group { print("never \(value)") }
                }
            }
        }
        for index in 0..<60 { Task.detached { print("never \(await labelledRequest(index))") } }
        while parked.withLock({ $0.count }) < 330 { usleep(1000) }
        usleep(100_000)

        let creator = Thread {
            var index = 0
            while churnRunning.load(ordering: .relaxed) {
                guard churnStarted.load(ordering: .relaxed) - churnFinished.load(ordering: .relaxed) < 2000 else {
                    usleep(100)
                    continue
                }
                _ = churnStarted.add(1, ordering: .relaxed)
                let label = "c-\(index % 8)"
                let step = index
                index += 1
                Task.detached {
                    let value = await withProfileLabels(["churn": label]) { await churnStep(step) }
                    _ = churnFinished.add(value > 0 ? 1 : 0, ordering: .relaxed)
                }
            }
        }
        creator.start()
        let profile = Profile.lookup("goroutine")!
        var labelledChurn = 0
        for _ in 0..<300 {
            labelledChurn += TaskRegistry.liveTasks()?.filter { $0.labels.contains { $0.key == "churn" } }.count ?? 0
        }
        try profile.write(to: ProfileBuffer(), debug: 0)
        churnRunning.store(false, ordering: .relaxed)
        while churnFinished.load(ordering: .relaxed) < churnStarted.load(ordering: .relaxed) { usleep(1000) }
        print("churned \(churnFinished.load(ordering: .relaxed)) labelled-in-dumps \(labelledChurn)")
        for (debug, path) in zip([0, 2], arguments) { try writeProfile(profile, debug: debug, to: path) }
        print("done")
    }
}
