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

        /// `self − other`, stack by stack, leaving out stacks whose difference is all zero.
        func subtracting(_ other: StackValues) -> [[String]: [Int64]] {
            var result = byStack
            for (stack, values) in other.byStack {
                result[stack] = zip(result[stack] ?? values.map { _ in 0 }, values).map { $0 - $1 }
            }
            return result.filter { $0.value.contains { $0 != 0 } }
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
    }

    // MARK: Without hooks (this process)

    @Test func withoutHooksDeltaProfilersSayNothingIsInstalled() throws {
        #expect(pp_contention_hooks_installed() == 0)
        let profilers: [(String, (ProfileBuffer) throws -> Void)] = [
            ("block", DeltaBlockProfiler().profile(to:)), ("mutex", DeltaMutexProfiler().profile(to:)),
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
