import Foundation
import Testing

@_spi(Benchmarks) @testable import Pprof

/// `scaled(by:)`, `ProfileData(merging:)`, `delta(since:)` and the query helpers, checked by hand
/// and against google/pprof's own Merge (through `go tool pprof -proto`).
@Suite struct FormatAlgebraTests {
    static let types = [
        ProfileData.ValueType(type: "contentions", unit: "count"), .init(type: "delay", unit: "nanoseconds"),
    ]

    /// A fixed "program": two executable mappings, some functions, and call PCs in each. A run of
    /// it may be loaded elsewhere (ASLR `shift`) and list things in another order.
    struct Program {
        static let maps = [
            (start: UInt64(0x400000), limit: UInt64(0x500000), offset: UInt64(0x1000), path: "/app/server"),
            (
                start: UInt64(0x7f0000000000), limit: UInt64(0x7f0000100000), offset: UInt64(0x20000),
                path: "/lib/libc.so.6"
            ),
        ]
        static let pcs: [(offset: UInt, mapping: Int, frames: [(String, String, Int)])] = [
            (0x1000, 0, [("main.leaf", "/src/leaf.swift", 10)]),
            (0x2000, 0, [("inlined", "/src/a.swift", 3), ("main.middle", "/src/a.swift", 20)]),
            (0x3000, 0, [("main.root", "/src/main.swift", 5)]),
            (0x3100, 0, [("main.root", "/src/main.swift", 6)]),
            (0x4000, 1, [("memcpy", "", 0)]),
            (0x5000, 1, []),
        ]

        /// A profile of this program as run at `shift`, built from `samples` (indices into `pcs`).
        static func profile(
            shift: UInt64,
            samples: [(stack: [Int], values: [Int64], labels: [ProfileData.Label])],
            timeNanos: Int64 = 1_000
        ) -> ProfileData {
            var text = ""
            var symbols: [UInt: [SymbolFrame]] = [:]
            for map in maps {
                let start = String(map.start + shift, radix: 16)
                let limit = String(map.limit + shift, radix: 16)
                text += "\(start)-\(limit) r-xp \(String(map.offset, radix: 16)) 08:01 1 \(map.path)\n"
            }
            for pc in pcs {
                let address = UInt(maps[pc.mapping].start + shift) + pc.offset
                symbols[address] = pc.frames.map { frame($0.0, file: $0.1, line: $0.2) }
            }
            var builder = ProfileBuilder(
                sampleTypes: types,
                periodType: types[0],
                period: 1,
                timeNanos: timeNanos,
                processMappings: ProcessMaps.parse(text),
                symbolize: fakeSymbolizer(symbols)
            )
            for sample in samples {
                let stack = sample.stack.map { UInt(maps[pcs[$0].mapping].start + shift) + pcs[$0].offset + 1 }
                builder.addSample(stack: stack, values: sample.values, labels: sample.labels)
            }
            return builder.build()
        }

        static func randomSamples(_ rng: inout SplitMix64, count: Int) -> [(
            stack: [Int], values: [Int64], labels: [ProfileData.Label]
        )] {
            (0..<count).map { _ in
                let stack = (0..<Int.random(in: 1...5, using: &rng)).map { _ in
                    Int.random(in: 0..<pcs.count, using: &rng)
                }
                var labels: [ProfileData.Label] = []
                if Bool.random(using: &rng) {
                    labels.append(.init(key: "route", string: ["/a", "/b"].randomElement(using: &rng)!))
                }
                if Bool.random(using: &rng) {
                    labels.append(.init(key: "size", number: [64, 128].randomElement(using: &rng)!, unit: "bytes"))
                }
                if Bool.random(using: &rng) { labels.reverse() }
                let values: [Int64] = [
                    Int64.random(in: -2...5, using: &rng), Int64.random(in: -1000...100_000, using: &rng),
                ]
                return (stack, values, labels)
            }
        }
    }

