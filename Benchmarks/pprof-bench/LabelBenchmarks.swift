// The cost of profiler labels: entering and leaving `withProfileLabels` (sync and async), building
// a label set per request, and the handler-side read `pp_labels_current()`. Budget: ≤ 200 ns per
// enter/leave pair. Each figure is the best of several rounds in thread CPU time, next to the
// runtime's own floor (`TaskLocal.withValue` with an Int) measured in the same run.
import CPprof
import Dispatch
import Foundation
import Pprof

enum LabelBenchmarks {
    static let budgetNanoseconds = 200.0

    static func run() throws {
        let iterations = 1_000_000
        var rows: [(name: String, nanoseconds: Double, budgeted: Bool)] = []
        func add(_ name: String, _ nanoseconds: Double, budgeted: Bool = true) {
            rows.append((name, nanoseconds, budgeted))
        }

        let route: ProfileLabels = ["route": "/users"]
        let tenant: ProfileLabels = ["tenant": "a"]
        let object = Payload()

        // Outside any task: the runtime keeps task-locals in per-thread fallback storage.
        add(
            "floor: TaskLocal.withValue(Int), outside tasks",
            measure(iterations) { Floor.$value.withValue(1) { sink() } },
            budgeted: false
        )
        add(
            "floor: TaskLocal.withValue(object), outside tasks",
            measure(iterations) { Floor.$object.withValue(object) { sink() } },
            budgeted: false
        )
        add("withProfileLabels sync, outside tasks", measure(iterations) { withProfileLabels(route) { sink() } })
        add(
            "  merging into outer labels (sync, outside tasks)",
            withProfileLabels(route) { measure(iterations) { withProfileLabels(tenant) { sink() } } }
        )

        add(
            "build a one-label set from a literal",
            measure(iterations) { blackHole &+= (["route": "/users"] as ProfileLabels).count },
            budgeted: false
        )
        add(
            "build a three-label set from a literal (unsorted)",
            measure(iterations) { blackHole &+= (["z": "1", "a": "2", "m": "3"] as ProfileLabels).count },
            budgeted: false
        )

        let inTask = onTask { () async -> [(String, Double, Bool)] in
            var rows: [(String, Double, Bool)] = []
            rows.append(
                (
                    "floor: TaskLocal.withValue(Int) async, in a task",
                    await measureAsync(iterations) {
                        await Floor.$value.withValue(1) { await sinkAsync() }
                    }, false
                )
            )
            rows.append(
                (
                    "floor: TaskLocal.withValue(object) async, in a task",
                    await measureAsync(iterations) {
                        await Floor.$object.withValue(object) { await sinkAsync() }
                    }, false
                )
            )
            rows.append(
                ("withProfileLabels sync, in a task", measure(iterations) { withProfileLabels(route) { sink() } }, true)
            )
            rows.append(
                (
                    "withProfileLabels async, in a task",
                    await measureAsync(iterations) {
                        await withProfileLabels(route) { await sinkAsync() }
                    }, true
                )
            )
            rows.append(
                (
                    "  merging into outer labels (async, in a task)",
                    await withProfileLabels(route) {
                        await measureAsync(iterations) { await withProfileLabels(tenant) { await sinkAsync() } }
                    }, true
                )
            )
            var request = 0
            rows.append(
                (
                    "per request: build [\"request\": id] + async scope",
                    await measureAsync(iterations) {
                        request &+= 1
                        await withProfileLabels(["request": String(request)]) { await sinkAsync() }
                    }, false
                )
            )
            rows.append(
                (
                    "pp_labels_current(), task with labels",
                    withProfileLabels(route) {
                        measure(iterations * 10) { blackHole &+= Int(truncatingIfNeeded: pp_labels_current()) }
                    }, false
                )
            )
            rows.append(
                (
                    "pp_labels_current(), task without labels",
                    measure(iterations * 10) {
                        blackHole &+= Int(truncatingIfNeeded: pp_labels_current())
                    }, false
                )
            )
            return rows
        }
        for (name, nanoseconds, budgeted) in inTask { add(name, nanoseconds, budgeted: budgeted) }

        ProfileLabels.setForCurrentThread(route)
        add(
            "pp_labels_current(), thread labels outside tasks",
            measure(iterations * 10) {
                blackHole &+= Int(truncatingIfNeeded: pp_labels_current())
            },
            budgeted: false
        )
        ProfileLabels.setForCurrentThread(ProfileLabels())

        print("enter+leave pairs and reads, ns per operation (best of 5 rounds, thread CPU time):")
        for row in rows {
            let mark = row.budgeted ? (row.nanoseconds <= budgetNanoseconds ? "  ok" : "  OVER") : ""
            let name = row.name.padding(toLength: 56, withPad: " ", startingAt: 0)
            print("  \(name) \(String(format: "%7.1f", row.nanoseconds))\(mark)")
        }
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

    /// Best of 5 rounds, nanoseconds of this thread's CPU time per call (CPU time, not wall time:
    /// the machine may be shared, and time spent preempted is not the code's cost).
    static func measure(_ iterations: Int, _ body: () -> Void) -> Double {
        for _ in 0..<iterations / 10 { body() }
        var best = Double.infinity
        for _ in 0..<5 {
            let start = threadCPUTime()
            for _ in 0..<iterations { body() }
            best = min(best, Double(threadCPUTime() - start) / Double(iterations))
        }
        return best
    }

    /// As `measure`; a round that moved to another thread (an `await` that suspended) is measured
    /// again.
    static func measureAsync(_ iterations: Int, _ body: () async -> Void) async -> Double {
        for _ in 0..<iterations / 10 { await body() }
        var best = Double.infinity
        var rounds = 0
        while rounds < 5 {
            let thread = pp_gettid()
            let start = threadCPUTime()
            for _ in 0..<iterations { await body() }
            let elapsed = threadCPUTime() - start
            guard pp_gettid() == thread else { continue }
            best = min(best, Double(elapsed) / Double(iterations))
            rounds += 1
        }
        return best
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
    @TaskLocal static var value = 0
    @TaskLocal static var object: Payload? = nil
}

private final class Payload: Sendable {}

nonisolated(unsafe) private var blackHole = 0
@inline(never) private func sink() { blackHole &+= 1 }
@inline(never) private func sinkAsync() async { blackHole &+= 1 }
