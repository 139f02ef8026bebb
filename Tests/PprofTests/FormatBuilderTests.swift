import Foundation
import Glibc
import Testing

@_spi(Benchmarks) @testable import Pprof

/// `ProfileBuilder`: locations, lines, functions, mappings and their flags.
@Suite struct FormatBuilderTests {
    private static let countType = ProfileData.ValueType(type: "things", unit: "count")

    private func builder(
        maps: String,
        frames: [UInt: [SymbolFrame]],
        calls: SymbolizeCalls? = nil
    ) -> ProfileBuilder {
        ProfileBuilder(
            sampleTypes: [Self.countType],
            periodType: Self.countType,
            period: 1,
            processMappings: ProcessMaps.parse(maps),
            symbolize: { address in
                calls?.record(address)
                return frames[address] ?? []
            }
        )
    }

    private let maps = """
        00400000-00401000 r--p 00000000 08:01 100 /app/server
        00401000-00500000 r-xp 00001000 08:01 100 /app/server
        00500000-00600000 rw-p 00100000 08:01 100 /app/server
        10000000-10010000 r-xp 00000000 00:00 0
        7f0000000000-7f0000100000 r-xp 00020000 08:01 200 /lib/libc.so.6
        7f0000200000-7f0000300000 r-xp 00000000 08:01 300 /opt/my lib/libspace.so (deleted)
        7fff00000000-7fff00002000 r-xp 00000000 00:00 0 [vdso]
        """

    @Test func eachDistinctEntryIsSymbolizedOnceIntoOneLocation() throws {
        let calls = SymbolizeCalls()
        var builder = builder(
            maps: maps,
            frames: [0x401000: [frame("leaf")], 0x402000: [frame("middle")], 0x403000: [frame("root")]],
            calls: calls
        )
        builder.addSample(stack: [0x401001, 0x402001, 0x403001], values: [1])
        builder.addSample(stack: [0x401001, 0x403001], values: [2])
        builder.addSample(stack: [0x402001, 0x402001, 0x403001], values: [3])
        let profile = builder.build()
        #expect(calls.addresses.sorted() == [0x401000, 0x402000, 0x403000])
        #expect(profile.locations.map(\.address) == [0x401000, 0x402000, 0x403000])
        #expect(profile.locations.map(\.id) == [1, 2, 3])
        #expect(profile.samples.map(\.locationIDs) == [[1, 2, 3], [1, 3], [2, 2, 3]])
        #expect(profile.samples.map(\.values) == [[1], [2], [3]])
        #expect(profile.resolvedSamples()[0].functionNames == ["leaf", "middle", "root"])
        try profile.validateReferences()
    }

    @Test func samplesOfOneStackAreGroupedInFirstSeenOrder() throws {
        let frames: [UInt: [SymbolFrame]] = [0x401000: [frame("a")], 0x402000: [frame("b")], 0x403000: [frame("c")]]
        let stacks: [[UInt]] = [
            [0x401001], [0x402001, 0x401001], [0x401001], [0x403001], [0x402001, 0x401001], [0x401001],
        ]
        var grouped = builder(maps: maps, frames: frames)
        var inOrder = builder(maps: maps, frames: frames)
        inOrder.groupsSamplesByStack = false
        for (index, stack) in stacks.enumerated() {
            grouped.addSample(stack: stack, values: [Int64(index)])
            inOrder.addSample(stack: stack, values: [Int64(index)])
        }
        #expect(grouped.build().samples.map { $0.values[0] } == [0, 2, 5, 1, 4, 3])
        #expect(inOrder.build().samples.map { $0.values[0] } == [0, 1, 2, 3, 4, 5])
        #expect(grouped.build().samples.map(\.locationIDs) == [[1], [1], [1], [2, 1], [2, 1], [3]])
        // Count profiles keep Go's order (count, then key) even when two groups share a stack.
        let count = CountProfile(
            name: "c",
            records: [
                .init(stack: [0x401001], labels: [("k", "a")]), .init(stack: [0x401001], labels: [("k", "a")]),
                .init(stack: [0x402001]), .init(stack: [0x402001]), .init(stack: [0x401001], labels: [("k", "b")]),
            ]
        )
        let data = count.profileData(processMappings: ProcessMaps.parse(maps), symbolize: fakeSymbolizer(frames))
        #expect(data.samples.map { $0.values[0] } == [2, 2, 1])
        #expect(data.resolvedSamples().map { $0.functionNames[0] } == ["a", "b", "a"])
    }

    @Test func addressTableAgreesWithADictionary() {
        var rng = SplitMix64(seed: 3)
        var table = AddressTable(capacity: 4)
        var reference: [UInt: UInt64] = [:]
        for step in 0..<20_000 {
            let key: UInt = [
                0, 1, .max, .max - 1, UInt.random(in: 0...5000, using: &rng),
                UInt.random(in: 0...UInt.max, using: &rng),
            ]
            .randomElement(using: &rng)!
            if step % 3 == 0 {
                table.insert(key, UInt64(step))
                reference[key] = UInt64(step)
            }
            #expect(table[key] == reference[key])
        }
    }

