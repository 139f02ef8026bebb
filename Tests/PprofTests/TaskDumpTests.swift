import Foundation
import Testing

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
            let names = line.split(separator: " ", maxSplits: 4).last.map { $0.split(separator: "|").map(String.init) }
            return containsInOrder(names ?? [], chain)
        }
        #expect(complete.count * 100 >= count * 99, "\(tasks.prefix(3))")
        // Job flags: kind Task (0), default priority (0x15), a future (bit 25), no parent.
        #expect(tasks.allSatisfy { $0.split(separator: " ")[2] == "2001500" })
        // Status: default priority, waiting on a dependency (0x4000); every other task cancelled (0x100).
        let status = tasks.compactMap { UInt32($0.split(separator: " ")[3], radix: 16) }
        #expect(status.filter { $0 & 0x40FF == 0x4015 }.count == count)
        #expect(status.filter { $0 & 0x100 != 0 }.count == count / 2)
        // 5,000 tasks finished before the dump: none is listed, so the count above is exact.
        // Ids are distinct.
        #expect(Set(tasks.map { $0.split(separator: " ")[1] }).count == count)
    }
}
