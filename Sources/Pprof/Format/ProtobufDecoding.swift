/// Decoding of pprof protobuf (gzip-compressed or not) into `ProfileData`.
///
/// Every length, index and reference is checked; corrupt or truncated input throws
/// `PprofError.malformedProfile` and never traps.
extension ProfileData {
    /// Decodes a profile; gzip input is detected by its magic bytes and decompressed first.
    public init(decoding bytes: [UInt8]) throws {
        try self.init(decoding: bytes[...])
    }

    public init(decoding bytes: ArraySlice<UInt8>) throws {
        let raw: [UInt8]
        do {
            raw = try bytes.withUnsafeBytes { buffer in
                Zlib.isGzip(buffer) ? try Zlib.inflate(buffer, limit: 1 << 30) : Array(buffer)
            }
        } catch {
            throw PprofError.malformedProfile("bad gzip data: \(error)")
        }
        do {
            self = try raw.withUnsafeBytes { try ProfileDecoder.decode($0) }
        } catch let error as PprofError {
            throw error
        } catch {
            throw PprofError.malformedProfile("\(error)")
        }
    }
}

private enum ProfileDecoder {
    /// A field as read from the wire: the value of a varint field or the bytes of a length-delimited one.
    enum Value {
        case varint(UInt64)
        case bytes(UnsafeRawBufferPointer)
    }

    struct RawLabel {
        var key: Int64 = 0
        var string: Int64 = 0
        var number: Int64 = 0
        var unit: Int64 = 0
    }

    static func forEachField(
        _ data: UnsafeRawBufferPointer,
        _ body: (_ field: UInt64, _ value: Value) throws -> Void
    ) throws {
        var reader = ByteReader(data)
        while !reader.isAtEnd {
            let key = try reader.uleb128()
            let field = key >> 3
            guard field > 0 else { throw PprofError.malformedProfile("field number 0 at byte \(reader.offset)") }
            switch key & 7 {
            case 0: try body(field, .varint(try reader.uleb128()))
            case 1: try body(field, .varint(try reader.u64()))
            case 2:
                let length = try reader.uleb128()
                guard length <= UInt64(reader.remaining) else { throw ByteReader.Truncated(offset: reader.offset) }
                try body(field, .bytes(try reader.bytes(Int(length))))
            case 5: try body(field, .varint(UInt64(try reader.u32())))
            default:
                throw PprofError.malformedProfile("unsupported wire type \(key & 7) at byte \(reader.offset)")
            }
        }
    }

    /// Appends the integers of a repeated field given either packed or one per field.
    static func appendIntegers(_ value: Value, to array: inout [UInt64]) throws {
        switch value {
        case .varint(let v): array.append(v)
        case .bytes(let packed):
            var reader = ByteReader(packed)
            while !reader.isAtEnd { array.append(try reader.uleb128()) }
        }
    }

    static func integer(_ value: Value) throws -> UInt64 {
        guard case .varint(let v) = value else { throw PprofError.malformedProfile("expected an integer field") }
        return v
    }

    static func signed(_ value: Value) throws -> Int64 { Int64(bitPattern: try integer(value)) }

    static func message(_ value: Value) throws -> UnsafeRawBufferPointer {
        guard case .bytes(let b) = value else { throw PprofError.malformedProfile("expected a message field") }
        return b
    }

