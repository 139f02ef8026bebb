import Foundation
import Testing

@testable import Pprof

/// Live Swift tasks and their async call chains (issue 14), read in a child process whose
/// `swift_task_create` is interposed by PprofHooks.
@Suite struct TaskDumpTests {
    @Test func suspendedTasksShowTheirWholeChainOfAsyncCallers() throws {
        let count = 100
        let result = try ChildProcess.run("tasks-suspended", ["\(count)"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        if let unavailable = lines.first(where: { $0.hasPrefix("unavailable") }) {
            Issue.record("tasks unavailable on the toolchain's runtime: \(unavailable)")
            return
        }
        #expect(lines.contains("done"))
        // The suspended tasks and one that spins on a thread during the dump.
        #expect(lines.contains("live \(count + 1) dropped 0"))
        let all = lines.filter { $0.hasPrefix("task ") }
        let running = all.filter { UInt32($0.split(separator: " ")[3], radix: 16).map { $0 & 0x800 != 0 } ?? false }
        #expect(running.count == 1, "\(running)")
        let tasks = all.filter { !running.contains($0) }
        #expect(tasks.count == count)
        // Innermost first: the continuation await, then each async caller, then the task's closure.
        let chain = [
            "withCheckedContinuation", "TaskScenarios.taskLevelThree", "TaskScenarios.taskLevelTwo",
            "TaskScenarios.taskLevelOne", "TaskScenarios.suspended",
        ]
        let complete = tasks.filter { line in
            let names = line.split(separator: " ", maxSplits: 5).last.map { $0.split(separator: "|").map(String.init) }
            return containsInOrder(names ?? [], chain)
        }
        #expect(complete.count * 100 >= count * 99, "\(tasks.prefix(3))")
        // Job flags: kind Task (0), default priority (0x15), a future (bit 25), named (bit 30), no parent.
        #expect(tasks.allSatisfy { $0.split(separator: " ")[2] == "42001500" })
        // The SE-0469 names, each exactly once.
        #expect(Set(tasks.map { String($0.split(separator: " ")[4]) }) == Set((0..<count).map { "worker-\($0)" }))
        // Status: default priority, waiting on a dependency (0x4000); every other task cancelled (0x100).
        let status = tasks.compactMap { UInt32($0.split(separator: " ")[3], radix: 16) }
        #expect(status.filter { $0 & 0x40FF == 0x4015 }.count == count)
        #expect(status.filter { $0 & 0x100 != 0 }.count == count / 2)
        // 5,000 tasks finished before the dump: none is listed, so the count above is exact.
        // Ids are distinct.
        #expect(Set(tasks.map { $0.split(separator: " ")[1] }).count == count)
    }

    @Test func suspendedTasksCarryTheirProfilerLabelsAlsoInheritedOnesAndWhileSetsDie() throws {
        let paths = ["l0.pb.gz", "l2.txt"].map(temporaryPath)
        defer { paths.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let result = try ChildProcess.run("tasks-labels", paths)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("done"))
        // Label sets were read from tasks while others died all the time, without a crash.
        let churn = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("churned ") })
        let churnFields = churn.split(separator: " ")
        #expect((Int(churnFields[1]) ?? 0) > 1000, "\(churn)")
        #expect((Int(churnFields[3]) ?? 0) > 0, "no churning task was seen with its labels: \(churn)")

        let profile = try ProfileData(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: paths[0]))))
        let chain = [
            "withCheckedContinuation", "TaskLabelScenarios.labelledWait", "TaskLabelScenarios.labelledRequest",
        ]
        let waiting = decodedStacks(profile).filter { containsInOrder($0.names, chain) }
        func count(_ wanted: [String: String], wait: String = "continuation") -> Int64 {
            let userKeys: Set<String> = ["request", "route", "tenant", "job", "churn"]
            return waiting.filter { stack in
                let user = Dictionary(
                    stack.labels.filter { userKeys.contains($0.key) }.map { ($0.key, $0.string ?? "") },
                    uniquingKeysWith: { first, _ in first }
                )
                return user == wanted && stack.labels.contains { $0.key == "wait" && $0.string == wait }
            }.map(\.value).reduce(0, +)
        }
        for request in 0..<4 { #expect(count(["request": "r-\(request)", "route": "/a"]) == 50) }
        #expect(count(["tenant": "t1", "request": "inner"]) == 40)
        // Children of a task group read their labels through the link to their parent's.
        #expect(count(["job": "group"]) == 30)
        #expect(count([:]) == 60)
        // The group's parent waits in `next()` with its own labels.
        let parent = decodedStacks(profile).filter { stack in
            stack.labels.contains { $0.key == "job" && $0.string == "group" }
                && stack.labels.contains { $0.key == "wait" && $0.string == "group" }
        }
        #expect(parent.map(\.value) == [1])

        let text = try String(contentsOfFile: paths[1], encoding: .utf8)
        let blocks = taskBlocks(of: text).dropFirst()
        #expect(
            blocks.filter {
                $0.contains("[suspended, waiting on continuation] {\"request\":\"r-1\", \"route\":\"/a\"}:\n")
            }.count == 50
        )
        #expect(blocks.filter { $0.contains("] {\"job\":\"group\"}:\n") }.count == 31)
    }

    @Test func goroutineProfileCountsSuspendedTasksBesideTheThreads() throws {
        let count = 100
        let paths = ["t0.pb.gz", "t2.txt", "longest.txt"].map(temporaryPath)
        defer { paths.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let result = try ChildProcess.run("tasks-suspended", ["\(count)"] + paths)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("done"))

        let profile = try ProfileData(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: paths[0]))))
        let stacks = decodedStacks(profile)
        func state(_ labels: [ProfileData.Label]) -> String? { labels.first { $0.key == "task" }?.string }
        let chain = [
            "withCheckedContinuation", "TaskScenarios.taskLevelThree", "TaskScenarios.taskLevelTwo",
            "TaskScenarios.taskLevelOne", "TaskScenarios.suspended",
        ]
        // Counts exact: half cancelled; the spinning task is not listed as a task (it runs).
        let suspended = stacks.filter { state($0.labels) == "suspended" && containsInOrder($0.names, chain) }
        let cancelled = stacks.filter {
            state($0.labels) == "suspended, cancelled" && containsInOrder($0.names, chain)
        }
        #expect(suspended.map(\.value).reduce(0, +) == Int64(count / 2))
        #expect(cancelled.map(\.value).reduce(0, +) == Int64(count / 2))
        #expect(stacks.filter { state($0.labels) != nil }.map(\.value).reduce(0, +) == Int64(count))
        // Each task's name is a label: every stack of the tasks is its own sample.
        let named = stacks.filter {
            $0.labels.contains { $0.key == "task name" && $0.string?.hasPrefix("worker-") == true }
        }
        #expect(named.count == count)
        // The threads are still there.
        #expect(stacks.contains { state($0.labels) == nil })
        // The task spinning on a thread shows once: as that thread's stack, joined to its async
        // caller (the closure in `suspended`), not again as a task.
        let spinning = stacks.filter { $0.names.contains { $0.contains("TaskScenarios.taskSpin") } }
        #expect(spinning.map(\.value) == [1], "\(spinning.map(\.names))")
        #expect(spinning.allSatisfy { state($0.labels) == nil })
        #expect(
            spinning.allSatisfy { containsInOrder($0.names, ["TaskScenarios.taskSpin", "TaskScenarios.suspended"]) }
        )

        let text = try String(contentsOfFile: paths[1], encoding: .utf8)
        let blocks = taskBlocks(of: text).dropFirst()
        #expect(blocks.count == count)
        #expect(blocks.filter { $0.contains("[suspended, waiting on continuation, cancelled]:") }.count == count / 2)
        #expect(blocks.filter { $0.contains(" \"worker-7\" [suspended") }.count == 1)
        #expect(blocks.allSatisfy { block in containsInOrder(block.split(separator: "\n").map(String.init), chain) })

        if let traces = try goToolTraces(paths[0]) {
            #expect(traces.contains("taskLevelThree"))
        }

        // Suspension bounds: the first half has waited a second longer than the second half.
        let raw = text.components(separatedBy: "\ntask 0x").dropFirst()
        func worker(_ block: String) -> Int? {
            block.firstRange(of: "\"worker-").flatMap { Int(block[$0.upperBound...].prefix { $0.isNumber }) }
        }
        func bound(_ block: String) -> Double? { suspensionBoundSeconds(block.prefix { $0 != "\n" }) }
        let early = raw.filter { (worker($0) ?? count) < count / 2 }.compactMap(bound)
        let late = raw.filter { (worker($0) ?? 0) >= count / 2 }.compactMap(bound)
        #expect(early.count == count / 2 && late.count == count / 2)
        #expect(early.allSatisfy { $0 >= 1.1 }, "\(early.min() ?? 0)")
        // The dump comes after the first listing, whose symbolization takes a while: no fixed ceiling.
        let earliestLate = (early.min() ?? 0) - 0.9
        #expect(late.allSatisfy { $0 >= 0.1 && $0 <= earliestLate }, "\(late.min() ?? 0)–\(late.max() ?? 0)")
        // tasks?longest=5: five of the first half, largest bound first.
        let longest = try String(contentsOfFile: paths[2], encoding: .utf8)
        #expect(longest.hasPrefix("\(count) tasks suspended; the 5 suspended longest"))
        let listed = longest.components(separatedBy: "\ntask 0x").dropFirst()
        #expect(listed.count == 5)
        #expect(listed.allSatisfy { (worker($0) ?? count) < count / 2 })
        let bounds = listed.compactMap(bound)
        #expect(bounds.count == 5 && bounds == bounds.sorted(by: >))
    }

    /// 1,000 back-to-back dumps (every tenth a whole goroutine profile) while tasks are created
    /// and finish at 100,000 a second: no crash, no dump that hangs, and afterwards no task kept
    /// alive: every task finished, none is listed, the registry holds no entry and malloc's bytes
    /// in use are back to their level after a warm-up churn.
    @Test func dumpsWhileTasksAreCreatedAndFinishAllTheTimeNeitherCrashNorHangNorKeepTasks() throws {
        let result = try ChildProcess.run("tasks-churn", ["1000", "100000"])
        #expect(result.status == 0 && !result.crashed, "\(result.stderr)")
        #expect(result.stdout.contains("done"), "\(result.stdout)")
        func figure(_ line: String, _ key: String) -> Int? {
            let words = line.split(separator: " ")
            return words.firstIndex(of: Substring(key)).flatMap { Int(words[$0 + 1]) }
        }
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let run = try #require(lines.first { $0.hasPrefix("dumps ") })
        let before = try #require(lines.first { $0.hasPrefix("before ") })
        let after = try #require(lines.first { $0.hasPrefix("after ") })
        // The rate was reached: the creators are paced to it and fall behind only when starved.
        #expect((figure(run, "rate") ?? 0) >= 80_000, "\(run)")
        #expect((figure(run, "dumps") ?? 0) >= 1000 && (figure(run, "created") ?? 0) >= 80_000, "\(run)")
        // No dump hung: each took well under two seconds, threads and symbolization included.
        #expect((figure(run, "slowest") ?? .max) < 2000, "\(run)")
        #expect(run.hasSuffix("finished true"), "\(run)")
        // Nothing kept: no live task, no registry entry left, the heap back within 4 MB of its
        // level (one task in a hundred kept alive would be over 10 MB here).
        #expect(figure(before, "live") == 0 && figure(after, "live") == 0, "\(before) / \(after)")
        #expect(figure(after, "registered") == 0 && figure(after, "dropped") == 0, "\(after)")
        let (heapBefore, heapAfter) = (figure(before, "heap") ?? 0, figure(after, "heap") ?? 0)
        #expect(heapBefore > 0 && heapAfter - heapBefore < 4 << 20, "\(before) / \(after)")
    }

    /// `async let` children, created inside the runtime, are found through the
    /// `swift_asyncLet_begin` hook: each with its chain and its parent, the parent waiting on it.
    @Test func asyncLetChildrenAppearWithTheirParents() throws {
        let count = 50
        let paths = ["let0.pb.gz", "let2.txt"].map(temporaryPath)
        defer { paths.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let result = try ChildProcess.run("tasks-async-let", ["\(count)"] + paths)
        #expect(result.status == 0 && !result.crashed, "\(result.stderr)")
        #expect(result.stdout.contains("done"))
        let stacks = decodedStacks(
            try ProfileData(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: paths[0]))))
        )
        let children = stacks.filter { labelValue("child of", $0.labels) == "async let" }
        #expect(children.map(\.value).reduce(0, +) == Int64(count))
        let chain = ["withCheckedContinuation", "letInner", "letMiddle", "letOuter", "letParent"]
        #expect(
            children.allSatisfy { containsInOrder($0.names, chain) && labelValue("wait", $0.labels) == "continuation" }
        )
        let parents = stacks.filter { labelValue("task name", $0.labels)?.hasPrefix("let-parent-") == true }
        #expect(parents.count == count)
        #expect(
            parents.allSatisfy { labelValue("wait", $0.labels) == "task" && containsInOrder($0.names, ["letParent"]) }
        )

        // debug=2: each child names its parent, each parent the child it waits on.
        let text = try String(contentsOfFile: paths[1], encoding: .utf8)
        let blocks = taskBlocks(of: text).dropFirst().map { "task 0x" + $0 }
        func header(_ block: String) -> Substring { block.prefix { $0 != ":" } }
        let parentBlocks = blocks.filter { $0.contains("\"let-parent-") }
        let childBlocks = blocks.filter { $0.contains("(async let)\n") }
        #expect(parentBlocks.count == count && childBlocks.count == count)
        for child in childBlocks {
            let childAddress = child.split(separator: " ")[1]
            let parentLine = try #require(child.split(separator: "\n").last { $0.hasPrefix("child of task ") })
            let parentAddress = parentLine.split(separator: " ")[3]
            let parent = parentBlocks.first { $0.split(separator: " ")[1] == parentAddress }
            #expect(parent.map { header($0).contains("waiting on task \(childAddress)") } == true, "\(parentLine)")
        }
    }

    /// 200 tasks at each of five kinds of await (1,000 in all), each three async functions deep,
    /// plus the task groups' 200 children: every one in the goroutine profile with its chain, its
    /// name, what it waits on, and (for the children) its parent.
    @Test func thousandTasksAtFiveKindsOfAwaitAppearWithTheirChains() throws {
        let count = 200
        let paths = ["kinds0.pb.gz", "kinds1.txt", "kinds2.txt"].map(temporaryPath)
        defer { paths.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let result = try ChildProcess.run("tasks-kinds", ["\(count)"] + paths)
        #expect(result.status == 0 && !result.crashed, "\(result.stderr)")
        if let unavailable = result.stdout.split(separator: "\n").first(where: { $0.hasPrefix("unavailable") }) {
            Issue.record("tasks unavailable on the toolchain's runtime: \(unavailable)")
            return
        }
        #expect(result.stdout.contains("done"))

        // Innermost first, as really symbolized: the actor call waits in its caller (the hop to the
        // actor happens before the synchronous method runs); sleep waits in the runtime's `_sleep`.
        struct Kind {
            var name: (Int) -> String
            var state: String
            var wait: String
            var chain: [String]
        }
        let module = "TaskKindsScenarios."
        let kinds = [
            Kind(
                name: { "continuation-\($0)" },
                state: "suspended",
                wait: "continuation",
                chain: ["withCheckedContinuation"] + ["Inner", "Middle", "Outer"].map { module + "continuation" + $0 }
            ),
            Kind(
                name: { "sleep-\($0)" },
                state: "suspended",
                wait: "sleep",
                chain: [
                    "Swift.Task<>._sleep<",
                    "Swift.Task<>.sleep<",
                ]
                    + ["Inner", "Middle", "Outer"].map { module + "sleep" + $0 }
            ),
            Kind(
                name: { "actor-\($0)" },
                state: "runnable",
                wait: "actor",
                chain: ["Inner", "Middle", "Outer"].map { module + "actor" + $0 }
            ),
            Kind(
                name: { "stream-\($0)" },
                state: "suspended",
                wait: "continuation",
                chain: ["withUnsafeContinuation", "AsyncStream._Storage.next", "AsyncStream.Iterator.next"]
                    + ["Inner", "Middle", "Outer"].map { module + "stream" + $0 }
            ),
            Kind(
                name: { "group-\($0)" },
                state: "suspended",
                wait: "group",
                chain: ["TaskGroup.next", "withTaskGroup"] + ["Inner", "Middle", "Outer"].map { module + "group" + $0 }
            ),
            // Each group's child: groupInner names it after the value it got, (index * 9) + 9.
            Kind(
                name: { "group-child-\($0 * 9 + 9)" },
                state: "suspended",
                wait: "continuation",
                chain: ["withCheckedContinuation", module + "groupChild", module + "groupInner"]
            ),
            // Awaiting the continuation tasks' values.
            Kind(
                name: { "awaiter-\($0)" },
                state: "suspended",
                wait: "task",
                chain: [module + "awaitTask", "closure"]
            ),
        ]

        let profile = try ProfileData(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: paths[0]))))
        let stacks = decodedStacks(profile)
        let tasks = stacks.filter { labelValue("task", $0.labels) != nil }
        // Exactly the scenario's tasks: the five kinds, the children, the awaiters, nothing else
        // (the actor's holder runs, so its thread shows it).
        #expect(tasks.map(\.value).reduce(0, +) == Int64(kinds.count * count))
        for kind in kinds {
            let names = Set((0..<count).map(kind.name))
            let mine = tasks.filter { labelValue("task name", $0.labels).map(names.contains) ?? false }
            let what = kind.name(0)
            // Counts exact: each task once, every name.
            #expect(mine.map(\.value).reduce(0, +) == Int64(count), "\(what)")
            #expect(Set(mine.compactMap { labelValue("task name", $0.labels) }) == names, "\(what)")
            #expect(mine.allSatisfy { labelValue("task", $0.labels) == kind.state }, "\(what)")
            #expect(mine.allSatisfy { labelValue("wait", $0.labels) == kind.wait }, "\(what)")
            let complete = mine.filter { containsInOrder($0.names, kind.chain) }
            #expect(complete.count * 100 >= count * 99, "\(what): \(mine.first.map(\.names) ?? [])")
            let children = mine.filter { labelValue("child of", $0.labels) == "task group" }
            #expect(children.count == (what.hasPrefix("group-child-") ? count : 0), "\(what)")
        }

        // debug=1: Go's grouped text, a group per task here (each has its own name label).
        let legacy = try String(contentsOfFile: paths[1], encoding: .utf8)
        for (wait, expected) in [
            ("continuation", 3 * count), ("sleep", count), ("actor", count), ("group", count), ("task", count),
        ] {
            let groups = legacy.components(separatedBy: "\n# labels: ").dropFirst().filter {
                $0.prefix { $0 != "\n" }.contains("\"wait\":\"\(wait)\"")
            }
            #expect(groups.count == expected, "\(wait)")
        }
        #expect(legacy.contains("TaskKindsScenarios.actorOuter"))

        // debug=2: a block per task with what it waits on; each child names its group's task.
        let text = try String(contentsOfFile: paths[2], encoding: .utf8)
        let blocks = taskBlocks(of: text).dropFirst().map { "task 0x" + $0 }
        #expect(blocks.count == kinds.count * count)
        func header(_ block: String) -> Substring { block.prefix { $0 != "\n" } }
        #expect(blocks.filter { header($0).contains("[suspended, waiting on continuation]:") }.count == 3 * count)
        #expect(blocks.filter { header($0).contains("[suspended, waiting on sleep]:") }.count == count)
        #expect(blocks.filter { header($0).contains("[runnable, waiting on actor 0x") }.count == count)
        #expect(blocks.filter { header($0).contains("[suspended, waiting on task group 0x") }.count == count)
        #expect(blocks.filter { header($0).contains(" \"sleep-7\" [suspended, waiting on sleep]:") }.count == 1)
        // "task 0x<address> id <id> "<name>" […]:": a child's "child of task 0x… id …" is its group's.
        var nameOfTask: [String: String] = [:]
        for block in blocks {
            let words = header(block).split(separator: " ")
            if words.count > 4 { nameOfTask[words[1...3].joined(separator: " ")] = String(words[4]) }
        }
        var parented = 0
        for block in blocks where header(block).contains("\"group-child-") {
            guard let line = block.split(separator: "\n").first(where: { $0.hasPrefix("child of task 0x") }),
                line.hasSuffix(" (task group)")
            else { continue }
            let words = line.split(separator: " ")
            let parent = words[3...5].joined(separator: " ")
            let child = header(block).split(separator: " ")[4].dropFirst("\"group-child-".count).dropLast()
            if let value = Int(child), nameOfTask[parent] == "\"group-\((value - 9) / 9)\"" { parented += 1 }
        }
        #expect(parented == count)
        // An awaiter names the task it awaits: continuation-i's.
        var awaited = 0
        for block in blocks where header(block).contains("\"awaiter-") {
            let words = header(block).split(separator: " ")
            guard let on = words.firstIndex(of: "on"), words.count > on + 3 else { continue }
            let target = words[(on + 2)...(on + 4)].joined(separator: " ").replacingOccurrences(of: "]:", with: "")
            let index = words[4].dropFirst("\"awaiter-".count).dropLast()
            if nameOfTask[target] == "\"continuation-\(index)\"" { awaited += 1 }
        }
        #expect(awaited == count)

        if let traces = try goToolTraces(paths[0]) {
            #expect(traces.contains("TaskKindsScenarios.groupOuter"))
        }
    }
}

