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

    @Test func goroutineProfileCountsSuspendedTasksBesideTheThreads() throws {
        let count = 100
        let paths = ["t0.pb.gz", "t2.txt"].map(temporaryPath)
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

        let text = try String(contentsOfFile: paths[1], encoding: .utf8)
        let blocks = text.components(separatedBy: "\ntask 0x").dropFirst()
        #expect(blocks.count == count)
        #expect(blocks.filter { $0.contains("[suspended, cancelled]:") }.count == count / 2)
        #expect(blocks.filter { $0.contains(" \"worker-7\" [suspended") }.count == 1)
        #expect(blocks.allSatisfy { block in containsInOrder(block.split(separator: "\n").map(String.init), chain) })

        if let traces = try goToolTraces(paths[0]) {
            #expect(traces.contains("taskLevelThree"))
        }
    }

    @Test func dumpsWhileTasksAreCreatedAndFinishAllTheTimeNeitherCrashNorHang() throws {
        let result = try ChildProcess.run("tasks-churn", ["200"])
        #expect(result.status == 0 && !result.crashed, "\(result.stderr)")
        #expect(result.stdout.contains("done"))
        // Tasks really churned during the dumps (hundreds of thousands on two cores).
        let figures = result.stdout.split(separator: " ")
        let churned = figures.firstIndex(of: "churned").flatMap { Int(figures[$0 + 1]) } ?? 0
        #expect(churned > 50_000, "\(result.stdout)")
    }
}
