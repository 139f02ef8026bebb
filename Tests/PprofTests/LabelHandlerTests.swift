import CPprof
import CPprofTestSupport
import Dispatch
import Foundation
import Synchronization
import Testing

@testable import Pprof

extension LabelTests {
    /// A real signal handler calls `pp_labels_current()` at arbitrary instants, as a CPU profiler's
    /// handler will, while tasks hop threads and scopes begin and end. Each thread publishes a
    /// marker saying which label sets are acceptable at that moment; every record whose marker is
    /// set must resolve to one of them.
    @Suite struct Handler {
        @Test func signalsAtAnyInstantSeeTheLabelsOfTheRunningTask() async throws {
            try #require(pp_test_label_probe_install() > 0)
            LabelTags.pin()
            defer { LabelTags.unpin() }
            pp_test_label_probe_reset()

            let expectations = MarkerExpectations()
            let targets = TargetThreads()
            let sender = SignalSender(targets: targets)
            let stop = StopFlag()
            let hopper = Hopper()
            let taskCount = 4
            for index in 1...taskCount {
                let outer = [Pair("task", "\(index)")]
                let inner = [Pair("phase", "inner"), Pair("task", "\(index)")]
                expectations.set(marker: index, allowed: [outer])
                expectations.set(marker: 10 + index, allowed: [inner])
                // Around the inner scope's entry and exit: either set, never anything else.
                expectations.set(marker: 20 + index, allowed: [outer, inner])
            }
            let threadOuter = [Pair("worker", "own")]
            let threadInner = [Pair("route", "/sync"), Pair("worker", "own")]
            expectations.set(marker: 50, allowed: [threadOuter])
            expectations.set(marker: 51, allowed: [threadInner])
            expectations.set(marker: 52, allowed: [threadOuter, threadInner])

            sender.start()
            // Run until every marker has samples and every task was sampled on several threads
            // including the hopper's (checked every 50 ms), or for at most 30 s.
            let outcome = await withTaskGroup(of: ProbeOutcome?.self) { group in
                for index in 1...taskCount {
                    group.addTask {
                        await withProfileLabels(["task": "\(index)"]) {
                            var round = 0
                            while !stop.isSet {
                                targets.add(pp_gettid())
                                pp_test_label_marker_set(Int32(index))
                                spin(microseconds: 100)
                                // Scopes entered and left back to back: most samples land inside
                                // the runtime's push or pop.
                                pp_test_label_marker_set(Int32(20 + index))
                                for _ in 0..<100 {
                                    withProfileLabels(["phase": "inner"]) { spinOnce() }
                                }
                                withProfileLabels(["phase": "inner"]) {
                                    pp_test_label_marker_set(Int32(10 + index))
                                    spin(microseconds: 100)
                                    pp_test_label_marker_set(Int32(20 + index))
                                }
                                pp_test_label_marker_set(0)
                                round += 1
                                if round % 5 == 0 {
                                    await hopper.work(marker: Int32(index), targets: targets)
                                } else {
                                    await Task.yield()
                                }
                            }
                        }
                        return nil
                    }
                }
                // A thread of its own with thread labels and sync scopes (the runtime's fallback storage).
                group.addTask {
                    onNewThread {
                        targets.add(pp_gettid())
                        ProfileLabels.setForCurrentThread(["worker": "own"])
                        while !stop.isSet {
                            pp_test_label_marker_set(50)
                            spin(microseconds: 50)
                            pp_test_label_marker_set(52)
                            for _ in 0..<100 {
                                withProfileLabels(["route": "/sync"]) { spinOnce() }
                            }
                            withProfileLabels(["route": "/sync"]) {
                                pp_test_label_marker_set(51)
                                spin(microseconds: 50)
                                pp_test_label_marker_set(52)
                            }
                        }
                        pp_test_label_marker_set(0)
                        ProfileLabels.setForCurrentThread(ProfileLabels())
                    }
                    return nil
                }
                group.addTask {
                    let deadline = DispatchTime.now().uptimeNanoseconds + 30_000_000_000
                    var outcome = ProbeOutcome.read(
                        expectations: expectations,
                        taskCount: taskCount,
                        hopper: hopper.thread
                    )
                    while !outcome.covered && DispatchTime.now().uptimeNanoseconds < deadline {
                        try? await Task.sleep(nanoseconds: 50_000_000)
                        outcome = ProbeOutcome.read(
                            expectations: expectations,
                            taskCount: taskCount,
                            hopper: hopper.thread
                        )
                    }
                    stop.set()
                    return outcome
                }
                var outcome: ProbeOutcome?
                for await result in group where result != nil { outcome = result }
                return outcome!
            }
            sender.stop()

            // Every sample taken so far, including those after the coverage check.
            let final = ProbeOutcome.read(expectations: expectations, taskCount: taskCount, hopper: hopper.thread)
            #expect(outcome.covered, "coverage not reached in 30 s: \(final.summary)")
            #expect(
                final.violations.isEmpty,
                "\(final.violations.count) wrong samples, e.g. \(final.violations.prefix(5))"
            )
        }
    }
}