    static func decode(_ data: UnsafeRawBufferPointer) throws -> ProfileData {
        var strings: [String] = []
        var sampleTypes: [(Int64, Int64)] = []
        var samples: [([UInt64], [Int64], [RawLabel])] = []
        var mappings: [(ProfileData.Mapping, Int64, Int64)] = []
        var locations: [ProfileData.Location] = []
        var functions: [(UInt64, Int64, Int64, Int64, Int64)] = []
        var dropFrames: Int64 = 0
        var keepFrames: Int64 = 0
        var timeNanos: Int64 = 0
        var durationNanos: Int64 = 0
        var periodType: (Int64, Int64)?
        var period: Int64 = 0
        var comments: [Int64] = []
        var defaultSampleType: Int64 = 0

        func valueType(_ bytes: UnsafeRawBufferPointer) throws -> (Int64, Int64) {
            var result: (Int64, Int64) = (0, 0)
            try forEachField(bytes) { field, value in
                switch field {
                case 1: result.0 = try signed(value)
                case 2: result.1 = try signed(value)
                default: break
                }
            }
            return result
        }

        try forEachField(data) { field, value in
            switch field {
            case 1: sampleTypes.append(try valueType(try message(value)))
            case 2:
                var ids: [UInt64] = []
                var values: [UInt64] = []
                var labels: [RawLabel] = []
                try forEachField(try message(value)) { field, value in
                    switch field {
                    case 1: try appendIntegers(value, to: &ids)
                    case 2: try appendIntegers(value, to: &values)
                    case 3:
                        var label = RawLabel()
                        try forEachField(try message(value)) { field, value in
                            switch field {
                            case 1: label.key = try signed(value)
                            case 2: label.string = try signed(value)
                            case 3: label.number = try signed(value)
                            case 4: label.unit = try signed(value)
                            default: break
                            }
                        }
                        labels.append(label)
                    default: break
                    }
                }
                samples.append((ids, values.map { Int64(bitPattern: $0) }, labels))
            case 3:
                var mapping = ProfileData.Mapping(
                    id: 0,
                    memoryStart: 0,
                    memoryLimit: 0,
                    fileOffset: 0,
                    filename: "",
                    buildID: ""
                )
                var file: Int64 = 0
                var buildID: Int64 = 0
                try forEachField(try message(value)) { field, value in
                    switch field {
                    case 1: mapping.id = try integer(value)
                    case 2: mapping.memoryStart = try integer(value)
                    case 3: mapping.memoryLimit = try integer(value)
                    case 4: mapping.fileOffset = try integer(value)
                    case 5: file = try signed(value)
                    case 6: buildID = try signed(value)
                    case 7: mapping.hasFunctions = try integer(value) != 0
                    case 8: mapping.hasFilenames = try integer(value) != 0
                    case 9: mapping.hasLineNumbers = try integer(value) != 0
                    case 10: mapping.hasInlineFrames = try integer(value) != 0
                    default: break
                    }
                }
                mappings.append((mapping, file, buildID))
            case 4:
                var location = ProfileData.Location(id: 0, mappingID: 0, address: 0, lines: [])
                try forEachField(try message(value)) { field, value in
                    switch field {
                    case 1: location.id = try integer(value)
                    case 2: location.mappingID = try integer(value)
                    case 3: location.address = try integer(value)
                    case 4:
                        var line = ProfileData.Line(functionID: 0, line: 0)
                        try forEachField(try message(value)) { field, value in
                            switch field {
                            case 1: line.functionID = try integer(value)
                            case 2: line.line = try signed(value)
                            case 3: line.column = try signed(value)
                            default: break
                            }
                        }
                        location.lines.append(line)
                    case 5: location.isFolded = try integer(value) != 0
                    default: break
                    }
                }
                locations.append(location)
            case 5:
                var function: (UInt64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0)
                try forEachField(try message(value)) { field, value in
                    switch field {
                    case 1: function.0 = try integer(value)
                    case 2: function.1 = try signed(value)
                    case 3: function.2 = try signed(value)
                    case 4: function.3 = try signed(value)
                    case 5: function.4 = try signed(value)
                    default: break
                    }
                }
                functions.append(function)
            case 6:
                guard case .bytes(let b) = value else {
                    throw PprofError.malformedProfile("string table entry is not bytes")
                }
                strings.append(String(decoding: b, as: UTF8.self))
            case 7: dropFrames = try signed(value)
            case 8: keepFrames = try signed(value)
            case 9: timeNanos = try signed(value)
            case 10: durationNanos = try signed(value)
            case 11: periodType = try valueType(try message(value))
            case 12: period = try signed(value)
            case 13:
                var indices: [UInt64] = []
                try appendIntegers(value, to: &indices)
                comments.append(contentsOf: indices.map { Int64(bitPattern: $0) })
            case 14: defaultSampleType = try signed(value)
            default: break
            }
        }

        guard strings.first == "" else { throw PprofError.malformedProfile("string table does not start with \"\"") }
        func string(_ index: Int64) throws -> String {
            guard index >= 0, index < Int64(strings.count) else {
                throw PprofError.malformedProfile("string index \(index) out of range (table has \(strings.count))")
            }
            return strings[Int(index)]
        }

        var profile = ProfileData()
        profile.sampleTypes = try sampleTypes.map {
            ProfileData.ValueType(type: try string($0.0), unit: try string($0.1))
        }
        profile.mappings = try mappings.map { mapping, file, buildID in
            var mapping = mapping
            mapping.filename = try string(file)
            mapping.buildID = try string(buildID)
            return mapping
        }
        profile.functions = try functions.map {
            ProfileData.Function(
                id: $0.0,
                name: try string($0.1),
                systemName: try string($0.2),
                filename: try string($0.3),
                startLine: $0.4
            )
        }
        profile.locations = locations
        profile.samples = try samples.map { ids, values, labels in
            guard values.count == sampleTypes.count else {
                throw PprofError.malformedProfile(
                    "sample has \(values.count) values for \(sampleTypes.count) sample types"
                )
            }
            let labels = try labels.map { raw -> ProfileData.Label in
                // As google/pprof reads it: a nonzero string index makes a string label, else numeric.
                if raw.string != 0 {
                    return ProfileData.Label(key: try string(raw.key), string: try string(raw.string))
                }
                return ProfileData.Label(
                    key: try string(raw.key),
                    number: raw.number,
                    unit: raw.unit != 0 ? try string(raw.unit) : nil
                )
            }
            return ProfileData.Sample(locationIDs: ids, values: values, labels: labels)
        }
        profile.dropFrames = try string(dropFrames)
        profile.keepFrames = try string(keepFrames)
        profile.timeNanos = timeNanos
        profile.durationNanos = durationNanos
        profile.periodType = try periodType.map {
            ProfileData.ValueType(type: try string($0.0), unit: try string($0.1))
        }
        profile.period = period
        profile.comments = try comments.map { try string($0) }
        profile.defaultSampleType = try string(defaultSampleType)
        try profile.validateReferences()
        return profile
    }
}