    /// A sample as a person reads it: frames (with addresses relative to their mapping), labels
    /// in a fixed order, values.
    struct Reading: Hashable, CustomStringConvertible {
        var frames: [String]
        var labels: [String]
        var values: [Int64]
        var description: String { "\(values) \(labels) \(frames)" }
    }

    static func readings(_ profile: ProfileData) -> [Reading: Int] {
        var result: [Reading: Int] = [:]
        for sample in profile.samples {
            let frames = sample.locationIDs.flatMap { id -> [String] in
                let location = profile.location(id: id)!
                let mapping = profile.mapping(id: location.mappingID)
                let relative = location.address - (mapping?.memoryStart ?? 0)
                let prefix = "\(mapping?.filename ?? "-")+0x\(String(relative, radix: 16))"
                if location.lines.isEmpty { return [prefix] }
                return location.lines.map { line in
                    let function = profile.function(id: line.functionID)!
                    return "\(prefix) \(function.name) \(function.filename):\(line.line)"
                }
            }
            let labels = sample.labels.map { "\($0.key)=\($0.string ?? "\($0.number ?? 0) \($0.numberUnit ?? "")")" }
                .sorted()
            result[Reading(frames: frames, labels: labels, values: sample.values), default: 0] += 1
        }
        return result
    }

    // MARK: - Scale

    @Test func scaledRoundsHalfAwayFromZeroAndDropsSamplesThatBecomeZero() {
        let profile = ProfileData(
            sampleTypes: [Self.types[0]],
            samples: [1, 3, -3, 5, 0].map { .init(locationIDs: [], values: [$0]) }
        )
        #expect(profile.scaled(by: 0.5).samples.map { $0.values[0] } == [1, 2, -2, 3])
        #expect(profile.scaled(by: 0.05).samples.isEmpty)
        #expect(profile.scaled(by: 0.1).samples.map { $0.values[0] } == [1], "0.5 rounds away from zero")
        #expect(profile.scaled(by: -1).samples.map { $0.values[0] } == [-1, -3, 3, -5])
        #expect(profile.scaled(by: 1) == profile, "a ratio of 1 changes nothing, zero samples included")
    }

    @Test func scaledByColumnsKeepsSamplesByTheScaledColumnsOnly() throws {
        let profile = ProfileData(
            sampleTypes: Self.types,
            samples: [.init(locationIDs: [], values: [0, 5]), .init(locationIDs: [], values: [2, 0])]
        )
        // As Go's ScaleN: the first sample has a nonzero delay, but only `contentions` was scaled.
        #expect(try profile.scaled(by: [3, 1]).samples.map(\.values) == [[6, 0]])
        #expect(throws: PprofError.self) { try profile.scaled(by: [1]) }
    }

    @Test func scaledClampsInsteadOfTrapping() {
        let profile = ProfileData(
            sampleTypes: [Self.types[0]],
            samples: [.max, .min, 1].map { .init(locationIDs: [], values: [$0]) }
        )
        #expect(profile.scaled(by: 2).samples.map { $0.values[0] } == [.max, .min, 2])
        #expect(profile.scaled(by: -2).samples.map { $0.values[0] } == [.min, .max, -2])
        #expect(profile.scaled(by: .infinity).samples.map { $0.values[0] } == [.max, .min, .max])
        #expect(profile.scaled(by: .nan).samples.isEmpty)
    }

    // MARK: - Merge

