import CPprof
import Dispatch
import Foundation
import Synchronization
import Testing

@testable import Pprof

extension LabelTests {
    @Suite struct Stress {
        /// Many tasks enter and leave scopes with per-request labels, sample their tag and read their
        /// labels, while another thread keeps pinning, resolving the tags sampled during its pin
        /// (most of whose label sets have died by then) and unpinning.
        @Test func tagsSampledDuringAPinResolveWhileTasksChurn() async throws {
            let log = SampleLog()
            let resolver = PinningResolver(log: log)
            resolver.start()

            let mismatches = await withTaskGroup(of: Int.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var mismatches = 0
                        for request in 0..<3_000 {
                            let id = "\(worker)-\(request)"
                            let expected = [Pair("request", id), Pair("worker", "\(worker)")]
                            await withProfileLabels(["worker": "\(worker)"]) {
                                await withProfileLabels(["request": id]) {
                                    if request % 16 == 0 { await Task.yield() }
                                    let epoch = log.epoch.load(ordering: .acquiring)
                                    let tag = pp_labels_current()
                                    if pairs(ProfileLabels.current) != expected { mismatches += 1 }
                                    if LabelTags.labels(forTag: tag).map({ Pair($0.key, $0.value) }) != expected {
                                        mismatches += 1
                                    }
                                    log.append(epoch: epoch, tag: tag, expected: expected)
                                }
                            }
                        }
                        return mismatches
                    }
                }
                return await group.reduce(0, +)
            }
            let resolved = resolver.stop()
            #expect(mismatches == 0)
            #expect(
                resolved.failures.isEmpty,
                "tags sampled while pinned that did not resolve: \(resolved.failures.prefix(5))"
            )
            #expect(
                resolved.checked >= 100,
                "the resolver checked only \(resolved.checked) tags in \(resolved.pins) pins"
            )

            // Nothing is kept for the dead request sets once no pin is held.
            let statistics = LabelTags.statistics
            if statistics.pins == 0 {
                #expect(statistics.retired == 0)
                let stillResolvable = log.tags(every: 97).filter { !LabelTags.labels(forTag: $0).isEmpty }
                #expect(stillResolvable.isEmpty, "dead label sets still resolvable: \(stillResolvable.count)")
            }
        }

        /// Per-request labels that a handler samples (the worst case: every set sampled) leave
        /// nothing behind when no profiler is pinned.
        @Test func highCardinalityLabelsDoNotAccumulateWithoutAPin() throws {
            let before = LabelTags.statistics
            try #require(before.pins == 0, "another test holds a pin")
            var tags: [UInt64] = []
            for request in 0..<100_000 {
                withProfileLabels(["request": "\(request)"]) {
                    let tag = pp_labels_current()
                    if request % 1000 == 0 { tags.append(tag) }
                }
            }
            let after = LabelTags.statistics
            #expect(after.retired == 0)
            #expect(after.live <= before.live)
            #expect(tags.allSatisfy { $0 != 0 && LabelTags.labels(forTag: $0).isEmpty })
        }

        /// A set that dies while pinned stays resolvable until the last unpin, across nested pins.
        @Test func retiredTagsLiveUntilTheLastUnpin() throws {
            try #require(LabelTags.statistics.pins == 0, "another test holds a pin")
            LabelTags.pin()
            let tag = withProfileLabels(["request": UUID().uuidString, "kind": "retired"]) { pp_labels_current() }
            LabelTags.pin()
            #expect(LabelTags.labels(forTag: tag).map(\.key) == ["kind", "request"])
            LabelTags.unpin()
            #expect(LabelTags.labels(forTag: tag).map(\.key) == ["kind", "request"])
            LabelTags.unpin()
            #expect(LabelTags.labels(forTag: tag).isEmpty)
            #expect(LabelTags.labels(forTag: 0).isEmpty)
        }
    }
}

/// Samples taken by the stress tasks, with the resolver's epoch read before sampling: an odd epoch
/// means the sample was taken while the resolver held its pin.
final class SampleLog: Sendable {
    struct Entry {
        let epoch: Int
        let tag: UInt64
        let expected: [Pair]
    }

    let epoch = Atomic<Int>(0)
    private let entries = Mutex<[Entry]>([])

    func append(epoch: Int, tag: UInt64, expected: [Pair]) {
        entries.withLock { $0.append(Entry(epoch: epoch, tag: tag, expected: expected)) }
    }

    func entries(inEpoch epoch: Int) -> [Entry] { entries.withLock { $0.filter { $0.epoch == epoch } } }

    func tags(every step: Int) -> [UInt64] {
        entries.withLock { entries in stride(from: 0, to: entries.count, by: step).map { entries[$0].tag } }
    }
}

/// A thread that pins, lets samples accumulate, resolves those taken during its pin and unpins,
/// over and over, as a profiler's reader would.
final class PinningResolver: Sendable {
    struct Outcome {
        var pins = 0
        var checked = 0
        var failures: [String] = []
    }

    private let log: SampleLog
    private let running = Atomic<Bool>(true)
    private let outcome = Mutex(Outcome())
    private let finished = DispatchSemaphore(value: 0)

    init(log: SampleLog) { self.log = log }

    func start() {
        Thread { [self] in
            var epoch = 0
            while running.load(ordering: .acquiring) {
                LabelTags.pin()
                epoch += 1
                log.epoch.store(epoch, ordering: .releasing)
                usleep(2_000)
                var checked = 0
                var failures: [String] = []
                for entry in log.entries(inEpoch: epoch) {
                    let resolved = LabelTags.labels(forTag: entry.tag).map { Pair($0.key, $0.value) }
                    checked += 1
                    if resolved != entry.expected { failures.append("\(entry.tag): \(resolved) != \(entry.expected)") }
                }
                epoch += 1
                log.epoch.store(epoch, ordering: .releasing)
                LabelTags.unpin()
                outcome.withLock {
                    $0.pins += 1
                    $0.checked += checked
                    $0.failures += failures
                }
                usleep(500)
            }
            finished.signal()
        }.start()
    }

    func stop() -> Outcome {
        running.store(false, ordering: .releasing)
        finished.wait()
        return outcome.withLock { $0 }
    }
}
