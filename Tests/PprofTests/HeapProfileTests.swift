import Foundation
import Testing

@testable import Pprof

/// The heap and allocs profiles. This test process does not link PprofHooks, so every scenario with
/// sampling runs in `pprof-testhelper` (which does) and is checked on the profiles it writes.
@Suite(.serialized) struct HeapProfileTests {
    // MARK: - Without the hooks (this process)

    @Test func withoutHooksHeapAndAllocsSayNotInstalled() throws {
        #expect(!HeapProfile.isInstalled)
        for name in ["heap", "allocs"] {
            let profile = try #require(Profile.lookup(name))
            #expect(profile.count == 0)
            for debug in [0, 1] {
                let error = #expect(throws: PprofError.self) { try profile.write(to: ProfileBuffer(), debug: debug) }
                #expect(error?.description.contains("allocation sampling is not installed") == true)
                #expect(error?.description.contains("PprofHooks") == true)
            }
        }
        #expect(throws: PprofError.self) { try HeapProfile.write(to: ProfileBuffer()) }
    }

    @Test func unsamplingFollowsGo() {
        // Go's scaleHeapSample: 1 / (1 - e^(-avg/rate)).
        let scaled = HeapSnapshot.scale(count: 2, bytes: 1 << 20, rate: 512 << 10)
        #expect(scaled.count == Int64(2 / (1 - exp(-1.0))))
        #expect(scaled.bytes == Int64(Double(1 << 20) / (1 - exp(-1.0))))
        #expect(HeapSnapshot.scale(count: 3, bytes: 300, rate: 1) == (3, 300))
        #expect(HeapSnapshot.scale(count: 0, bytes: 0, rate: 512 << 10) == (0, 0))
        let small = HeapSnapshot.scale(count: 1, bytes: 64, rate: 512 << 10)
        #expect(abs(Double(small.bytes) - 524_288) < 100)  // a 64-byte sample stands for ~rate bytes
    }

    @Test func allocatorFramesAreRecognized() {
        for name in [
            "swift_slowAlloc", "swift_allocObject",
            "swift::swift_slowAllocTyped(unsigned long, unsigned long, unsigned long long)",
            "__swift_allocObject_", "operator new(unsigned long)", "swift_allocBox",
        ] {
            #expect(HeapSnapshot.isAllocatorFrame(name), "\(name)")
        }
        for name in [
            "main", "malloc_site", "pprof_testhelper.heapSiteCalloc(count: Swift.Int, size: Swift.Int)", "swift_retain",
        ] {
            #expect(!HeapSnapshot.isAllocatorFrame(name), "\(name)")
        }
    }

    // MARK: - Sampling in a child process