    @Test func mergeSumsSamplesWithTheSameStackAndLabelsAcrossAddressSpaces() throws {
        let a = Program.profile(
            shift: 0,
            samples: [
                (
                    [0, 1, 2], [1, 100],
                    [.init(key: "route", string: "/a"), .init(key: "size", number: 64, unit: "bytes")]
                ),
                ([0, 1, 3], [1, 10], []),
                ([4, 5, 2], [2, 20], []),
            ],
            timeNanos: 5_000
        )
        let b = Program.profile(
            shift: 0x10000,
            samples: [
                ([4, 5, 2], [3, 30], []),
                // The same labels in another order: the same sample.
                (
                    [0, 1, 2], [2, 200],
                    [.init(key: "size", number: 64, unit: "bytes"), .init(key: "route", string: "/a")]
                ),
                ([0, 1, 2], [7, 700], [.init(key: "route", string: "/b")]),
            ],
            timeNanos: 3_000
        )
        let merged = try ProfileData(merging: [a, b])
        #expect(merged.samples.count == 4)
        #expect(merged.samples.map(\.values) == [[3, 300], [1, 10], [5, 50], [7, 700]])
        #expect(merged.mappings.count == 2, "the same binaries, loaded elsewhere, are one mapping each")
        #expect(merged.mappings[0].memoryStart == 0x400000, "the first profile's addresses are kept")
        #expect(merged.locations.count == Program.pcs.count)
        #expect(merged.functions.count == 5, "main.root at two lines is one function")
        #expect(merged.timeNanos == 3_000)
        try merged.validateReferences()
        #expect(try ProfileData(decoding: merged.encoded()) == merged)
    }

    @Test func mergeDropsSamplesThatSumToZeroAndWhatOnlyTheyUsed() throws {
        let a = Program.profile(shift: 0, samples: [([0, 2], [1, 10], []), ([4, 5], [2, 5], [])])
        let b = Program.profile(shift: 0, samples: [([0, 2], [-1, -10], []), ([1], [0, 0], [])])
        let merged = try ProfileData(merging: [a, b])
        #expect(merged.samples.map(\.values) == [[2, 5]])
        #expect(merged.resolvedSamples()[0].frames.map(\.function) == ["memcpy", ""])
        #expect(merged.locations.count == 2 && merged.functions.count == 1)
        // As in Go, the first profile's first mapping (the main binary) stays, used or not.
        #expect(merged.mappings.map(\.filename) == ["/app/server", "/lib/libc.so.6"])
    }

    @Test func mergeCombinesHeadersAsGoDoes() throws {
        var a = Program.profile(shift: 0, samples: [([0], [1, 1], [])], timeNanos: 0)
        a.durationNanos = 10
        a.period = 3
        a.comments = ["x", "y"]
        var b = Program.profile(shift: 0, samples: [([0], [1, 1], [])], timeNanos: 900)
        b.durationNanos = 5
        b.period = 7
        b.comments = ["y", "z"]
        b.defaultSampleType = "delay"
        let merged = try ProfileData(merging: [a, b])
        #expect(merged.timeNanos == 900 && merged.durationNanos == 15 && merged.period == 7)
        #expect(merged.comments == ["x", "y", "z"] && merged.defaultSampleType == "delay")
        #expect(merged.sampleTypes == Self.types && merged.periodType == Self.types[0])
    }

    @Test func mergeRefusesIncompatibleProfiles() {
        let a = Program.profile(shift: 0, samples: [])
        var otherTypes = a
        otherTypes.sampleTypes = [Self.types[1], Self.types[0]]
        var otherPeriod = a
        otherPeriod.periodType = nil
        #expect(throws: PprofError.self) { try ProfileData(merging: [a, otherTypes]) }
        #expect(throws: PprofError.self) { try ProfileData(merging: [a, otherPeriod]) }
        #expect(throws: PprofError.self) { try a.delta(since: otherTypes) }
        #expect(throws: PprofError.self) { try ProfileData(merging: []) }
    }

    @Test func mergeOfOneIsItsOwnCompaction() throws {
        var rng = SplitMix64(seed: 8)
        let profile = Program.profile(shift: 0, samples: Program.randomSamples(&rng, count: 60))
        let compacted = try ProfileData(merging: [profile])
        #expect(Self.readings(compacted) == Self.readings(try ProfileData(merging: [compacted])))
        #expect(compacted.samples.allSatisfy { !$0.values.allSatisfy { $0 == 0 } })
    }

    // MARK: - Delta

