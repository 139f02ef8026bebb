// The cost of profiler labels: entering and leaving `withProfileLabels` (sync and async), building
// a label set per request, and the handler-side read `pp_labels_current()`. Budget: ≤ 200 ns per
// enter/leave pair. Each figure is the best of several rounds in thread CPU time, next to the
// runtime's own floor (`TaskLocal.withValue` with an object) measured in the same run; the rows of
// one context take their rounds in turn, so a noisy spell on the machine hits them all alike.
import CPprof
import Dispatch
import Foundation
import Pprof

enum LabelBenchmarks {
    static let budgetNanoseconds = 200.0
    static let rounds = 9

    /// One line of the report. `floor` names the row with the runtime's own cost of the same kind
    /// of task-local scope (binding a class reference), which no label implementation avoids.
    struct Row: Sendable {
        var name: String
        var nanoseconds = Double.infinity
        var budgeted = false
        var floor: String? = nil
    }

    /// A row to measure: one round of `iterations` calls, returning the thread CPU time it took
    /// (`nil` if the round moved to another thread and must not count).
    struct Case {
        var row: Row
        var iterations: Int
        var round: (Int) -> UInt64?
    }

    struct AsyncCase {
        var row: Row
        var iterations: Int
        var round: (Int) async -> UInt64?
    }

    static let floorOutside = "floor: TaskLocal.withValue(object), outside tasks"
    static let floorSyncInTask = "floor: TaskLocal.withValue(object) sync, in a task"
    static let floorAsyncInTask = "floor: TaskLocal.withValue(object) async, in a task"
    static let floorNestedOutside = "floor: the same inside a labels scope, outside tasks"
    static let floorNestedAsyncInTask = "floor: the same inside a labels scope, async, in a task"

    static func run() throws {
        let iterations = 400_000
        let route: ProfileLabels = ["route": "/users"]
        let tenant: ProfileLabels = ["tenant": "a"]
        let object = Payload()

        // Outside any task: the runtime keeps task-locals in per-thread fallback storage.
        var rows = measure([
            Case(row: Row(name: floorOutside), iterations: iterations) { n in
                time(n) { Floor.$object.withValue(object) { sink() } }
            },
            Case(
                row: Row(name: "withProfileLabels sync, outside tasks", budgeted: true, floor: floorOutside),
                iterations: iterations
            ) { n in time(n) { withProfileLabels(route) { sink() } } },
            Case(row: Row(name: floorNestedOutside), iterations: iterations) { n in
                withProfileLabels(route) { time(n) { Floor.$object.withValue(object) { sink() } } }
            },
            Case(
                row: Row(
                    name: "  merging into outer labels (sync, outside tasks)",
                    budgeted: true,
                    floor: floorNestedOutside
                ),
                iterations: iterations
            ) { n in withProfileLabels(route) { time(n) { withProfileLabels(tenant) { sink() } } } },
            Case(
                row: Row(name: "  merging a new literal each time (sync, outside tasks)*", floor: floorNestedOutside),
                iterations: iterations
            ) { n in withProfileLabels(route) { time(n) { withProfileLabels(["tenant": "a"]) { sink() } } } },
            Case(row: Row(name: "build a one-label set from a literal"), iterations: iterations) { n in
                time(n) { blackHole &+= (["route": "/users"] as ProfileLabels).count }
            },
            Case(row: Row(name: "build a three-label set from a literal (unsorted)"), iterations: iterations) { n in
                time(n) { blackHole &+= (["z": "1", "a": "2", "m": "3"] as ProfileLabels).count }
            },
        ])

        rows += onTask { () async -> [Row] in
            var request = 0
            return await measureAsync([
                AsyncCase(row: Row(name: floorSyncInTask), iterations: iterations) { n in
                    time(n) { Floor.$object.withValue(object) { sink() } }
                },
                AsyncCase(row: Row(name: floorAsyncInTask), iterations: iterations) { n in
                    await timeAsync(n) { await Floor.$object.withValue(object) { await sinkAsync() } }
                },
                AsyncCase(
                    row: Row(name: "withProfileLabels sync, in a task", budgeted: true, floor: floorSyncInTask),
                    iterations: iterations
                ) { n in time(n) { withProfileLabels(route) { sink() } } },
                AsyncCase(
                    row: Row(name: "withProfileLabels async, in a task", budgeted: true, floor: floorAsyncInTask),
                    iterations: iterations
                ) { n in await timeAsync(n) { await withProfileLabels(route) { await sinkAsync() } } },
                AsyncCase(row: Row(name: floorNestedAsyncInTask), iterations: iterations) { n in
                    await withProfileLabels(route) {
                        await timeAsync(n) { await Floor.$object.withValue(object) { await sinkAsync() } }
                    }
                },
                AsyncCase(
                    row: Row(
                        name: "  merging into outer labels (async, in a task)",
                        budgeted: true,
                        floor: floorNestedAsyncInTask
                    ),
                    iterations: iterations
                ) { n in
                    await withProfileLabels(route) {
                        await timeAsync(n) { await withProfileLabels(tenant) { await sinkAsync() } }
                    }
                },
                AsyncCase(
                    row: Row(
                        name: "  merging a new literal each time (async, in a task)*",
                        floor: floorNestedAsyncInTask
                    ),
                    iterations: iterations
                ) { n in
                    await withProfileLabels(route) {
                        await timeAsync(n) { await withProfileLabels(["tenant": "a"]) { await sinkAsync() } }
                    }
                },
                AsyncCase(row: Row(name: "per request: build [\"request\": id] + async scope"), iterations: iterations)
                {
                    n in
                    await timeAsync(n) {
                        request &+= 1
                        await withProfileLabels(["request": String(request)]) { await sinkAsync() }
                    }
                },
                AsyncCase(row: Row(name: "pp_labels_current(), task with labels"), iterations: iterations * 10) { n in
                    withProfileLabels(route) { time(n) { blackHole &+= Int(truncatingIfNeeded: pp_labels_current()) } }
                },
                AsyncCase(row: Row(name: "pp_labels_current(), task without labels"), iterations: iterations * 10) {
                    n in
                    time(n) { blackHole &+= Int(truncatingIfNeeded: pp_labels_current()) }
                },
            ])
        }

        ProfileLabels.setForCurrentThread(route)
        rows += measure([
            Case(row: Row(name: "pp_labels_current(), thread labels outside tasks"), iterations: iterations * 10) { n in
                time(n) { blackHole &+= Int(truncatingIfNeeded: pp_labels_current()) }
            }
        ])
        ProfileLabels.setForCurrentThread(ProfileLabels())

        print("enter+leave pairs and reads, ns per operation (best of \(rounds) rounds, thread CPU time):")
        for row in rows {
            var line = "  \(row.name.padding(toLength: 60, withPad: " ", startingAt: 0)) "
            line += String(format: "%7.1f", row.nanoseconds)
            if row.budgeted {
                line += row.nanoseconds <= budgetNanoseconds ? "  ok  " : "  OVER"
            }
            if let floorName = row.floor, let floor = rows.first(where: { $0.name == floorName }) {
                line += String(
                    format: "  (runtime floor %.0f, labels %+.0f)",
                    floor.nanoseconds,
                    row.nanoseconds - floor.nanoseconds
                )
            }
            print(line)
        }
        print("  * includes building the one-label set, which a kept set avoids (\"build a one-label set\")")
        let worst = rows.filter(\.budgeted).map(\.nanoseconds).max() ?? 0
        print(
            String(
                format: "worst enter+leave pair: %.1f ns, budget %.0f ns: %@",
                worst,
                budgetNanoseconds,
                (worst <= budgetNanoseconds ? "within budget" : "OVER BUDGET") as NSString
            )
        )
    }