/// The status-record reader on records built in memory: each dependency kind, what it does with
/// kinds it does not know, record locks, unreadable memory and a record that links to itself.
@Suite struct TaskDumpRecordReaderTests {
    /// Words of a record chain; record `i` starts at word `5 * i`.
    final class Records {
        let words: UnsafeMutablePointer<UInt>
        init(_ count: Int) {
            words = .allocate(capacity: 5 * count)
            words.initialize(repeating: 0, count: 5 * count)
        }
        deinit { words.deallocate() }
        func address(_ record: Int) -> UInt { UInt(bitPattern: words + 5 * record) }
        func set(_ record: Int, kind: UInt, parent: UInt, _ fields: [UInt] = []) {
            (words + 5 * record).pointee = kind
            (words + 5 * record + 1).pointee = parent
            for (index, field) in fields.enumerated() { (words + 5 * record + 2 + index).pointee = field }
        }
    }

    @Test func readsEachDependencyKindFromTheInnermostRecord() {
        let records = Records(3)
        for (kind, expected) in [
            (UInt(1), TaskDependency.task(0x1000)), (2, .continuation(0x1000)), (3, .group(0x1000)),
            (4, .executor(identity: 0x1000, implementation: 0x2000)), (9, .unrecognized(9)),
        ] {
            // dependency -> cancellation notification (3) -> name (6)
            records.set(0, kind: 0, parent: records.address(1), [0x1000, 0x2000, kind])
            records.set(1, kind: 3, parent: records.address(2))
            records.set(2, kind: 6, parent: 0)
            let (dependency, kinds) = TaskRegistry.statusRecords(from: records.address(0))
            #expect(dependency == expected)
            #expect(kinds == [0, 3, 6])
        }
    }

