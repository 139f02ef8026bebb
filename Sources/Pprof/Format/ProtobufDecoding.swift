import Glibc

/// Decoding of pprof protobuf (gzip-compressed or not) into `ProfileData`.
///
/// Every length, index and reference is checked before it is used; corrupt or truncated input
/// throws `PprofError.malformedProfile` and never traps. Nothing is allocated on the word of a
/// length field: arrays grow only with bytes actually present, and decompression is capped.
extension ProfileData {
    /// The default cap on the decompressed size of a profile: 256 MiB.
    public static let defaultMaximumDecodedSize = 256 << 20

    /// Decodes a profile; gzip input is detected by its magic bytes and decompressed first.
    public init(decoding bytes: [UInt8]) throws {
        try self.init(decoding: bytes[...])
    }

    /// Decodes a profile; gzip input is detected by its magic bytes and decompressed first.
    ///
    /// - Parameter maximumSize: the largest decompressed protobuf accepted; larger input throws
    ///   instead of exhausting memory.
    public init(decoding bytes: ArraySlice<UInt8>, maximumSize: Int = ProfileData.defaultMaximumDecodedSize) throws {
        self = try bytes.withUnsafeBytes { buffer in
            guard Zlib.isGzip(buffer) else { return try ProfileDecoder.decode(buffer) }
            let raw: [UInt8]
            do {
                raw = try Zlib.inflate(buffer, limit: maximumSize)
            } catch {
                throw PprofError.malformedProfile("bad gzip data: \(error)")
            }
            return try raw.withUnsafeBytes { try ProfileDecoder.decode($0) }
        }
    }
}

/// Reads protobuf fields; errors carry the byte offset within the message being read.
private struct WireReader {
    var bytes: ByteReader

    init(_ data: UnsafeRawBufferPointer) {
        bytes = ByteReader(data)
    }

    var isAtEnd: Bool { bytes.isAtEnd }

    /// The next field's number and wire type.
    @inline(__always)
    mutating func nextKey() throws -> (field: UInt64, wireType: UInt64) {
        let key = try varint()
        let field = key >> 3
        guard field > 0 else { throw malformed("field number 0") }
        return (field, key & 7)
    }

    @inline(__always)
    mutating func varint() throws -> UInt64 {
        do {
            return try bytes.uleb128()
        } catch {
            throw malformed("bad varint: \(error)")
        }
    }

    mutating func lengthDelimited() throws -> UnsafeRawBufferPointer {
        let length = try varint()
        guard length <= UInt64(bytes.remaining) else {
            throw malformed("length \(length) runs past the end (\(bytes.remaining) bytes left)")
        }
        return try bytes.bytes(Int(length))
    }

    /// An integer field's value; a field of another wire type is malformed.
    @inline(__always)
    mutating func integer(_ wireType: UInt64) throws -> UInt64 {
        guard wireType == 0 else { throw malformed("expected an integer, found wire type \(wireType)") }
        return try varint()
    }

    @inline(__always)
    mutating func signed(_ wireType: UInt64) throws -> Int64 {
        Int64(bitPattern: try integer(wireType))
    }

    mutating func message(_ wireType: UInt64) throws -> UnsafeRawBufferPointer {
        guard wireType == 2 else { throw malformed("expected a message, found wire type \(wireType)") }
        return try lengthDelimited()
    }

    /// Appends the integers of a repeated field, given packed or one per field.
    @inline(__always)
    mutating func appendIntegers<T: FixedWidthInteger>(_ wireType: UInt64, to array: inout [T]) throws {
        switch wireType {
        case 0: array.append(T(truncatingIfNeeded: try varint()))
        case 2:
            let packed: [T] = try Self.packedIntegers(try lengthDelimited())
            if array.isEmpty { array = packed } else { array.append(contentsOf: packed) }
        default: throw malformed("repeated integer with wire type \(wireType)")
        }
    }

    /// The integers of a packed field, in an array allocated once at its final size.
    static func packedIntegers<T: FixedWidthInteger>(_ packed: UnsafeRawBufferPointer) throws -> [T] {
        // Every varint ends in exactly one byte below 0x80.
        var count = 0
        for byte in packed where byte < 0x80 { count += 1 }
        var result: [T] = []
        result.reserveCapacity(count)
        var reader = WireReader(packed)
        while !reader.isAtEnd { result.append(T(truncatingIfNeeded: try reader.varint())) }
        return result
    }