    @Test func inlinedFramesAreLinesInnermostFirstAndFunctionsAreShared() throws {
        var builder = builder(
            maps: maps,
            frames: [
                0x401000: [
                    frame("inlinedHelper", file: "/src/a.swift", line: 10),
                    frame("caller", file: "/src/a.swift", line: 20),
                ],
                0x402000: [frame("caller", file: "/src/a.swift", line: 25)],
                // Same name and system name in another file: a different function.
                0x403000: [frame("caller", file: "/src/b.swift", line: 5)],
            ]
        )
        builder.addSample(stack: [0x401001, 0x402001, 0x403001], values: [1])
        let profile = builder.build()
        #expect(profile.locations[0].lines.count == 2)
        let frames = profile.frames(of: profile.samples[0])
        #expect(frames.map(\.function) == ["inlinedHelper", "caller", "caller", "caller"])
        #expect(frames.map(\.line) == [10, 20, 25, 5])
        #expect(frames.map(\.isInlined) == [true, false, false, false])
        #expect(frames.map(\.address) == [0x401000, 0x401000, 0x402000, 0x403000])
        #expect(profile.functions.map(\.name) == ["inlinedHelper", "caller", "caller"])
        #expect(profile.functions.map(\.filename) == ["/src/a.swift", "/src/a.swift", "/src/b.swift"])
    }

