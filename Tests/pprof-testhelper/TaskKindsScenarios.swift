import Foundation
import Pprof
import Synchronization

/// `tasks-kinds <count> [<debug0> <debug1> <debug2>]`: `count` tasks suspended at each of five
/// kinds of await, each three distinct async functions deep (issue 14):
/// a `CheckedContinuation` never resumed, a long `Task.sleep`, a call into a busy actor,
/// `AsyncStream` iteration and a task group's `next()` (its one child waits on a continuation);
/// and `count` more awaiting the continuation tasks' values.
/// Prints one line per listed task, `task <id> <name> <wait> <parent id or -> <record kinds> f1|f2|…`,
/// then writes the goroutine profile at debug=0, 1 and 2 to the paths given.
enum TaskKindsScenarios {
    static let continuations = Mutex<[CheckedContinuation<Int, Never>]>([])
    static let streams = Mutex<[AsyncStream<Int>.Continuation]>([])
    static let arrived = Atomic<Int>(0)
    /// Bumped by each task just before its innermost await (actor callers: before the call).
    static func arrive() { _ = arrived.add(1, ordering: .relaxed) }

    // Each chain is three functions of its own, each doing something with the result so that none
    // is merged with another or inlined into its caller.

    @inline(never) static func continuationInner(_ value: Int) async -> Int {
        arrive()
        let resumed = await withCheckedContinuation { continuation in
            continuations.withLock { $0.append(continuation) }
        }
        return resumed &+ value &* 3
    }

    @inline(never) static func continuationMiddle(_ value: Int) async -> Int {
        await continuationInner(value &+ 1) &* 5 &+ 1
    }

    @inline(never) static func continuationOuter(_ value: Int) async -> Int {
        await continuationMiddle(value &* 2) &- 7
    }

    @inline(never) static func sleepInner(_ value: Int) async -> Int {
        arrive()
        try? await Task.sleep(for: .seconds(36_000))
        return value &* 11
    }

    @inline(never) static func sleepMiddle(_ value: Int) async -> Int {
        await sleepInner(value &+ 3) &* 13 &+ 2
    }

    @inline(never) static func sleepOuter(_ value: Int) async -> Int {
        await sleepMiddle(value &* 3) &- 9
    }

    /// An actor kept busy for the whole dump: `hold` blocks its executor's thread.
    actor Gate {
        var served = 0
        let release = DispatchSemaphore(value: 0)

        func hold() -> Int {
            release.wait()
            return served
        }

        @inline(never) func serve(_ value: Int) -> Int {
            served &+= value
            return served &* 2
        }
    }

    @inline(never) static func actorInner(_ gate: Gate, _ value: Int) async -> Int {
        arrive()
        return await gate.serve(value) &+ 17
    }

    @inline(never) static func actorMiddle(_ gate: Gate, _ value: Int) async -> Int {
        await actorInner(gate, value &+ 5) &* 19 &+ 3
    }

    @inline(never) static func actorOuter(_ gate: Gate, _ value: Int) async -> Int {
        await actorMiddle(gate, value &* 5) &- 11
    }

    @inline(never) static func streamInner(_ value: Int) async -> Int {
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        streams.withLock { $0.append(continuation) }
        arrive()
        var total = value
        for await element in stream { total &+= element }
        return total &* 23
    }

    @inline(never) static func streamMiddle(_ value: Int) async -> Int {
        await streamInner(value &+ 7) &* 29 &+ 4
    }

    @inline(never) static func streamOuter(_ value: Int) async -> Int {
        await streamMiddle(value &* 7) &- 13
    }

    @inline(never) static func groupChild(_ value: Int) async -> Int {
        let resumed = await withCheckedContinuation { continuation in
            continuations.withLock { $0.append(continuation) }
        }
        return resumed &* 31 &+ value
    }

    @inline(never) static func groupInner(_ value: Int) async -> Int {
        await withTaskGroup(of: Int.self) { group in
            group.addTask(name: "group-child-\(value)") { await groupChild(value) }
            arrive()
            var total = value
            while let result = await group.next() { total &+= result }
            return total &* 37
        }
    }

    @inline(never) static func groupMiddle(_ value: Int) async -> Int {
        await groupInner(value &+ 9) &* 41 &+ 5
    }

    @inline(never) static func groupOuter(_ value: Int) async -> Int {
        await groupMiddle(value &* 9) &- 15
    }

    /// Awaits another task's value (a `TaskDependencyStatusRecord` waiting on a task).
    @inline(never) static func awaitTask(_ task: Task<Void, Never>, _ value: Int) async -> Int {
        arrive()
        await task.value
        return value &* 43
    }

    static func run(_ arguments: [String]) throws {
        let count = Int(arguments[0])!
        TaskRegistry.prepare()
        let gate = Gate()
        let holder = Task.detached(name: "gate-holder") { await gate.hold() }
        // The holder is on the actor before anyone calls it.
        usleep(100_000)
        var tasks: [Task<Void, Never>] = []
        for index in 0..<count {
            tasks.append(
                Task.detached(name: "continuation-\(index)") { print("never \(await continuationOuter(index))") }
            )
            tasks.append(Task.detached(name: "sleep-\(index)") { print("never \(await sleepOuter(index))") })
            tasks.append(Task.detached(name: "actor-\(index)") { print("never \(await actorOuter(gate, index))") })
            tasks.append(Task.detached(name: "stream-\(index)") { print("never \(await streamOuter(index))") })
            tasks.append(Task.detached(name: "group-\(index)") { print("never \(await groupOuter(index))") })
        }
        // And as many awaiting the continuation tasks' values.
        for index in 0..<count {
            let awaited = tasks[5 * index]
            tasks.append(Task.detached(name: "awaiter-\(index)") { print("never \(await awaitTask(awaited, index))") })
        }
        // Every task reached its await, every group child parked.
        while arrived.load(ordering: .relaxed) < 6 * count || continuations.withLock({ $0.count }) < 2 * count {
            usleep(1000)
        }
        // The last ones finish suspending just after they announce it.
        usleep(200_000)
        guard let live = TaskRegistry.liveTasks() else {
            print("unavailable \(TaskRegistry.unavailableReason ?? "?")")
            return
        }
        let ids = Dictionary(live.map { ($0.address, $0.id) }, uniquingKeysWith: { first, _ in first })
        print("live \(live.count) dropped \(TaskRegistry.dropped)")
        for task in live where !task.isRunning && task.consistent {
            let names = TaskRegistry.functionNames(of: task)
            let parent = task.parent.map { ids[$0].map(String.init) ?? "?" } ?? "-"
            let kinds = task.recordKinds.map(String.init).joined(separator: ",")
            print(
                "task \(task.id) \(task.name ?? "-") \(TaskRegistry.waitKind(of: task)) \(parent) "
                    + "\(kinds.isEmpty ? "-" : kinds) \(names.joined(separator: "|"))"
            )
        }
        let profile = Profile.lookup("goroutine")!
        for (debug, path) in zip([0, 1, 2], arguments.dropFirst()) {
            let start = ContinuousClock.now
            try writeProfile(profile, debug: debug, to: path)
            print("debug=\(debug) written in \(ContinuousClock.now - start)")
        }
        // The registry alone, a second time (symbols cached).
        let start = ContinuousClock.now
        let again = TaskRegistry.liveTasks()?.count ?? 0
        print("listed \(again) tasks in \(ContinuousClock.now - start)")
        _ = (holder, tasks)
        print("done")
    }
}
