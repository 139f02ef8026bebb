import Testing

@_spi(Benchmarks) @testable import Pprof

/// The protobuf writer's bytes: Go's wire habits, nested lengths, chunked streaming and gzip.
@Suite struct FormatWireTests {
    private func raw(_ profile: ProfileData) throws -> [UInt8] {
        try profile.encoded(compressed: false)
    }

    @Test func valueTypeIsWrittenAsGoWritesIt() throws {
        let profile = ProfileData(sampleTypes: [.init(type: "samples", unit: "count")])
        // Profile.sample_type {type=1, unit=2}: both fields always present.
        #expect(Array(try raw(profile).prefix(6)) == [0x0a, 0x04, 0x08, 0x01, 0x10, 0x02])
    }

    @Test func valueTypeWithEmptyStringsStillWritesBothFields() throws {
        let profile = ProfileData(sampleTypes: [.init(type: "", unit: "")])
        #expect(Array(try raw(profile).prefix(6)) == [0x0a, 0x04, 0x08, 0x00, 0x10, 0x00])
    }

    @Test func cpuSampleIsValuesThenUnpackedLocations() throws {
        let profile = ProfileData(
            sampleTypes: [.init(type: "samples", unit: "count"), .init(type: "cpu", unit: "nanoseconds")],
            samples: [.init(locationIDs: [1, 2], values: [1, 10_000_000])]
        )
        let bytes = try raw(profile)
        // After the two sample types (6 bytes each): the worked example of the reference notes.
        #expect(
            Array(bytes[12..<25]) == [0x12, 0x0b, 0x10, 0x01, 0x10, 0x80, 0xad, 0xe2, 0x04, 0x08, 0x01, 0x08, 0x02]
        )
    }

    @Test func moreThanTwoIntegersArePacked() throws {
        let types = (0..<4).map { ProfileData.ValueType(type: "t\($0)", unit: "u") }
        let profile = ProfileData(
            sampleTypes: types,
            samples: [.init(locationIDs: [7, 8, 9], values: [1, 2, 3, 300])]
        )
        let bytes = try raw(profile)
        // After four 6-byte sample types: values packed (300 is ac 02), then location IDs packed.
        let expected: [UInt8] = [0x12, 0x0c, 0x12, 0x05, 0x01, 0x02, 0x03, 0xac, 0x02, 0x0a, 0x03, 0x07, 0x08, 0x09]
        #expect(Array(bytes[24..<38]) == expected)
    }

    @Test func negativeValuesAreTwosComplementNotZigzag() throws {
        let profile = ProfileData(
            sampleTypes: [.init(type: "a", unit: "b")],
            samples: [.init(locationIDs: [], values: [-1])]
        )
        let bytes = try raw(profile)
        #expect(Array(bytes[6..<19]) == [0x12, 0x0b, 0x10] + [UInt8](repeating: 0xff, count: 9) + [0x01])
    }

    @Test func zeroValuedOptionalFieldsAreOmitted() throws {
        var profile = ProfileData()
        profile.mappings = [.init(id: 1, memoryStart: 0, memoryLimit: 0, fileOffset: 0, filename: "", buildID: "")]
        profile.locations = [.init(id: 1, mappingID: 0, address: 0, lines: [.init(functionID: 1, line: 0)])]
        profile.functions = [.init(id: 1, name: "", systemName: "", filename: "")]
        let bytes = try raw(profile)
        #expect(bytes.starts(with: [0x22, 0x06, 0x08, 0x01, 0x22, 0x02, 0x08, 0x01]))  // location, its line
        #expect(Array(bytes[8..<12]) == [0x2a, 0x02, 0x08, 0x01])  // function
        #expect(Array(bytes[12..<16]) == [0x1a, 0x02, 0x08, 0x01])  // mapping
        #expect(Array(bytes[16...]) == [0x32, 0x00])  // the string table: just ""
    }

    @Test func stringTableComesLastStartsEmptyAndHasNoDuplicates() throws {
        let profile = ProfileData(
            sampleTypes: [.init(type: "x", unit: "count"), .init(type: "y", unit: "count")],
            functions: [.init(id: 1, name: "x", systemName: "x", filename: "f.swift")]
        )
        let bytes = try raw(profile)
        let table = Wire.strings(["x", "count", "y", "f.swift"])
        #expect(Array(bytes.suffix(table.count)) == table)
    }

    @Test func longMessagesGetMultiByteLengths() throws {
        let ids = (1...10_000).map { UInt64($0) }
        let longName = String(repeating: "n", count: 200)
        let profile = ProfileData(
            sampleTypes: [.init(type: "a", unit: "b")],
            samples: [.init(locationIDs: ids, values: [5], labels: [.init(key: longName, string: longName + "v")])],
            locations: ids.map { .init(id: $0, mappingID: 0, address: $0 * 0x1000, lines: []) }
        )
        let bytes = try raw(profile)
        #expect(bytes.count > 20_000)
        // The sample follows the 6-byte sample type; its body needs a 3-byte length.
        #expect(bytes[6] == 0x12)
        #expect(bytes[7] & 0x80 != 0 && bytes[8] & 0x80 != 0 && bytes[9] & 0x80 == 0)
        #expect(try ProfileData(decoding: bytes) == profile)
    }

    @Test func samplesSharingOneIDArrayEncodeCorrectly() throws {
        // The encoder copies the previous sample's encoded IDs when the array storage is the same.
        let shared: [UInt64] = [1, 2, 3, 200]
        let sameContentOtherStorage = Array(shared)
        let profile = ProfileData(
            sampleTypes: [.init(type: "a", unit: "b")],
            samples: [
                .init(locationIDs: shared, values: [1]), .init(locationIDs: shared, values: [2]),
                .init(locationIDs: [4, 1], values: [3]), .init(locationIDs: shared, values: [4]),
                .init(locationIDs: sameContentOtherStorage, values: [5]), .init(locationIDs: [], values: [6]),
                .init(locationIDs: [], values: [7]), .init(locationIDs: [2], values: [8]),
            ],
            locations: [1, 2, 3, 4, 200].map { .init(id: $0, mappingID: 0, address: $0, lines: []) }
        )
        for chunkSize in [1, 64 * 1024] {
            var bytes: [UInt8] = []
            try profile.encode(compressed: false, chunkSize: chunkSize) { bytes += $0 }
            #expect(try ProfileData(decoding: bytes) == profile)
        }
    }

    @Test func chunkedEncodingIsIdenticalToWhole() throws {
        let profile = RandomProfiles.profile(seed: 42)
        let whole = try raw(profile)
        for chunkSize in [1, 7, 100, 4096] {
            var chunks: [[UInt8]] = []
            try profile.encode(compressed: false, chunkSize: chunkSize) { chunks.append(Array($0)) }
            #expect(chunks.joined().elementsEqual(whole))
            // Chunks end at message boundaries once they reach the chunk size.
            #expect(chunks.dropLast().allSatisfy { $0.count >= chunkSize })
            if whole.count > 2 * chunkSize { #expect(chunks.count > 1) }
        }
    }

    @Test func gzipHeaderIsGosAndSinkGetsBoundedChunks() throws {
        var profile = ProfileData(sampleTypes: [.init(type: "a", unit: "b")])
        var rng = SplitMix64(seed: 7)
        // Incompressible enough that the output spans several 64 KiB chunks.
        profile.functions = (1...20_000).map {
            .init(
                id: UInt64($0),
                name: "f\(UInt64.random(in: 0...UInt64.max, using: &rng))",
                systemName: "",
                filename: ""
            )
        }
        let sink = ChunkRecordingSink()
        try profile.write(to: sink)
        let sizes = sink.chunkSizes
        #expect(sizes.count > 2)
        #expect(sizes.allSatisfy { $0 > 0 && $0 <= 64 * 1024 })
        let bytes = sink.bytes
        // gzip magic, deflate, no flags (no name), zero mtime.
        #expect(Array(bytes.prefix(8)) == [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00])
        #expect(try ProfileData(decoding: bytes) == profile)
        #expect(try Zlib.inflate(bytes.withUnsafeBytes { $0 }) == (try raw(profile)))
    }

    @Test func readsBothPackedAndUnpackedIntegers() throws {
        let sampleType = Wire.bytes(1, Wire.integer(1, 1) + Wire.integer(2, 1))
        let location = Wire.bytes(4, Wire.integer(1, 1))
        let unpacked = Wire.bytes(2, Wire.integer(1, 1) + Wire.integer(1, 1) + Wire.integer(1, 1) + Wire.integer(2, 9))
        let packed = Wire.bytes(2, Wire.bytes(1, [1, 1, 1]) + Wire.bytes(2, [9]))
        for sample in [unpacked, packed] {
            let profile = try ProfileData(decoding: sampleType + sample + location + Wire.strings(["t"]))
            #expect(profile.samples == [.init(locationIDs: [1, 1, 1], values: [9])])
        }
    }

    @Test func skipsUnknownFieldsOfEveryWireType() throws {
        let unknown =
            Wire.integer(99, 5) + [0xa1, 0x06] + [UInt8](repeating: 1, count: 8) + [0xad, 0x06, 1, 2, 3, 4]
            + Wire.bytes(98, [1, 2, 3])
        let profile = try ProfileData(
            decoding: unknown + Wire.bytes(1, Wire.integer(1, 1) + unknown) + Wire.strings(["t"])
        )
        #expect(profile.sampleTypes == [.init(type: "t", unit: "")])
    }

    /// The shared LEB128 reader (protobuf varints, DWARF): extremes decode, nothing traps.
    @Test func leb128ExtremesDecodeWithoutTrapping() throws {
        func read<T>(_ bytes: [UInt8], _ body: (inout ByteReader) throws -> T) throws -> T {
            try bytes.withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                return try body(&reader)
            }
        }
        #expect(try read(Wire.varint(.max)) { try $0.uleb128() } == .max)
        #expect(try read([0x7f]) { try $0.sleb128() } == -1)
        #expect(try read([0x80, 0x7f]) { try $0.sleb128() } == -128)
        // Nine bytes with the sign bit set: the shift reaches 63.
        let nine: [UInt8] = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]
        #expect(try read(nine) { try $0.sleb128() } == Int64.min / 2)
        // Ten bytes are a valid length.
        let ten: [UInt8] = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f]
        #expect(try read(ten) { try $0.sleb128() } == Int64.min)
        #expect(throws: (any Error).self) {
            try read([UInt8](repeating: 0x80, count: 10) + [0x00]) { try $0.sleb128() }
        }
        #expect(
            try read([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]) { try $0.sleb128() } == Int64.max
        )
        var rng = SplitMix64(seed: 12)
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 1...11, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? read(bytes) { try $0.sleb128() }
            _ = try? read(bytes) { try $0.uleb128() }
        }
    }

    @Test func readsConcatenatedGzipMembers() throws {
        let bytes = try RandomProfiles.profile(seed: 3).encoded(compressed: false)
        let half = bytes.count / 2
        let twoMembers = try Zlib.gzip(Array(bytes[..<half])) + Zlib.gzip(Array(bytes[half...]))
        #expect(try ProfileData(decoding: twoMembers) == ProfileData(decoding: bytes))
    }
}

/// Records each chunk a writer hands over.
final class ChunkRecordingSink: ProfileSink, @unchecked Sendable {
    private(set) var chunkSizes: [Int] = []
    private(set) var bytes: [UInt8] = []

    func write(_ chunk: UnsafeRawBufferPointer) throws {
        chunkSizes.append(chunk.count)
        bytes.append(contentsOf: chunk)
    }
}