    @Test func mappingsFollowGosRules() throws {
        var builder = builder(maps: maps, frames: [:])
        let entries: [UInt] = [
            0x401000 + 1,  // first byte of the server's text
            0x500000,  // its last byte (entry − 1 = 0x4fffff)
            0x500001,  // just past it: the data mapping is not executable
            0x10000010,  // anonymous executable memory: no mapping
            0x7f0000000101, 0x7f0000200101, 0x7fff00000101,
            0x3ff001,  // below every mapping
        ]
        for entry in entries { builder.addSample(stack: [entry], values: [1]) }
        let profile = builder.build()
        #expect(
            profile.mappings.map(\.filename) == ["/app/server", "/lib/libc.so.6", "/opt/my lib/libspace.so", "[vdso]"]
        )
        #expect(profile.mappings.map(\.id) == [1, 2, 3, 4])
        #expect(profile.mappings[0].memoryStart == 0x401000 && profile.mappings[0].memoryLimit == 0x500000)
        #expect(profile.mappings[0].fileOffset == 0x1000 && profile.mappings[1].fileOffset == 0x20000)
        #expect(profile.locations.map(\.mappingID) == [1, 1, 0, 0, 2, 3, 4, 0])
    }

    @Test func mappingLookupAgreesWithALinearScan() {
        var rng = SplitMix64(seed: 11)
        var text = ""
        var ranges: [Range<UInt64>] = []
        var start: UInt64 = 0x10000
        for index in 0..<300 {
            start += UInt64.random(in: 0...0x10000, using: &rng) & ~0xfff
            let size = UInt64.random(in: 1...0x40, using: &rng) * 0x1000
            ranges.append(start..<start + size)
            text +=
                "\(String(start, radix: 16))-\(String(start + size, radix: 16)) r-xp 00000000 08:01 \(index + 1) /lib/l\(index).so\n"
            start += size
        }
        var builder = builder(maps: text, frames: [:])
        var expected: [UInt64] = []
        for _ in 0..<5000 {
            let address = UInt64.random(in: 0...(start + 0x10000), using: &rng)
            expected.append(ranges.firstIndex { $0.contains(address) }.map { UInt64($0 + 1) } ?? 0)
            builder.addSample(stack: [UInt(address + 1)], values: [1])
        }
        let profile = builder.build()
        let mappingIDs = profile.samples.map { profile.locations[Int($0.locationIDs[0] - 1)].mappingID }
        #expect(mappingIDs == expected)
        #expect(Set(expected).count > 250, "most mappings were hit")
    }

    @Test func mappingFlagsSayWhatEveryLocationHad() throws {
        let maps = """
            1000-2000 r-xp 00000000 08:01 1 /full
            3000-4000 r-xp 00000000 08:01 2 /nofile
            5000-6000 r-xp 00000000 08:01 3 /noline
            7000-8000 r-xp 00000000 08:01 4 /nosymbol
            9000-a000 r-xp 00000000 08:01 5 /unused
            b000-c000 r-xp 00000000 08:01 6 /partial
            """
        var builder = builder(
            maps: maps,
            frames: [
                0x1100: [frame("a", file: "a.swift", line: 1), frame("b", file: "a.swift", line: 2)],
                0x1200: [frame("c", file: "a.swift", line: 3)],
                0x3100: [frame("d", file: "", line: 0)],
                0x5100: [frame("e", file: "e.swift", line: 0)],
                0x7100: [],
                0xb100: [frame("f", file: "f.swift", line: 4)],
                0xb200: [],
            ]
        )
        for address: UInt in [0x1100, 0x1200, 0x3100, 0x5100, 0x7100, 0xb100, 0xb200] {
            builder.addSample(stack: [address + 1], values: [1])
        }
        let flags = builder.build().mappings.map {
            [$0.hasFunctions, $0.hasFilenames, $0.hasLineNumbers, $0.hasInlineFrames]
        }
        #expect(flags[0] == [true, true, true, true])
        #expect(flags[1] == [true, false, false, false])
        #expect(flags[2] == [true, true, false, false])
        #expect(flags[3] == [false, false, false, false])
        #expect(flags[4] == [false, false, false, false])
        #expect(flags[5] == [false, false, false, false])
    }

    @Test func oneFakeMappingWhenThereAreNone() throws {
        var builder = builder(maps: "", frames: [0x1000: [frame("f", file: "f.swift", line: 1)]])
        builder.addSample(stack: [0x1001, SyntheticFrame.truncatedStack.rawValue], values: [1])
        let profile = builder.build()
        #expect(
            profile.mappings == [
                .init(
                    id: 1,
                    memoryStart: 0,
                    memoryLimit: 0,
                    fileOffset: 0,
                    filename: "",
                    buildID: "",
                    hasFunctions: true,
                    hasFilenames: true,
                    hasLineNumbers: true,
                    hasInlineFrames: true
                )
            ]
        )
        #expect(profile.locations.allSatisfy { $0.mappingID == 1 })
    }

    @Test func syntheticFramesArePseudoFunctionsWithoutSymbolization() throws {
        let calls = SymbolizeCalls()
        var builder = builder(maps: maps, frames: [:], calls: calls)
        let stack = SyntheticFrame.allCases.map(\.rawValue) + [0x800]
        builder.addSample(stack: stack, values: [1])
        let profile = builder.build()
        #expect(calls.addresses.isEmpty)
        let names = profile.resolvedSamples()[0].functionNames
        #expect(names == SyntheticFrame.allCases.map(\.functionName) + ["pprof.unknownFrame"])
        #expect(
            names.starts(with: [
                "pprof.lostSamples", "pprof.truncatedStack", "pprof.unwindStopped", "pprof.lostProfileEvent",
            ])
        )
        #expect(profile.locations.allSatisfy { $0.address == 0 && $0.mappingID == 0 })
    }

    @Test func realProcessMappingHasTheExecutableAndItsBuildID() throws {
        var builder = ProfileBuilder(sampleTypes: [Self.countType], periodType: Self.countType, period: 1)
        let address = unsafeBitCast(builderTestMarker as @convention(c) () -> Void, to: UInt.self)
        builder.addSample(stack: [address + 4], values: [1])
        let profile = builder.build()
        let location = profile.locations[0]
        let mapping = try #require(profile.mapping(id: location.mappingID))
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        #expect(mapping.filename == executable)
        #expect(profile.mappings.first?.filename == executable, "the main executable comes first")
        let buildID = try #require(try ELFFile(path: executable).buildID)
        #expect(mapping.buildID == buildID)
        #expect(buildID.count >= 16)
        #expect(profile.frames(of: profile.samples[0]).first?.function.contains("builderTestMarker") == true)
        #expect(mapping.hasFunctions)
        // Libraries are there too, with their own build IDs.
        #expect(profile.mappings.contains { $0.filename.contains("libc.so") && !$0.buildID.isEmpty })
    }

    @Test func imagesLoadedAfterTheBuilderWasMadeAreFound() throws {
        guard !ProcessMaps.current().contains(where: { $0.path.contains("libcrypt.so") }) else {
            print("skipped: libcrypt.so.1 is already loaded")
            return
        }
        var builder = ProfileBuilder(sampleTypes: [Self.countType], periodType: Self.countType, period: 1)
        guard let handle = dlopen("libcrypt.so.1", RTLD_NOW), let symbol = dlsym(handle, "crypt") else {
            print("skipped: libcrypt.so.1 is not available")
            return
        }
        builder.addSample(stack: [UInt(bitPattern: symbol) + 8], values: [1])
        let profile = builder.build()
        let mapping = try #require(profile.mapping(id: profile.locations[0].mappingID))
        #expect(mapping.filename.contains("libcrypt.so"))
        #expect(
            profile.mappings.first?.filename == URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        )
    }

    @Test func buildIDsAreCachedPerFileAndInode() throws {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let cache = BuildIDCache()
        let first = cache.buildID(forPath: executable, inode: 1)
        #expect(!first.isEmpty)
        #expect(cache.buildID(forPath: executable, inode: 1) == first)
        #expect(cache.buildID(forPath: "[vdso]") == "")
        #expect(cache.buildID(forPath: "/nonexistent/file") == "")
    }
}

/// Records the addresses a builder asked to symbolize.
final class SymbolizeCalls: @unchecked Sendable {
    private(set) var addresses: [UInt] = []
    func record(_ address: UInt) { addresses.append(address) }
}

@_cdecl("builderTestMarker") @inline(never) func builderTestMarker() {}