    @Test func inuseSpacePerSiteWithinTenPercentAndFallsAfterFree() throws {
        let run = try Scenario("heap-sites")
        let peak = try run.profile("peak.pb.gz")
        #expect(peak.periodType == ProfileData.ValueType(type: "space", unit: "bytes"))
        #expect(peak.period == 524_288)
        #expect(
            peak.sampleTypes.map(\.description) == [
                "alloc_objects/count", "alloc_space/bytes", "inuse_objects/count", "inuse_space/bytes",
            ]
        )
        #expect(peak.defaultSampleType == "")
        let after = try run.profile("after.pb.gz")
        #expect(run.truths.count == 3)
        for truth in run.truths {
            let trueBytes = Double(truth.size * truth.inuseObjects)
            let samples = peak.samples(atSite: truth.site, size: truth.size)
            let estimate = Double(samples.reduce(0) { $0 + $1.values[3] })
            print(
                "heap-sites \(truth.site): inuse_space \(Int(estimate)) vs true \(Int(trueBytes)) (\(estimate / trueBytes))"
            )
            #expect(abs(estimate / trueBytes - 1) <= 0.10, "\(truth.site): \(estimate) vs \(trueBytes)")
            // The whole user call chain, leaf first, in order, below the trimmed allocator frames.
            let chain = try #require(samples.first.map { peak.functionNames(of: $0) })
            let expected = [
                truth.site, "heapSitesMiddle", "heapSitesOuter", "HeapScenarios.sites", "pprof_testhelper_main",
            ]
            var position = 0
            for name in chain where position < expected.count && name.contains(expected[position]) { position += 1 }
            #expect(position == expected.count, "\(truth.site) chain: \(chain)")
            #expect(chain.first?.contains(truth.site) == true)
            let left = Double(after.samples(atSite: truth.site, size: truth.size).reduce(0) { $0 + $1.values[3] })
            #expect(left <= 0.05 * estimate, "\(truth.site) after free: \(left)")
        }
        let text = try run.text("peak.txt")
        #expect(text.hasPrefix("heap profile: "))
        #expect(text.contains("@ heap/1048576\n"))
    }

    @Test func allocSpaceOfFourGiBWithinFivePercent() throws {
        let run = try Scenario("heap-churn")
        let profile = try run.profile("churn.pb.gz")
        let truth = try #require(run.truths.first)
        let samples = profile.samples(atSite: "heapSiteChurn", size: nil)
        let estimate = Double(samples.reduce(0) { $0 + $1.values[1] })
        let inUse = samples.reduce(0) { $0 + $1.values[3] }
        print(
            "heap-churn: alloc_space \(Int(estimate)) vs true \(truth.inuseObjects) (\(estimate / Double(truth.inuseObjects)))"
        )
        #expect(abs(estimate / Double(truth.inuseObjects) - 1) <= 0.05)
        #expect(Double(inUse) <= 0.01 * estimate)
    }

    @Test func rateOneCountsEveryEntryPointExactly() throws {
        let run = try Scenario("heap-exact")
        let profile = try run.profile("exact.pb.gz")
        #expect(profile.period == 1)
        #expect(run.truths.count == 10)
        for truth in run.truths {
            let samples = profile.samples(atSite: truth.site, size: truth.size)
            let sums = (0..<4).map { index in samples.reduce(0) { $0 + $1.values[index] } }
            #expect(
                sums == [
                    truth.allocObjects, truth.allocObjects * truth.size, truth.inuseObjects,
                    truth.inuseObjects * truth.size,
                ],
                "\(truth.site): \(sums)"
            )
        }
        let allocs = try run.profile("exact-allocs.pb.gz")
        #expect(allocs.defaultSampleType == "alloc_space")

        let text = try run.text("exact.txt")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.first?.wholeMatch(of: /heap profile: \d+: \d+ \[\d+: \d+\] @ heap\/2/) != nil)
        // Unscaled sampled counts per record, as Go writes them, with the site's frames.
        let record = try #require(lines.firstIndex { $0.hasPrefix("700: 70000 [1000: 100000] @ 0x") })
        #expect(lines[record + 1].contains("heapExactMalloc"))
        for key in ["# malloc statistics", "# Arena = ", "# InUse = ", "# RSS = ", "# MaxRSS = ", "# SampleRate = 1"] {
            #expect(text.contains(key), "\(key)")
        }
        if CPUTestSupport.goAvailable {
            let raw = try CPUTestSupport.go([
                "tool", "pprof", "-raw", run.directory.appendingPathComponent("exact.txt").path,
            ])
            #expect(raw.contains("inuse_space/bytes"), "\(raw)")
            let top = try CPUTestSupport.go([
                "tool", "pprof",
                "-top", "-sample_index=inuse_objects", run.directory.appendingPathComponent("exact.pb.gz").path,
            ])
            #expect(top.contains("700") && top.contains("heapExactMalloc"), "\(top)")
        }
    }

    @Test func sixtyFourThreadsForTenSecondsWhileWritingProfiles() throws {
        let run = try Scenario("heap-stress", ["10", "64"])
        let stats = try #require(run.stdout.split(separator: "\n").first { $0.hasPrefix("stats ") })
        let fields = stats.split(separator: " ")
        var values: [String: UInt64] = [:]
        for index in stride(from: 1, to: fields.count - 1, by: 2) {
            values[String(fields[index])] = UInt64(fields[index + 1])
        }
        print(stats)
        #expect((values["writes"] ?? 0) >= 3)
        // Each worker keeps at most 64 objects live; after they have freed everything the table holds
        // only the few sampled objects the rest of the process keeps.
        #expect((values["maxlive"] ?? .max) <= 64 * 64 + 1024)
        #expect((values["live"] ?? .max) <= 1024)
        #expect(values["untracked"] == 0)
        #expect(values["dropped"] == 0)
        #expect((values["inserted"] ?? 0) > 10_000)
        _ = try run.profile("stress.pb.gz")
    }

    @Test func threadExitDestructorsAndForkedChildrenAreSampled() throws {
        let run = try Scenario("heap-lifecycle", environment: ["PPROF_HEAP_SAMPLE_RATE": "1"])
        let profile = try run.profile("lifecycle.pb.gz")
        let exits = profile.samples(atSite: "heapThreadExitDestructor", size: 777)
        #expect(exits.reduce(0) { $0 + $1.values[2] } == 100)
        for child in 0..<4 {
            let childProfile = try run.profile("child-\(child).pb.gz")
            let site = childProfile.samples(atSite: "heapForkChildSite", size: 123)
            #expect(site.reduce(0) { $0 + $1.values[2] } == 10, "child \(child)")
        }
    }

    @Test func preloadLibraryProfilesAnUnmodifiedSwiftProgram() throws {
        let directory = try Scenario.makeDirectory()
        let build = ChildProcess.helperURL.deletingLastPathComponent()
        let library = build.appendingPathComponent("libPprofPreload.so")
        let program = build.appendingPathComponent("pprof-plain-workload")
        try #require(FileManager.default.fileExists(atPath: library.path), "build libPprofPreload.so first")
        let all = directory.appendingPathComponent("all")
        try FileManager.default.createDirectory(at: all, withIntermediateDirectories: true)
        let result = try ChildProcess.run(
            "3",
            environment: [
                "LD_PRELOAD": library.path,
                "PPROF_HEAP_PROFILE": directory.appendingPathComponent("heap.%p.pb.gz").path,
                "PPROF_PROFILE_DIR": all.path,
            ],
            executable: program
        )
        #expect(result.status == 0 && !result.crashed, "\(result.stderr)")
        #expect(result.stdout.contains("elapsed "))
        let heapFile = try #require(
            try FileManager.default.contentsOfDirectory(atPath: directory.path).first { $0.hasPrefix("heap.") }
        )
        #expect(!heapFile.contains("%p"))
        let profile = try ProfileData(decoding: Array(try Data(contentsOf: directory.appendingPathComponent(heapFile))))
        let names = Set(profile.functions.map(\.name))
        #expect(names.contains { $0.contains("buildRecords") })
        #expect(names.contains { $0.contains("Record.__allocating_init") })
        // Still live at exit: in use, below the standard library's array allocation frames.
        let retained = profile.samples.filter {
            profile.functionNames(of: $0).contains { $0.contains("keepLargeBuffers") }
        }
        #expect(retained.reduce(0) { $0 + $1.values[3] } > 0)
        let written = try FileManager.default.contentsOfDirectory(atPath: all.path)
        #expect(written.contains { $0.hasPrefix("heap.") && $0.hasSuffix(".pb.gz") })
        let allocsFile = try #require(written.first { $0.hasPrefix("allocs.") })
        let allocs = try ProfileData(decoding: Array(try Data(contentsOf: all.appendingPathComponent(allocsFile))))
        #expect(allocs.defaultSampleType == "alloc_space")
        if CPUTestSupport.goAvailable {
            let top = try CPUTestSupport.go([
                "tool", "pprof",
                "-top", "-sample_index=alloc_space", directory.appendingPathComponent(heapFile).path,
            ])
            #expect(top.contains("buildRecords"), "\(top)")
        }
    }
}

