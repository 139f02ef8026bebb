import CPprof
import Foundation
import Synchronization
import Testing

@testable import Pprof

/// The delta profilers (godeltaprof). Scenarios with the hooks run in `pprof-testhelper`, which
/// writes each delta next to the cumulative profile taken right after it; the tests decode both and
/// compare them stack by stack (same process, so the same addresses).
@Suite(.serialized) struct DeltaProfileTests {
    // MARK: Helpers

    /// A decoded profile's values summed per stack (each frame: address and function names).
    struct StackValues {
        var data: ProfileData
        var byStack: [[String]: [Int64]] = [:]

        init(_ data: ProfileData) {
            self.data = data
            let functions = Dictionary(uniqueKeysWithValues: data.functions.map { ($0.id, $0.name) })
            let locations = Dictionary(uniqueKeysWithValues: data.locations.map { ($0.id, $0) })
            for sample in data.samples {
                let stack = sample.locationIDs.map { id -> String in
                    let location = locations[id]
                    let names = (location?.lines ?? []).map { functions[$0.functionID] ?? "?" }
                    return String(location?.address ?? 0, radix: 16) + " " + names.joined(separator: " | ")
                }
                byStack[stack] = zip(byStack[stack] ?? sample.values.map { _ in 0 }, sample.values).map { $0 + $1 }
            }
        }

        init(path: URL) throws {
            self.init(try ProfileData(decoding: [UInt8](try Data(contentsOf: path))))
        }

        /// Values summed over the samples with a frame whose function name contains `site`.
        func total(at site: String) -> [Int64] {
            var sum = data.sampleTypes.map { _ in Int64(0) }
            for (stack, values) in byStack where stack.contains(where: { $0.contains(site) }) {
                sum = zip(sum, values).map { $0 + $1 }
            }
            return sum
        }

        /// The samples with a frame whose function name contains `site`.
        func samples(at site: String) -> [ProfileData.Sample] {
            let names = Dictionary(uniqueKeysWithValues: data.functions.map { ($0.id, $0.name) })
            let locations = Dictionary(uniqueKeysWithValues: data.locations.map { ($0.id, $0) })
            return data.samples.filter { sample in
                sample.locationIDs.contains { id in
                    (locations[id]?.lines ?? []).contains { (names[$0.functionID] ?? "").contains(site) }
                }
            }
        }

        /// `self − other`, stack by stack, leaving out stacks whose difference is all zero.
        func subtracting(_ other: StackValues) -> [[String]: [Int64]] {
            var result = byStack
            for (stack, values) in other.byStack {
                result[stack] = zip(result[stack] ?? values.map { _ in 0 }, values).map { $0 - $1 }
            }
            return result.filter { $0.value.contains { $0 != 0 } }
        }

        /// Only the values at `columns`, leaving out stacks where those are all zero.
        static func columns(_ values: [[String]: [Int64]], _ columns: Range<Int>) -> [[String]: [Int64]] {
            values.mapValues { Array($0[columns]) }.filter { $0.value.contains { $0 != 0 } }
        }

        static func sum(_ profiles: [StackValues]) -> [[String]: [Int64]] {
            var result: [[String]: [Int64]] = [:]
            for profile in profiles {
                for (stack, values) in profile.byStack {
                    result[stack] = zip(result[stack] ?? values.map { _ in 0 }, values).map { $0 + $1 }
                }
            }
            return result.filter { $0.value.contains { $0 != 0 } }
        }
    }