    /// Skips a field this reader does not use.
    mutating func skip(_ wireType: UInt64) throws {
        do {
            switch wireType {
            case 0: _ = try bytes.uleb128()
            case 1: _ = try bytes.u64()
            case 2: _ = try lengthDelimited()
            case 5: _ = try bytes.u32()
            default: throw malformed("unsupported wire type \(wireType)")
            }
        } catch let error as PprofError {
            throw error
        } catch {
            throw malformed("\(error)")
        }
    }

    func malformed(_ what: String) -> PprofError {
        .malformedProfile("\(what) at byte \(bytes.offset)")
    }
}

private enum ProfileDecoder {
    struct RawLabel: Hashable {
        var key: Int64 = 0
        var string: Int64 = 0
        var number: Int64 = 0
        var unit: Int64 = 0
    }

    struct RawSample {
        var locationIDs: [UInt64] = []
        var values: [Int64] = []
        var labels: [RawLabel] = []
    }

    struct RawMapping {
        var mapping = ProfileData.Mapping(
            id: 0,
            memoryStart: 0,
            memoryLimit: 0,
            fileOffset: 0,
            filename: "",
            buildID: ""
        )
        var filename: Int64 = 0
        var buildID: Int64 = 0
    }

    struct RawFunction {
        var id: UInt64 = 0
        var name: Int64 = 0
        var systemName: Int64 = 0
        var filename: Int64 = 0
        var startLine: Int64 = 0
    }

    static func decode(_ data: UnsafeRawBufferPointer) throws -> ProfileData {
        var strings: [String] = []
        var sampleTypes: [(type: Int64, unit: Int64)] = []
        var samples: [RawSample] = []
        var mappings: [RawMapping] = []
        var locations: [ProfileData.Location] = []
        var functions: [RawFunction] = []
        var dropFrames: Int64 = 0
        var keepFrames: Int64 = 0
        var periodType: (type: Int64, unit: Int64)?
        var comments: [Int64] = []
        var defaultSampleType: Int64 = 0
        var profile = ProfileData()
        var sampleCache = SampleCache()

        var reader = WireReader(data)
        while !reader.isAtEnd {
            let (field, wireType) = try reader.nextKey()
            switch field {
            case 1: sampleTypes.append(try valueType(try reader.message(wireType)))
            case 2:
                samples.append(try sample(try reader.message(wireType), &sampleCache, valueCount: sampleTypes.count))
            case 3: mappings.append(try mapping(try reader.message(wireType)))
            case 4: locations.append(try location(try reader.message(wireType)))
            case 5: functions.append(try function(try reader.message(wireType)))
            case 6:
                guard wireType == 2 else { throw reader.malformed("string table entry of wire type \(wireType)") }
                strings.append(String(decoding: try reader.lengthDelimited(), as: UTF8.self))
            case 7: dropFrames = try reader.signed(wireType)
            case 8: keepFrames = try reader.signed(wireType)
            case 9: profile.timeNanos = try reader.signed(wireType)
            case 10: profile.durationNanos = try reader.signed(wireType)
            case 11: periodType = try valueType(try reader.message(wireType))
            case 12: profile.period = try reader.signed(wireType)
            case 13: try reader.appendIntegers(wireType, to: &comments)
            case 14: defaultSampleType = try reader.signed(wireType)
            default: try reader.skip(wireType)
            }
        }

        guard strings.first == "" else {
            throw PprofError.malformedProfile(
                strings.isEmpty ? "no string table" : "string table does not start with \"\""
            )
        }
        func string(_ index: Int64) throws -> String {
            guard index >= 0, index < strings.count else {
                throw PprofError.malformedProfile("string index \(index) out of range (table has \(strings.count))")
            }
            return strings[Int(index)]
        }

        profile.sampleTypes = try sampleTypes.map { .init(type: try string($0.type), unit: try string($0.unit)) }
        profile.periodType = try periodType.map { .init(type: try string($0.type), unit: try string($0.unit)) }
        profile.dropFrames = try string(dropFrames)
        profile.keepFrames = try string(keepFrames)
        profile.comments = try comments.map { try string($0) }
        profile.defaultSampleType = try string(defaultSampleType)
        profile.mappings = try mappings.map { raw in
            var mapping = raw.mapping
            mapping.filename = try string(raw.filename)
            mapping.buildID = try string(raw.buildID)
            return mapping
        }
        profile.functions = try functions.map {
            ProfileData.Function(
                id: $0.id,
                name: try string($0.name),
                systemName: try string($0.systemName),
                filename: try string($0.filename),
                startLine: $0.startLine
            )
        }
        profile.locations = locations
        if !samples.isEmpty, sampleTypes.isEmpty {
            throw PprofError.malformedProfile("samples without sample types")
        }
        profile.samples.reserveCapacity(samples.count)
        // Samples with the same labels share one array: a CPU profile has few label sets over
        // many samples, and readers can tell a set they have seen by its storage.
        var labelSets: [[RawLabel]: [ProfileData.Label]] = [:]
        for raw in samples {
            guard raw.values.count == sampleTypes.count else {
                throw PprofError.malformedProfile(
                    "sample has \(raw.values.count) values for \(sampleTypes.count) sample types"
                )
            }
            var labels: [ProfileData.Label] = []
            if let known = labelSets[raw.labels] {
                labels = known
            } else if !raw.labels.isEmpty {
                labels.reserveCapacity(raw.labels.count)
                for label in raw.labels {
                    // As google/pprof reads it: a string index makes a string label, a number or a
                    // unit a numeric one; a label with neither says nothing and is dropped.
                    if label.string != 0 {
                        labels.append(.init(key: try string(label.key), string: try string(label.string)))
                    } else if label.number != 0 || label.unit != 0 {
                        let unit = label.unit != 0 ? try string(label.unit) : nil
                        labels.append(.init(key: try string(label.key), number: label.number, unit: unit))
                    } else {
                        _ = try string(label.key)
                    }
                }
                labelSets[raw.labels] = labels
            }
            profile.samples.append(.init(locationIDs: raw.locationIDs, values: raw.values, labels: labels))
        }
        try profile.validateReferences()
        return profile
    }

