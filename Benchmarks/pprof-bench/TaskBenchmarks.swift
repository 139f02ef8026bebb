import Dispatch
import Foundation
@_spi(Internals) import Pprof
import Synchronization

/// `tasks` (issue 14): creating and finishing a task with the `swift_task_create` hook recording
/// vs forwarding only, rounds alternating in one run (budget ≤ 5 % or ≤ 30 ns, whichever is
/// larger); then reading 10,000 suspended tasks and the whole goroutine profile with them
/// (budget 50 ms).
enum TaskBenchmarks {
    static let tasksPerRound = 20_000
    static let rounds = 9
    static let suspendedCount = 10_000
    static let dumps = 7

    static let parked = Mutex<[CheckedContinuation<Int, Never>]>([])

    @inline(never) static func benchLeaf(_ value: Int) async -> Int { value &+ 3 }

    @inline(never) static func parkedThree(_ value: Int) async -> Int {
        let resumed = await withCheckedContinuation { continuation in parked.withLock { $0.append(continuation) } }
        return resumed &+ value &* 5
    }

    @inline(never) static func parkedTwo(_ value: Int) async -> Int { await parkedThree(value &+ 2) &* 11 }

    @inline(never) static func parkedOne(_ value: Int) async -> Int { await parkedTwo(value &* 3) &- 1 }

    /// ns per task created and awaited, in batches of 64.
    static func createAndFinish(_ tasks: Int) async -> Double {
        let start = ContinuousClock.now
        var total = 0
        for batch in stride(from: 0, to: tasks, by: 64) {
            var handles: [Task<Int, Never>] = []
            handles.reserveCapacity(64)
            for index in batch..<(batch + 64) { handles.append(Task.detached { await benchLeaf(index) }) }
            for handle in handles { total &+= await handle.value }
        }
        precondition(total > 0)
        return nanoseconds(ContinuousClock.now - start) / Double(tasks)
    }

    static func nanoseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9
    }

    static func milliseconds(_ duration: Duration) -> String {
        String(format: "%.1f ms", nanoseconds(duration) / 1e6)
    }

    static func run() throws {
        TaskRegistry.prepare()
        if let reason = TaskRegistry.unavailableReason, TaskRegistry.isTracking {
            print(reason)
            return
        }
        // Creation: recording off (the hook only forwards) and on, alternating.
        let done = DispatchSemaphore(value: 0)
        let figures = Mutex<(on: [Double], off: [Double])>(([], []))
        Task.detached {
            _ = await createAndFinish(tasksPerRound)  // warm-up: pool threads, allocator
            for _ in 0..<rounds {
                TaskRegistry.setRecording(false)
                let off = await createAndFinish(tasksPerRound)
                TaskRegistry.setRecording(true)
                let on = await createAndFinish(tasksPerRound)
                figures.withLock {
                    $0.off.append(off)
                    $0.on.append(on)
                }
            }
            done.signal()
        }
        done.wait()
        let (on, off) = figures.withLock { ($0.on.sorted(), $0.off.sorted()) }
        let (medianOn, medianOff) = (on[on.count / 2], off[off.count / 2])
        print(
            String(
                format: "create + finish a task: tracking %.0f ns, without %.0f ns (medians of %d rounds of %d): "
                    + "%+.0f ns, ratio %.3f",
                medianOn,
                medianOff,
                rounds,
                tasksPerRound,
                medianOn - medianOff,
                medianOn / medianOff
            )
        )
        print(
            String(
                format: "  ranges: tracking %.0f–%.0f ns, without %.0f–%.0f ns",
                on.first!,
                on.last!,
                off.first!,
                off.last!
            )
        )

        // 10,000 tasks suspended three async functions deep on a continuation never resumed; half
        // named, a quarter in a profiler-label scope (16 label sets).
        for index in 0..<suspendedCount {
            let name: String? = index % 2 == 0 ? "bench-\(index)" : nil
            if index % 4 == 1 {
                Task.detached(name: name) {
                    let value = await withProfileLabels(["request": "r-\(index % 16)"]) { await parkedOne(index) }
                    print("never \(value)")
                }
            } else {
                Task.detached(name: name) { print("never \(await parkedOne(index))") }
            }
        }
        while parked.withLock({ $0.count }) < suspendedCount { usleep(1000) }
        usleep(100_000)
        let goroutine = Profile.lookup("goroutine")!
        // The first dump loads the images' symbols (once per process): not what a dump costs.
        try goroutine.write(to: ProfileBuffer(), debug: 2)
        let clock = ContinuousClock()
        var reads: [Duration] = []
        var profiles: [Duration] = []
        var texts: [Duration] = []
        var listed = 0
        for _ in 0..<dumps {
            reads.append(clock.measure { listed = TaskRegistry.liveTasks()?.count ?? 0 })
            profiles.append(try clock.measure { try goroutine.write(to: ProfileBuffer(), debug: 0) })
            texts.append(try clock.measure { try goroutine.write(to: ProfileBuffer(), debug: 2) })
        }
        print("suspended tasks listed: \(listed) of \(suspendedCount) (+ the benchmark's own)")
        for (label, values) in [
            ("read every live task (header, frames, name, records)", reads),
            ("goroutine profile, debug=0 (threads + tasks, symbolize, encode)", profiles),
            ("goroutine profile, debug=2 (one block per task)", texts),
        ] {
            let sorted = values.sorted()
            print(
                "\(label): median \(milliseconds(sorted[sorted.count / 2])), "
                    + "range \(milliseconds(sorted.first!))–\(milliseconds(sorted.last!)) (budget 50 ms)"
            )
        }
    }
}