    /// Every delta sample has a nonzero value and none is negative.
    static func expectNoZeroOrNegativeSamples(
        _ profile: StackValues,
        _ name: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for sample in profile.data.samples {
            #expect(sample.values.contains { $0 != 0 }, "\(name): all-zero sample", sourceLocation: sourceLocation)
            #expect(
                sample.values.allSatisfy { $0 >= 0 },
                "\(name): negative \(sample.values)",
                sourceLocation: sourceLocation
            )
        }
    }

    // MARK: Block and mutex (helper)

    @Test func scriptedContentionGivesExactDeltasPerSite() throws {
        let run = try ContentionTests.run("delta-contention")
        // A failing sink's error came back from both profilers (and lost nothing, see d1).
        #expect(run.number("rethrown") == 2)
        for (kind, siteA, siteB) in [
            ("block", "pthreadWaitSite", "waitSiteB"), ("mutex", "pthreadReleaseSite", "releaseSiteB"),
        ] {
            // [delta, contentions of A, contentions of B] for the "d" profiler after each phase
            // (3 at A; 5 at B; nothing; 2 at A) and the "e" profiler after phases 2 and 4.
            let expected: [(String, Int64, Int64)] = [
                ("d1", 3, 0), ("d2", 0, 5), ("d3", 0, 0), ("d4", 2, 0), ("e1", 3, 5), ("e2", 2, 0),
            ]
            for (tag, a, b) in expected {
                let delta = try run.stackValues("\(kind)-\(tag)")
                #expect(delta.total(at: siteA)[0] == a, "\(kind)-\(tag) \(siteA)")
                #expect(delta.total(at: siteB)[0] == b, "\(kind)-\(tag) \(siteB)")
                // Each contention lasted at least the 1 ms the holder held on after the waiter slept.
                #expect(delta.total(at: siteA)[1] >= a * 1_000_000, "\(kind)-\(tag) delay at \(siteA)")
                #expect(delta.total(at: siteB)[1] >= b * 1_000_000, "\(kind)-\(tag) delay at \(siteB)")
                if a == 0 { #expect(!delta.byStack.keys.contains { $0.contains { $0.contains(siteA) } }) }
                if b == 0 { #expect(!delta.byStack.keys.contains { $0.contains { $0.contains(siteB) } }) }
                Self.expectNoZeroOrNegativeSamples(delta, "\(kind)-\(tag)")
            }
            // Nothing happened between d2 and d3: an empty profile, not a copy of the last one.
            #expect(try run.stackValues("\(kind)-d3").data.samples.isEmpty)
        }
    }

    @Test func contentionDeltasAddUpToTheCumulativeProfile() throws {
        let run = try ContentionTests.run("delta-contention")
        for kind in ["block", "mutex"] {
            let cumulative = try (0...4).map { try run.stackValues("\(kind)-c\($0)") }
            let d = try (1...4).map { try run.stackValues("\(kind)-d\($0)") }
            let e = try (1...2).map { try run.stackValues("\(kind)-e\($0)") }
            let empty = StackValues(ProfileData(sampleTypes: cumulative[0].data.sampleTypes))
            // Each delta is exactly the change of the cumulative profile since the profiler's
            // previous call, stack by stack; the first is everything so far.
            #expect(d[0].byStack == cumulative[1].subtracting(empty), "\(kind) d1")
            #expect(d[1].byStack == cumulative[2].subtracting(cumulative[1]), "\(kind) d2")
            #expect(d[2].byStack == cumulative[3].subtracting(cumulative[2]), "\(kind) d3")
            #expect(d[3].byStack == cumulative[4].subtracting(cumulative[3]), "\(kind) d4")
            #expect(e[0].byStack == cumulative[2].subtracting(empty), "\(kind) e1")
            #expect(e[1].byStack == cumulative[4].subtracting(cumulative[2]), "\(kind) e2")
            // Summed, either profiler's deltas are the cumulative profile.
            #expect(StackValues.sum(d) == cumulative[4].subtracting(empty), "\(kind) sum of d")
            #expect(StackValues.sum(e) == cumulative[4].subtracting(empty), "\(kind) sum of e")
            #expect(!cumulative[4].byStack.isEmpty)
            // The cumulative profile's types, units and period; the time each delta covers.
            for delta in d + e {
                #expect(delta.data.sampleTypes == cumulative[4].data.sampleTypes)
                #expect(delta.data.periodType == cumulative[4].data.periodType)
                #expect(delta.data.period == cumulative[4].data.period)
                #expect(delta.data.defaultSampleType == cumulative[4].data.defaultSampleType)
                #expect(delta.data.durationNanos > 0)
            }
            for (previous, next) in zip(d, d.dropFirst()) {
                #expect(next.data.durationNanos == next.data.timeNanos - previous.data.timeNanos)
            }
            // The first call covers the process's life so far.
            #expect(d[0].data.durationNanos >= e[1].data.timeNanos - e[0].data.timeNanos)
            #expect(d[0].data.durationNanos < 600 * 1_000_000_000)
        }
    }

    @Test func concurrentCallsOnOneInstanceAddUpToTheCumulativeProfile() throws {
        let run = try ContentionTests.run("delta-contention-concurrent")
        #expect(run.number("failures") == 0)
        for kind in ["block", "mutex"] {
            let count = Int(run.number(kind))
            #expect(count >= 11, "\(kind): \(count) deltas")
            let deltas = try (0..<count).map { try run.stackValues("\(kind)-\($0)") }
            let cumulative = try run.stackValues("\(kind)-cumulative")
            let empty = StackValues(ProfileData(sampleTypes: cumulative.data.sampleTypes))
            #expect(StackValues.sum(deltas) == cumulative.subtracting(empty), "\(kind)")
            #expect(cumulative.total(at: "concurrentSite")[0] > 0)
            // The contention was split over several deltas, none reporting a stack twice.
            #expect(deltas.filter { $0.total(at: "concurrentSite")[0] > 0 }.count >= 2, "\(kind)")
            for (index, delta) in deltas.enumerated() {
                Self.expectNoZeroOrNegativeSamples(delta, "\(kind)-\(index)")
            }
        }
    }

    @Test func goToolPprofReadsDeltaProfiles() throws {
        guard let go = ContentionTests.goExecutable() else {
            print("skipped: go is not installed")
            return
        }
        let run = try ContentionTests.run("delta-contention")
        for (file, site) in [("block-d1", "pthreadWaitSite"), ("mutex-d2", "releaseSiteB"), ("block-e1", "waitSiteB")] {
            let path = run.directory.appendingPathComponent("\(file).pb.gz").path
            let output = try ContentionTests.runTool(go, ["tool", "pprof", "-top", path])
            #expect(output.status == 0, "go tool pprof -top \(file): \(output.text)")
            #expect(output.text.contains("Type: delay"), "\(file): \(output.text)")
            let traces = try ContentionTests.runTool(go, ["tool", "pprof", "-traces", path])
            #expect(traces.text.contains(site), "\(file): \(traces.text)")
        }
        let heap = try ContentionTests.run("delta-heap")
        for (index, type) in ["alloc_space", "inuse_space"].enumerated() {
            let path = heap.directory.appendingPathComponent("heap-d2.pb.gz").path
            let output = try ContentionTests.runTool(go, ["tool", "pprof", "-top", "-sample_index=\(type)", path])
            #expect(output.status == 0, "go tool pprof -top heap-d2: \(output.text)")
            #expect(output.text.contains("Type: \(type)"), "\(output.text)")
            // alloc_space since d1: B only; in use: A and B.
            #expect(output.text.contains("deltaHeapSiteB"), "\(output.text)")
            #expect(output.text.contains("deltaHeapSiteA") == (index == 1), "\(output.text)")
        }
    }

    // MARK: Heap (helper)

    @Test func scriptedHeapGivesExactDeltasPerSite() throws {
        let run = try ContentionTests.run("delta-heap")
        #expect(run.truth["rethrown"] as? Bool == true)
        // At rate 1: 100 × 1000 B at A; then 50 × 3000 B at B; then A freed; then (after a failed
        // write) 100 × 1000 B at A again. "d" is called after every phase, "e" after the 2nd and 3rd.
        let a: [Int64] = [100, 100_000, 100, 100_000]
        let b: [Int64] = [50, 150_000, 50, 150_000]
        let expected: [(String, [Int64], [Int64])] = [
            ("d1", a, [0, 0, 0, 0]),
            ("d2", [0, 0, 100, 100_000], b),
            ("d3", [0, 0, 0, 0], [0, 0, 50, 150_000]),
            ("d4", a, [0, 0, 50, 150_000]),
            ("e1", a, b),
            ("e2", [0, 0, 0, 0], [0, 0, 50, 150_000]),
        ]
        let cumulative = try run.stackValues("heap-c4")
        for (tag, siteA, siteB) in expected {
            let delta = try run.stackValues("heap-\(tag)")
            #expect(delta.total(at: "deltaHeapSiteA") == siteA, "\(tag) A")
            #expect(delta.total(at: "deltaHeapSiteB") == siteB, "\(tag) B")
            // A site with nothing new and nothing in use is left out.
            for (site, values) in [("deltaHeapSiteA", siteA), ("deltaHeapSiteB", siteB)]
            where values.allSatisfy({ $0 == 0 }) {
                #expect(!delta.byStack.keys.contains { $0.contains { $0.contains(site) } }, "\(tag) \(site)")
            }
            Self.expectNoZeroOrNegativeSamples(delta, "heap-\(tag)")
            // The heap profile's types, units and period, without a default sample type.
            #expect(delta.data.sampleTypes == cumulative.data.sampleTypes)
            #expect(delta.data.periodType == cumulative.data.periodType)
            #expect(delta.data.period == 1)
            #expect(delta.data.defaultSampleType == "")
            #expect(delta.data.durationNanos == 0)
        }
        // Each site's samples carry the allocation size as the `bytes` label.
        let d2 = try run.stackValues("heap-d2")
        for (site, size) in [("deltaHeapSiteA", Int64(1000)), ("deltaHeapSiteB", 3000)] {
            let labels = d2.samples(at: site).map { $0.labels.first { $0.key == "bytes" }?.number }
            #expect(!labels.isEmpty && labels.allSatisfy { $0 == size }, "\(site): \(labels)")
        }
    }

    @Test func heapDeltasAddUpToTheCumulativeProfile() throws {
        let run = try ContentionTests.run("delta-heap")
        let c = try (0...4).map { try run.stackValues("heap-c\($0)") }
        let d = try (1...4).map { try run.stackValues("heap-d\($0)") }
        let e = try (1...2).map { try run.stackValues("heap-e\($0)") }
        let empty = StackValues(ProfileData(sampleTypes: c[0].data.sampleTypes))
        func allocated(_ values: [[String]: [Int64]]) -> [[String]: [Int64]] { StackValues.columns(values, 0..<2) }
        func inUse(_ values: [[String]: [Int64]]) -> [[String]: [Int64]] { StackValues.columns(values, 2..<4) }
        // alloc_*: exactly the cumulative profile's change since the profiler's previous call.
        let pairs: [(StackValues, StackValues, StackValues, String)] = [
            (d[0], c[1], empty, "d1"), (d[1], c[2], c[1], "d2"), (d[2], c[3], c[2], "d3"), (d[3], c[4], c[3], "d4"),
            (e[0], c[2], empty, "e1"), (e[1], c[3], c[2], "e2"),
        ]
        for (delta, now, before, tag) in pairs {
            #expect(allocated(delta.byStack) == allocated(now.subtracting(before)), "\(tag) alloc")
            // inuse_*: absolute, the cumulative profile's at the same moment.
            #expect(inUse(delta.byStack) == inUse(now.byStack), "\(tag) inuse")
        }
        #expect(allocated(StackValues.sum(d)) == allocated(c[4].byStack))
        #expect(allocated(StackValues.sum(e)) == allocated(c[3].byStack))
        #expect(!inUse(c[4].byStack).isEmpty)
    }

    @Test func concurrentHeapDeltasAtASampledRateAddUpExactly() throws {
        let run = try ContentionTests.run("delta-heap-concurrent")
        #expect(run.number("failures") == 0)
        let count = Int(run.number("deltas"))
        #expect(count >= 7)
        let deltas = try (0..<count).map { try run.stackValues("heap-\($0)") }
        let cumulative = try run.stackValues("heap-cumulative")
        #expect(cumulative.data.period == 4096)
        // Scaled values (rate 4096, objects of 16 B…60 KB): the sums are still exact, stack by
        // stack, because each delta is a difference of scaled cumulative values.
        #expect(
            StackValues.columns(StackValues.sum(deltas), 0..<2) == StackValues.columns(cumulative.byStack, 0..<2)
        )
        #expect(
            StackValues.columns(deltas.last!.byStack, 2..<4) == StackValues.columns(cumulative.byStack, 2..<4)
        )
        let churn = cumulative.total(at: "deltaHeapChurnSite")
        #expect(churn[0] > 0 && churn[1] > churn[0] * 16)
        #expect(deltas.filter { $0.total(at: "deltaHeapChurnSite")[0] > 0 }.count >= 2)
        for (index, delta) in deltas.enumerated() {
            Self.expectNoZeroOrNegativeSamples(delta, "heap-\(index)")
            #expect(delta.data.period == 4096)
        }
    }

    // MARK: Without hooks (this process)

    @Test func withoutHooksDeltaProfilersSayNothingIsInstalled() throws {
        #expect(pp_contention_hooks_installed() == 0)
        #expect(!HeapProfile.isInstalled)
        let profilers: [(String, (ProfileBuffer) throws -> Void)] = [
            ("block", DeltaBlockProfiler().profile(to:)), ("mutex", DeltaMutexProfiler().profile(to:)),
            ("heap", DeltaHeapProfiler().profile(to:)),
        ]
        for (name, profile) in profilers {
            let cumulative = #expect(throws: PprofError.self) {
                try Profile.lookup(name)!.write(to: ProfileBuffer(), debug: 0)
            }
            let buffer = ProfileBuffer()
            let delta = #expect(throws: PprofError.self) { try profile(buffer) }
            #expect(delta != nil && delta == cumulative, "\(name): \(String(describing: delta))")
            #expect(delta?.description.contains("not installed") == true)
            #expect(buffer.bytes.isEmpty)
        }
    }

    // MARK: The delta step (this process)

    @Test func baselineReportsChangesMergesDuplicatesAndNeverGoesBack() {
        typealias Entry = DeltaBaseline<String>.Entry
        func pair(_ count: Int64, _ amount: Int64) -> CounterPair { CounterPair(count: count, amount: amount) }
        var baseline = DeltaBaseline<String>()
        // First call: everything; duplicate keys are one key, summed, in first-seen order.
        var (changes, next) = baseline.changes(to: [
            Entry(key: "b", cumulative: pair(2, 20)), Entry(key: "a", cumulative: pair(1, 10), absolute: pair(5, 50)),
            Entry(key: "b", cumulative: pair(1, 5), absolute: pair(1, 1)),
        ])
        #expect(changes.map(\.key) == ["b", "a"])
        #expect(changes.map(\.change) == [pair(3, 25), pair(1, 10)])
        #expect(changes.map(\.absolute) == [pair(1, 1), pair(5, 50)])
        // Until it is kept, the baseline does not move.
        #expect(baseline.count == 0)
        baseline = next
        #expect(baseline.count == 2)
        // Second call: only what changed; absolute values are reported as they are.
        (changes, next) = baseline.changes(to: [
            Entry(key: "a", cumulative: pair(1, 10), absolute: pair(4, 40)), Entry(key: "b", cumulative: pair(7, 70)),
            Entry(key: "c", cumulative: pair(0, 0)),
        ])
        #expect(changes.map(\.change) == [.zero, pair(4, 45), .zero])
        #expect(changes.map(\.isZero) == [false, false, true])
        baseline = next
        #expect(baseline.count == 2)  // "c" never had anything: nothing to remember
        // A key whose counters went down reports nothing and keeps its baseline...
        (changes, next) = baseline.changes(to: [Entry(key: "b", cumulative: pair(6, 80))])
        #expect(changes.map(\.change) == [.zero])
        baseline = next
        // ...so the next call catches up, and the changes add up to the cumulative counters.
        (changes, next) = baseline.changes(to: [Entry(key: "b", cumulative: pair(9, 90))])
        #expect(changes.map(\.change) == [pair(2, 20)])
        #expect(pair(3, 25) + pair(4, 45) + pair(2, 20) == pair(9, 90))
    }

    @Test func contentionChangeKeepsTheProfileAndSortsByDelay() {
        var cumulative = ContentionProfile(
            kind: .block,
            records: [
                .init(stack: [0x1000, 0x2000], contentions: 2, delayNanoseconds: 500, key: 1),
                .init(stack: [SyntheticFrame.lostSamples.rawValue], contentions: 1, delayNanoseconds: 300, key: 9),
            ],
            droppedStacks: 1,
            untrackedWaits: 0,
            setting: 1
        )
        let first = cumulative.change(since: DeltaBaseline())
        #expect(first.profile.records == cumulative.records)
        #expect(first.profile.comments == cumulative.comments)
        // Records are matched by key; stacks are read only for those that changed.
        cumulative.records = [
            .init(stack: [], contentions: 3, delayNanoseconds: 600, key: 1),
            .init(stack: [], contentions: 1, delayNanoseconds: 400, key: 2),
            .init(stack: [], contentions: 1, delayNanoseconds: 300, key: 9),
        ]
        var stacksRead: [UInt64] = []
        let second = cumulative.change(since: first.next) { record in
            stacksRead.append(record.key)
            return [0x1000, 0x1000 * UInt(record.key + 1)]
        }
        #expect(stacksRead.sorted() == [1, 2])
        #expect(
            second.profile.records == [
                .init(stack: [0x1000, 0x3000], contentions: 1, delayNanoseconds: 400, key: 2),
                .init(stack: [0x1000, 0x2000], contentions: 1, delayNanoseconds: 100, key: 1),
            ]
        )
        let data = second.profile.profileData(timeNanos: 2_000, durationNanos: 1_000)
        #expect(data.samples.map(\.values) == [[1, 400], [1, 100]])
        #expect(data.timeNanos == 2_000 && data.durationNanos == 1_000)
        #expect(data.comments.contains { $0.contains("1 stacks could not be stored") })
    }

    @Test func heapChangeSubtractsScaledValuesAndNeverGoesNegative() {
        func record(_ id: UInt32, size: UInt64, allocated: Int64, freed: Int64) -> HeapSnapshot.Record {
            let bytes = Int64(size)
            return HeapSnapshot.Record(
                stack: [],
                size: size,
                allocObjects: allocated,
                allocBytes: allocated * bytes,
                freeObjects: freed,
                freeBytes: freed * bytes,
                stackID: id
            )
        }
        var stats = pp_heap_stats()
        stats.sample_rate = 4096
        var snapshot = HeapSnapshot(
            records: [record(1, size: 100, allocated: 10, freed: 0), record(2, size: 5000, allocated: 3, freed: 1)],
            stats: stats
        )
        var stacksRead: [UInt32] = []
        let stack: (HeapSnapshot.Record) -> [UInt] = {
            stacksRead.append($0.stackID)
            return [0x1000 * UInt($0.stackID)]
        }
        // The first change is the whole cumulative profile, record by record.
        let first = snapshot.change(since: DeltaBaseline(), stack: stack)
        let cumulative = snapshot.records.map { snapshot.sample(of: $0, stack: []) }
        #expect(first.samples.map(\.allocated) == cumulative.map(\.allocated))
        #expect(first.samples.map(\.inUse) == cumulative.map(\.inUse))
        #expect(first.samples.map(\.size) == [100, 5000])
        #expect(first.samples.map(\.stack) == [[0x1000], [0x2000]])
        #expect(cumulative[0].allocated.count > 10)  // scaled: small objects stand for many
        // Then: the difference of the scaled values; record 2, with nothing new and nothing in use,
        // is left out and its stack is not even read.
        snapshot.records = [
            record(1, size: 100, allocated: 25, freed: 20), record(2, size: 5000, allocated: 3, freed: 3),
        ]
        stacksRead = []
        let second = snapshot.change(since: first.next, stack: stack)
        let now = snapshot.sample(of: snapshot.records[0], stack: [])
        #expect(second.samples.count == 1)
        #expect(stacksRead == [1])
        #expect(second.samples.first?.allocated == now.allocated - cumulative[0].allocated)
        #expect(second.samples.first?.inUse == now.inUse)
        #expect(first.samples[0].allocated + second.samples[0].allocated == now.allocated)
        // A lowered rate shrinks what was recorded (small objects stand for fewer): no negative
        // allocation is reported, in-use values still are, and the baseline waits...
        snapshot.stats.sample_rate = 512
        let third = snapshot.change(since: second.next, stack: stack)
        #expect(third.samples.map(\.allocated) == [.zero])
        #expect(third.samples.map(\.inUse) == [snapshot.sample(of: snapshot.records[0], stack: []).inUse])
        // ...until the scaled total has grown past what was reported: then it is the difference.
        snapshot.records[0] = record(1, size: 100, allocated: 500, freed: 20)
        let fourth = snapshot.change(since: third.next, stack: stack)
        let later = snapshot.sample(of: snapshot.records[0], stack: [])
        #expect(fourth.samples.first?.allocated == later.allocated - now.allocated)
        // Allocations that could not be recorded are a sample of their own, under a pseudo-frame.
        snapshot.stats.dropped_objects = 2
        snapshot.stats.dropped_bytes = 300
        let fifth = snapshot.change(since: fourth.next, stack: stack)
        #expect(fifth.samples.count == 2)
        #expect(fifth.samples.last?.stack == [SyntheticFrame.lostSamples.rawValue])
        #expect(fifth.samples.last?.allocated == snapshot.droppedSample?.allocated)
        #expect(fifth.samples.last?.inUse == .zero)
    }

    @Test func aFailedWriteIsReportedAgainByTheNextCall() throws {
        struct Failure: Error {}
        struct FailingSink: ProfileSink {
            func write(_ bytes: UnsafeRawBufferPointer) throws { throw Failure() }
        }
        let session = DeltaSession<String>()
        let cumulative = Mutex(Int64(5))
        func call(_ sink: some ProfileSink) throws {
            try session.profile(to: sink) { baseline, _ in
                let total = cumulative.withLock { $0 }
                let (changes, next) = baseline.changes(to: [
                    .init(key: "k", cumulative: CounterPair(count: total, amount: 0))
                ])
                var profile = ProfileData(sampleTypes: [.init(type: "count", unit: "count")])
                profile.samples = changes.filter { !$0.isZero }.map {
                    .init(locationIDs: [], values: [$0.change.count])
                }
                return (profile, next)
            }
        }
        #expect(throws: Failure.self) { try call(FailingSink()) }
        #expect(session.rememberedKeys == 0)
        cumulative.withLock { $0 = 8 }
        let buffer = ProfileBuffer()
        try call(buffer)
        #expect(try ProfileData(decoding: buffer.bytes).samples.map(\.values) == [[8]])
        #expect(session.rememberedKeys == 1)
    }
}

extension ContentionTests.Run {
    /// The profile `<name>.pb.gz` the scenario wrote, summed per stack.
    func stackValues(_ name: String) throws -> DeltaProfileTests.StackValues {
        try DeltaProfileTests.StackValues(path: directory.appendingPathComponent("\(name).pb.gz"))
    }
}