    static func valueType(_ data: UnsafeRawBufferPointer) throws -> (type: Int64, unit: Int64) {
        var result: (type: Int64, unit: Int64) = (0, 0)
        var reader = WireReader(data)
        while !reader.isAtEnd {
            let (field, wireType) = try reader.nextKey()
            switch field {
            case 1: result.type = try reader.signed(wireType)
            case 2: result.unit = try reader.signed(wireType)
            default: try reader.skip(wireType)
            }
        }
        return result
    }

    /// The previous sample's packed location IDs: consecutive samples often share a stack (this
    /// library writes them grouped), and then share one array instead of decoding it again.
    struct SampleCache {
        var packedLocations: UnsafeRawBufferPointer?
        var locationIDs: [UInt64] = []
    }

    static func sample(_ data: UnsafeRawBufferPointer, _ cache: inout SampleCache, valueCount: Int) throws -> RawSample
    {
        var sample = RawSample()
        var reader = WireReader(data)
        while !reader.isAtEnd {
            let (field, wireType) = try reader.nextKey()
            switch field {
            case 1 where wireType == 2 && sample.locationIDs.isEmpty:
                let packed = try reader.lengthDelimited()
                if let previous = cache.packedLocations, previous.count == packed.count,
                    previous.count == 0 || memcmp(previous.baseAddress!, packed.baseAddress!, packed.count) == 0
                {
                    sample.locationIDs = cache.locationIDs
                } else {
                    sample.locationIDs = try WireReader.packedIntegers(packed)
                    cache.packedLocations = packed
                    cache.locationIDs = sample.locationIDs
                }
            case 1: try reader.appendIntegers(wireType, to: &sample.locationIDs)
            case 2:
                if sample.values.isEmpty { sample.values.reserveCapacity(valueCount) }
                try reader.appendIntegers(wireType, to: &sample.values)
            case 3: sample.labels.append(try label(try reader.message(wireType)))
            default: try reader.skip(wireType)
            }
        }
        return sample
    }

    static func label(_ data: UnsafeRawBufferPointer) throws -> RawLabel {
        var label = RawLabel()
        var reader = WireReader(data)
        while !reader.isAtEnd {
            let (field, wireType) = try reader.nextKey()
            switch field {
            case 1: label.key = try reader.signed(wireType)
            case 2: label.string = try reader.signed(wireType)
            case 3: label.number = try reader.signed(wireType)
            case 4: label.unit = try reader.signed(wireType)
            default: try reader.skip(wireType)
            }
        }
        return label
    }