/// One run of a helper scenario in a fresh directory, with its ground truth.
private struct Scenario {
    struct Truth {
        var site: String
        var size: Int64
        var allocObjects: Int64
        var inuseObjects: Int64
    }

    let directory: URL
    let stdout: String
    let truths: [Truth]

    init(_ name: String, _ arguments: [String] = [], environment: [String: String] = [:]) throws {
        directory = try Self.makeDirectory()
        let result = try ChildProcess.run(name, [directory.path] + arguments, environment: environment)
        stdout = result.stdout
        try #require(result.status == 0 && !result.crashed, "\(name) failed: \(result.stdout) \(result.stderr)")
        truths = result.stdout.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 4, fields[0] == "truth" else { return nil }
            let numbers = fields.dropFirst(2).compactMap { Int64($0) }
            return Truth(
                site: String(fields[1]),
                size: numbers[0],
                allocObjects: numbers[1],
                inuseObjects: numbers.last!
            )
        }
    }

    static func makeDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-heap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    func profile(_ file: String) throws -> ProfileData {
        try ProfileData(decoding: Array(try Data(contentsOf: directory.appendingPathComponent(file))))
    }

    func text(_ file: String) throws -> String {
        String(decoding: try Data(contentsOf: directory.appendingPathComponent(file)), as: UTF8.self)
    }
}

extension ProfileData {
    /// Function names of a sample's frames, leaf first (inlined frames innermost first).
    func functionNames(of sample: Sample) -> [String] {
        let locationsByID = Dictionary(uniqueKeysWithValues: locations.map { ($0.id, $0) })
        let functionsByID = Dictionary(uniqueKeysWithValues: functions.map { ($0.id, $0.name) })
        return sample.locationIDs.flatMap { id in
            (locationsByID[id]?.lines ?? []).map { functionsByID[$0.functionID] ?? "" }
        }
    }

    /// Samples whose leaf frame (after the allocator frames are trimmed) is in `site`, optionally of
    /// one allocation size (the `bytes` label).
    func samples(atSite site: String, size: Int64?) -> [Sample] {
        samples.filter { sample in
            guard functionNames(of: sample).first?.contains(site) == true else { return false }
            guard let size else { return true }
            return sample.labels.contains { $0.key == "bytes" && $0.number == size }
        }
    }
}