extension ProfileData {
    /// Checks what google/pprof's parser checks: IDs are nonzero and unique, and every reference
    /// (sample → location, location → mapping, line → function) resolves.
    func validateReferences() throws {
        var mappingIDs = Set<UInt64>()
        for mapping in mappings {
            guard mapping.id != 0, mappingIDs.insert(mapping.id).inserted else {
                throw PprofError.malformedProfile("mapping id \(mapping.id) is zero or repeated")
            }
        }
        var functionIDs = Set<UInt64>()
        for function in functions {
            guard function.id != 0, functionIDs.insert(function.id).inserted else {
                throw PprofError.malformedProfile("function id \(function.id) is zero or repeated")
            }
        }
        var locationIDs = Set<UInt64>()
        for location in locations {
            guard location.id != 0, locationIDs.insert(location.id).inserted else {
                throw PprofError.malformedProfile("location id \(location.id) is zero or repeated")
            }
            guard location.mappingID == 0 || mappingIDs.contains(location.mappingID) else {
                throw PprofError.malformedProfile(
                    "location \(location.id) refers to unknown mapping \(location.mappingID)"
                )
            }
            for line in location.lines where !functionIDs.contains(line.functionID) {
                throw PprofError.malformedProfile(
                    "location \(location.id) refers to unknown function \(line.functionID)"
                )
            }
        }
        for sample in samples {
            for id in sample.locationIDs where !locationIDs.contains(id) {
                throw PprofError.malformedProfile("sample refers to unknown location \(id)")
            }
        }
    }
}