/// What the probe handler recorded, checked against the markers' expectations.
struct ProbeOutcome {
    var perMarker: [Int32: Int] = [:]
    var taskThreads: [Int32: Set<Int32>] = [:]
    var violations: [String] = []
    var covered = false

    static func read(expectations: MarkerExpectations, taskCount: Int, hopper: Int32) -> ProbeOutcome {
        var dropped: UInt64 = 0
        var records = [pp_test_label_record](repeating: pp_test_label_record(), count: 1 << 18)
        let count = Int(pp_test_label_probe_read(&records, UInt64(records.count), &dropped))
        var outcome = ProbeOutcome()
        for record in records.prefix(count) where record.marker != 0 {
            outcome.perMarker[record.marker, default: 0] += 1
            if record.marker <= Int32(taskCount) { outcome.taskThreads[record.marker, default: []].insert(record.tid) }
            let seen = LabelTags.labels(forTag: record.tag).map { Pair($0.key, $0.value) }
            if !expectations.allowed(marker: record.marker).contains(seen) {
                outcome.violations.append("marker \(record.marker) on thread \(record.tid): \(seen)")
            }
        }
        let markersCovered = expectations.markers.allSatisfy { outcome.perMarker[$0, default: 0] >= 10 }
        // The same labelled task was sampled on several threads, the hopper's among them.
        let hopsCovered =
            (1...Int32(taskCount)).allSatisfy { outcome.taskThreads[$0, default: []].count >= 2 }
            && outcome.taskThreads.values.contains { $0.contains(hopper) }
        outcome.covered = markersCovered && hopsCovered
        return outcome
    }

    var summary: String {
        "samples per marker \(perMarker.sorted { $0.key < $1.key }), threads per task \(taskThreads)"
    }
}

/// A flag that tells the workers to stop.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}

/// A little work the optimizer cannot remove.
@inline(never) func spinOnce() { blackHole &+= 1 }
nonisolated(unsafe) var blackHole = 0

/// Busy-waits, so that the thread is running (and can be sampled) for that long.
func spin(microseconds: UInt64) {
    let end = DispatchTime.now().uptimeNanoseconds + microseconds * 1000
    while DispatchTime.now().uptimeNanoseconds < end {}
}

extension Hopper {
    /// Runs a marked stretch of work on the hopper's own thread.
    func work(marker: Int32, targets: TargetThreads) {
        targets.add(pp_gettid())
        pp_test_label_marker_set(marker)
        spin(microseconds: 150)
        pp_test_label_marker_set(0)
    }
}

/// Which label sets each marker allows.
final class MarkerExpectations: Sendable {
    private let table = Mutex<[Int32: [[Pair]]]>([:])

    func set(marker: Int, allowed: [[Pair]]) { table.withLock { $0[Int32(marker)] = allowed } }
    func allowed(marker: Int32) -> [[Pair]] { table.withLock { $0[marker] ?? [] } }
    var markers: [Int32] { table.withLock { Array($0.keys) } }
}

/// The threads the signal sender targets.
final class TargetThreads: Sendable {
    private let tids = Mutex<Set<Int32>>([])

    /// Adds the calling thread (`tid`), unblocking the probe signal on it.
    func add(_ tid: Int32) {
        let inserted = tids.withLock { $0.insert(tid).inserted }
        if inserted { pp_test_label_probe_unblock() }
    }
    var all: Set<Int32> { tids.withLock { $0 } }
}

/// A thread that keeps signalling every target thread, every 100 µs, until stopped.
final class SignalSender: Sendable {
    private let targets: TargetThreads
    private let running = Atomic<Bool>(true)
    private let finished = DispatchSemaphore(value: 0)

    init(targets: TargetThreads) { self.targets = targets }

    func start() {
        Thread { [self] in
            while running.load(ordering: .acquiring) {
                for tid in targets.all { _ = pp_test_label_probe_signal(tid) }
                usleep(100)
            }
            finished.signal()
        }.start()
    }

    func stop() {
        running.store(false, ordering: .releasing)
        finished.wait()
    }
}