    @Test func aDependencyRecordCountsOnlyWhenInnermostButForARecordLock() {
        let records = Records(3)
        records.set(0, kind: 192, parent: records.address(1))
        records.set(1, kind: 0, parent: records.address(2), [0x1000, 0, 2])
        records.set(2, kind: 6, parent: 0)
        #expect(TaskRegistry.statusRecords(from: records.address(0)).0 == .continuation(0x1000))
        // Behind another kind of record it is not the task's current wait.
        records.set(0, kind: 3, parent: records.address(1))
        #expect(TaskRegistry.statusRecords(from: records.address(0)).0 == .none)
    }

    @Test func unreadableOrLoopingChainsEndWithoutFaulting() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let guardPage = try #require(mmap(nil, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(guardPage, page) }
        let unreadable = UInt(bitPattern: guardPage)
        #expect(TaskRegistry.statusRecords(from: unreadable) == (.none, []))
        let records = Records(2)
        // A readable record whose parent is unreadable: the walk stops there.
        records.set(0, kind: 6, parent: unreadable)
        #expect(TaskRegistry.statusRecords(from: records.address(0)).1 == [6])
        // A dependency record whose fields are cut off by unreadable memory reads as none.
        #expect(TaskRegistry.dependency(at: unreadable - 16) == .none)
        // Records that link to each other end after a bounded number.
        records.set(0, kind: 3, parent: records.address(1))
        records.set(1, kind: 3, parent: records.address(0))
        #expect(TaskRegistry.statusRecords(from: records.address(0)).1.count == 32)
        records.set(0, kind: 3, parent: records.address(0))
        #expect(TaskRegistry.statusRecords(from: records.address(0)).1 == [3])
    }
}