    /// Warms each case up, then runs `rounds` rounds of every case in turn; each row keeps its best
    /// round, in nanoseconds of this thread's CPU time per call (CPU time, not wall time: the
    /// machine may be shared, and time spent preempted is not the code's cost).
    static func measure(_ cases: [Case]) -> [Row] {
        for item in cases { _ = item.round(item.iterations / 10) }
        var rows = cases.map(\.row)
        for _ in 0..<rounds {
            for (index, item) in cases.enumerated() {
                if let elapsed = item.round(item.iterations) {
                    rows[index].nanoseconds = min(rows[index].nanoseconds, Double(elapsed) / Double(item.iterations))
                }
            }
        }
        return rows
    }

    /// As `measure`; a round that moved to another thread (an `await` that suspended) is run again.
    static func measureAsync(_ cases: [AsyncCase]) async -> [Row] {
        for item in cases { _ = await item.round(item.iterations / 10) }
        var rows = cases.map(\.row)
        for _ in 0..<rounds {
            for (index, item) in cases.enumerated() {
                for _ in 0..<10 {
                    guard let elapsed = await item.round(item.iterations) else { continue }
                    rows[index].nanoseconds = min(rows[index].nanoseconds, Double(elapsed) / Double(item.iterations))
                    break
                }
            }
        }
        return rows
    }

    /// Thread CPU time of `iterations` calls of `body`.
    static func time(_ iterations: Int, _ body: () -> Void) -> UInt64? {
        let start = threadCPUTime()
        for _ in 0..<iterations { body() }
        return threadCPUTime() - start
    }

    /// As `time`; `nil` if the loop ended on another thread than it started on.
    static func timeAsync(_ iterations: Int, _ body: () async -> Void) async -> UInt64? {
        let thread = pp_gettid()
        let start = threadCPUTime()
        for _ in 0..<iterations { await body() }
        let elapsed = threadCPUTime() - start
        return pp_gettid() == thread ? elapsed : nil
    }

    static func threadCPUTime() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// Runs `body` in a task and waits for it.
    static func onTask<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        nonisolated(unsafe) var result: T?
        let done = DispatchSemaphore(value: 0)
        Task {
            result = await body()
            done.signal()
        }
        done.wait()
        return result!
    }
}

private enum Floor {
    @TaskLocal static var object: Payload? = nil
}

private final class Payload: Sendable {}

nonisolated(unsafe) private var blackHole = 0
@inline(never) private func sink() { blackHole &+= 1 }
@inline(never) private func sinkAsync() async { blackHole &+= 1 }