    @Test func deltaIsWhatChanged() throws {
        let before = Program.profile(
            shift: 0,
            samples: [([0, 2], [5, 500], []), ([1, 2], [1, 10], []), ([4], [2, 2], [])],
            timeNanos: 1_000_000_000
        )
        let after = Program.profile(
            shift: 0x2000,
            samples: [([0, 2], [5, 500], []), ([1, 2], [4, 40], []), ([3], [1, 1], [])],
            timeNanos: 31_000_000_000
        )
        let delta = try after.delta(since: before)
        let readings = delta.resolvedSamples().map { ($0.functionNames, $0.values) }
        #expect(readings.count == 3)
        #expect(readings.contains { $0.0 == ["inlined", "main.middle", "main.root"] && $0.1 == [3, 30] })
        #expect(readings.contains { $0.0 == ["memcpy"] && $0.1 == [-2, -2] })
        #expect(readings.contains { $0.0 == ["main.root"] && $0.1 == [1, 1] })
        #expect(delta.timeNanos == 31_000_000_000 && delta.durationNanos == 30_000_000_000)
    }

    // MARK: - Against google/pprof

    @Test(.enabled(if: GoTool.isAvailable, "needs the go toolchain"))
    func mergeAndDeltaAgreeWithGooglePprof() throws {
        var rng = SplitMix64(seed: 31)
        for round in 0..<3 {
            let a = Program.profile(shift: 0, samples: Program.randomSamples(&rng, count: 80), timeNanos: 1_000)
            let b = Program.profile(shift: 0x30000, samples: Program.randomSamples(&rng, count: 80), timeNanos: 2_000)
            let fileA = try Self.temporaryFile(a.encoded())
            let fileB = try Self.temporaryFile(b.encoded())
            defer {
                try? FileManager.default.removeItem(at: fileA)
                try? FileManager.default.removeItem(at: fileB)
            }
            let goMerged = try GoTool.run(["tool", "pprof", "-proto", "-symbolize=none", fileA.path, fileB.path])
            #expect(goMerged.status == 0, "\(goMerged.stderr)")
            let ours = try ProfileData(merging: [a, b])
            #expect(
                Self.readings(try ProfileData(decoding: goMerged.stdout)) == Self.readings(ours),
                "merge, round \(round)"
            )

            let goDelta = try GoTool.run([
                "tool", "pprof", "-proto", "-symbolize=none", "-base", fileA.path, fileB.path,
            ])
            #expect(goDelta.status == 0, "\(goDelta.stderr)")
            let ourDelta = try b.delta(since: a)
            #expect(
                Self.readings(try ProfileData(decoding: goDelta.stdout)) == Self.readings(ourDelta),
                "delta, round \(round)"
            )
            #expect(ourDelta.samples.count > 20)
        }
    }

    static func temporaryFile(_ bytes: [UInt8]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-\(UUID().uuidString).pb.gz")
        try Data(bytes).write(to: url)
        return url
    }

    // MARK: - Queries

    @Test func queriesResolveStacksAndTotals() throws {
        let profile = Program.profile(
            shift: 0,
            samples: [([1, 2], [2, 20], [.init(key: "route", string: "/a")]), ([5], [3, 30], [])]
        )
        #expect(profile.sampleTypeIndex(named: "delay") == 1 && profile.sampleTypeIndex(named: "nope") == nil)
        #expect(profile.total(of: "contentions") == 5 && profile.total(of: "delay") == 50)
        #expect(profile.total(of: "nope") == nil && profile.total(at: 7) == 0)
        let resolved = profile.resolvedSamples()
        #expect(resolved[0].label("route") == "/a" && resolved[1].label("route") == nil)
        let frames = resolved[0].frames
        #expect(frames.map(\.function) == ["inlined", "main.middle", "main.root"])
        #expect(frames.map(\.isInlined) == [true, false, false])
        #expect(frames.map(\.line) == [3, 20, 5])
        #expect(frames[0].address == 0x402000 && frames[1].address == 0x402000 && frames[2].address == 0x403000)
        #expect(frames.allSatisfy { $0.mappingFile == "/app/server" })
        #expect(frames[1].description == "main.middle /src/a.swift:20")
        #expect(profile.frames(of: profile.samples[1]) == resolved[1].frames)
        #expect(resolved[1].frames == [.init(function: "", address: 0x7f0000005000, mappingFile: "/lib/libc.so.6")])
    }
}