    static func mapping(_ data: UnsafeRawBufferPointer) throws -> RawMapping {
        var raw = RawMapping()
        var reader = WireReader(data)
        while !reader.isAtEnd {
            let (field, wireType) = try reader.nextKey()
            switch field {
            case 1: raw.mapping.id = try reader.integer(wireType)
            case 2: raw.mapping.memoryStart = try reader.integer(wireType)
            case 3: raw.mapping.memoryLimit = try reader.integer(wireType)
            case 4: raw.mapping.fileOffset = try reader.integer(wireType)
            case 5: raw.filename = try reader.signed(wireType)
            case 6: raw.buildID = try reader.signed(wireType)
            case 7: raw.mapping.hasFunctions = try reader.integer(wireType) != 0
            case 8: raw.mapping.hasFilenames = try reader.integer(wireType) != 0
            case 9: raw.mapping.hasLineNumbers = try reader.integer(wireType) != 0
            case 10: raw.mapping.hasInlineFrames = try reader.integer(wireType) != 0
            default: try reader.skip(wireType)
            }
        }
        return raw
    }

    static func location(_ data: UnsafeRawBufferPointer) throws -> ProfileData.Location {
        var location = ProfileData.Location(id: 0, mappingID: 0, address: 0, lines: [])
        var reader = WireReader(data)
        while !reader.isAtEnd {
            let (field, wireType) = try reader.nextKey()
            switch field {
            case 1: location.id = try reader.integer(wireType)
            case 2: location.mappingID = try reader.integer(wireType)
            case 3: location.address = try reader.integer(wireType)
            case 4: location.lines.append(try line(try reader.message(wireType)))
            case 5: location.isFolded = try reader.integer(wireType) != 0
            default: try reader.skip(wireType)
            }
        }
        return location
    }

    static func line(_ data: UnsafeRawBufferPointer) throws -> ProfileData.Line {
        var line = ProfileData.Line(functionID: 0, line: 0)
        var reader = WireReader(data)
        while !reader.isAtEnd {
            let (field, wireType) = try reader.nextKey()
            switch field {
            case 1: line.functionID = try reader.integer(wireType)
            case 2: line.line = try reader.signed(wireType)
            case 3: line.column = try reader.signed(wireType)
            default: try reader.skip(wireType)
            }
        }
        return line
    }

    static func function(_ data: UnsafeRawBufferPointer) throws -> RawFunction {
        var function = RawFunction()
        var reader = WireReader(data)
        while !reader.isAtEnd {
            let (field, wireType) = try reader.nextKey()
            switch field {
            case 1: function.id = try reader.integer(wireType)
            case 2: function.name = try reader.signed(wireType)
            case 3: function.systemName = try reader.signed(wireType)
            case 4: function.filename = try reader.signed(wireType)
            case 5: function.startLine = try reader.signed(wireType)
            default: try reader.skip(wireType)
            }
        }
        return function
    }
}

extension ProfileData {
    /// Checks what google/pprof's `CheckValid` checks, and a little more: IDs are nonzero and
    /// unique, every sample has one value per sample type, and every reference (sample → location,
    /// location → mapping, line → function) resolves.
    func validateReferences() throws {
        let mappingIDs = try IDIndex(mappings.map(\.id), kind: "mapping")
        let functionIDs = try IDIndex(functions.map(\.id), kind: "function")
        let locationIDs = try IDIndex(locations.map(\.id), kind: "location")
        for location in locations {
            guard location.mappingID == 0 || mappingIDs[location.mappingID] != nil else {
                throw PprofError.malformedProfile(
                    "location \(location.id) refers to unknown mapping \(location.mappingID)"
                )
            }
            for line in location.lines where functionIDs[line.functionID] == nil {
                throw PprofError.malformedProfile(
                    "location \(location.id) refers to unknown function \(line.functionID)"
                )
            }
        }
        for sample in samples {
            guard sample.values.count == sampleTypes.count else {
                throw PprofError.malformedProfile(
                    "sample has \(sample.values.count) values for \(sampleTypes.count) sample types"
                )
            }
            for id in sample.locationIDs where locationIDs[id] == nil {
                throw PprofError.malformedProfile("sample refers to unknown location \(id)")
            }
        }
    }
}