private func labelValue(_ key: String, _ labels: [ProfileData.Label]) -> String? {
    labels.first { $0.key == key }?.string
}

/// The debug=2 task blocks (after the threads) with their suspension bounds taken out, once each
/// header is checked to carry one (`[suspended ≤ 1.2s, …]`): the tests match the states.
func taskBlocks(of text: String) -> [String] {
    let blocks = text.components(separatedBy: "\ntask 0x")
    let bounded = try! Regex(#"\[(suspended|runnable) ≤ (\d+ms|\d+\.\ds|\d+m\d\ds|\d+h\d\dm|\d+d\d\dh)"#)
    for block in blocks.dropFirst() {
        let header = block.prefix { $0 != "\n" }
        #expect(header.contains(bounded), "no suspension bound in \(header)")
    }
    let bound = try! Regex(#" ≤ [0-9a-z.]+"#)
    return blocks.map { $0.replacing(bound, with: "") }
}

/// The seconds of a header's suspension bound (`[suspended ≤ 1.2s`, `≤ 850ms`, `≤ 3m12s`), nil without one.
func suspensionBoundSeconds(_ header: some StringProtocol) -> Double? {
    guard let mark = header.firstRange(of: "≤ ") else { return nil }
    let text = String(header[mark.upperBound...].prefix { $0 != "," && $0 != "]" })
    if text.hasSuffix("ms") { return Double(text.dropLast(2)).map { $0 / 1000 } }
    if let minutes = text.firstIndex(of: "m"), text.hasSuffix("s") {
        return (Double(text[..<minutes]) ?? 0) * 60 + (Double(text[text.index(after: minutes)...].dropLast()) ?? 0)
    }
    if text.hasSuffix("s") { return Double(text.dropLast()) }
    return nil
}
