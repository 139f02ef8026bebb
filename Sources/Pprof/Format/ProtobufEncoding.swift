/// Protobuf wire encoding of `ProfileData` (google/pprof `profile.proto`), with Go's habits:
/// zero-valued optional fields are omitted, `ValueType` fields are always written, and repeated
/// integers are packed only when there are more than two (parsers accept both forms).
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 4096) {
        bytes.reserveCapacity(capacity)
    }

    @inline(__always)
    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    @inline(__always)
    mutating func key(_ field: Int, _ wireType: UInt64) {
        varint(UInt64(field) << 3 | wireType)
    }

    /// An integer field, always written.
    mutating func uint64(_ field: Int, _ value: UInt64) {
        key(field, 0)
        varint(value)
    }

    /// An int64 as its two's-complement bits (not zigzag), always written.
    mutating func int64(_ field: Int, _ value: Int64) {
        uint64(field, UInt64(bitPattern: value))
    }

    mutating func uint64Opt(_ field: Int, _ value: UInt64) {
        if value != 0 { uint64(field, value) }
    }

    mutating func int64Opt(_ field: Int, _ value: Int64) {
        if value != 0 { int64(field, value) }
    }

    mutating func boolOpt(_ field: Int, _ value: Bool) {
        if value { uint64(field, 1) }
    }

    /// Repeated integers: packed when there are more than two, otherwise one field each.
    mutating func repeatedUInt64(_ field: Int, _ values: [UInt64]) {
        if values.count > 2 {
            var length = 0
            for value in values { length += varintSize(value) }
            key(field, 2)
            varint(UInt64(length))
            for value in values { varint(value) }
        } else {
            for value in values { uint64(field, value) }
        }
    }

    mutating func repeatedInt64(_ field: Int, _ values: [Int64]) {
        repeatedUInt64(field, values.map { UInt64(bitPattern: $0) })
    }

    mutating func bytesField(_ field: Int, _ value: some Collection<UInt8>) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// A nested message, written into its own buffer and then appended with its length.
    mutating func message(_ field: Int, _ body: (inout ProtobufWriter) -> Void) {
        var child = ProtobufWriter(capacity: 64)
        body(&child)
        key(field, 2)
        varint(UInt64(child.bytes.count))
        bytes.append(contentsOf: child.bytes)
    }
}

@inline(__always)
func varintSize(_ value: UInt64) -> Int {
    value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
}

/// The string table under construction: index 0 is always "".
struct StringTable {
    private(set) var strings: [String] = [""]
    private var indices: [String: Int64] = ["": 0]

    mutating func index(_ string: String) -> Int64 {
        if let index = indices[string] { return index }
        let index = Int64(strings.count)
        strings.append(string)
        indices[string] = index
        return index
    }
}

extension ProfileData {
    /// The profile as protobuf bytes, gzip-compressed unless `compressed` is false.
    public func encoded(compressed: Bool = true) throws -> [UInt8] {
        let raw = protobufBytes()
        return compressed ? try Zlib.gzip(raw) : raw
    }

    /// Writes the gzip-compressed profile to `sink`; a failing sink's error is rethrown.
    public func write(to sink: some ProfileSink) throws {
        try sink.write(try encoded())
    }

    func protobufBytes() -> [UInt8] {
        var strings = StringTable()
        var out = ProtobufWriter(capacity: 64 * 1024)
        func valueType(_ field: Int, _ value: ValueType, _ out: inout ProtobufWriter) {
            let type = strings.index(value.type)
            let unit = strings.index(value.unit)
            out.message(field) {
                $0.int64(1, type)
                $0.int64(2, unit)
            }
        }
        for type in sampleTypes { valueType(1, type, &out) }
        for sample in samples {
            let labelIndices = sample.labels.map { label in
                (
                    strings.index(label.key), label.string.map { strings.index($0) } ?? 0, label.number ?? 0,
                    label.numberUnit.map { strings.index($0) } ?? 0
                )
            }
            out.message(2) { message in
                message.repeatedUInt64(1, sample.locationIDs)
                message.repeatedInt64(2, sample.values)
                for (key, string, number, unit) in labelIndices {
                    message.message(3) {
                        $0.int64Opt(1, key)
                        $0.int64Opt(2, string)
                        $0.int64Opt(3, number)
                        $0.int64Opt(4, unit)
                    }
                }
            }
        }
        for mapping in mappings {
            let file = strings.index(mapping.filename)
            let buildID = strings.index(mapping.buildID)
            out.message(3) {
                $0.uint64Opt(1, mapping.id)
                $0.uint64Opt(2, mapping.memoryStart)
                $0.uint64Opt(3, mapping.memoryLimit)
                $0.uint64Opt(4, mapping.fileOffset)
                $0.int64Opt(5, file)
                $0.int64Opt(6, buildID)
                $0.boolOpt(7, mapping.hasFunctions)
                $0.boolOpt(8, mapping.hasFilenames)
                $0.boolOpt(9, mapping.hasLineNumbers)
                $0.boolOpt(10, mapping.hasInlineFrames)
            }
        }
        for location in locations {
            out.message(4) { message in
                message.uint64Opt(1, location.id)
                message.uint64Opt(2, location.mappingID)
                message.uint64Opt(3, location.address)
                for line in location.lines {
                    message.message(4) {
                        $0.uint64Opt(1, line.functionID)
                        $0.int64Opt(2, line.line)
                        $0.int64Opt(3, line.column)
                    }
                }
                message.boolOpt(5, location.isFolded)
            }
        }
        for function in functions {
            let name = strings.index(function.name)
            let systemName = strings.index(function.systemName)
            let file = strings.index(function.filename)
            out.message(5) {
                $0.uint64Opt(1, function.id)
                $0.int64Opt(2, name)
                $0.int64Opt(3, systemName)
                $0.int64Opt(4, file)
                $0.int64Opt(5, function.startLine)
            }
        }
        let dropFrames = dropFrames.isEmpty ? 0 : strings.index(dropFrames)
        let keepFrames = keepFrames.isEmpty ? 0 : strings.index(keepFrames)
        out.int64Opt(7, dropFrames)
        out.int64Opt(8, keepFrames)
        out.int64Opt(9, timeNanos)
        out.int64Opt(10, durationNanos)
        if let periodType { valueType(11, periodType, &out) }
        out.int64Opt(12, period)
        for comment in comments { out.int64(13, strings.index(comment)) }
        if !defaultSampleType.isEmpty { out.int64(14, strings.index(defaultSampleType)) }
        for string in strings.strings { out.bytesField(6, string.utf8) }
        return out.bytes
    }
}
