/// Protobuf wire encoding of `ProfileData` (google/pprof `profile.proto`) with Go's habits where
/// they matter: zero-valued optional fields are omitted, `ValueType` fields are always written,
/// repeated integers are packed only when there are more than two, a Sample's values come before
/// its location IDs, the string table comes last, and the result is gzip at level 1.
///
/// The encoder streams: top-level messages are written into one buffer that is handed on (to gzip,
/// then to the sink) whenever it passes `chunkSize`, so a large profile is never held twice.
extension ProfileData {
    /// The profile as protobuf bytes, gzip-compressed (as pprof files and HTTP responses are)
    /// unless `compressed` is false.
    public func encoded(compressed: Bool = true) throws -> [UInt8] {
        var output: [UInt8] = []
        // Uncompressed: one chunk, copied once.
        try encode(compressed: compressed, chunkSize: compressed ? 64 * 1024 : .max) { output.append(contentsOf: $0) }
        return output
    }

    /// Writes the gzip-compressed profile to `sink` in chunks, as it is encoded. An error thrown by
    /// the sink stops the write and is rethrown unchanged.
    public func write(to sink: some ProfileSink) throws {
        try encode(compressed: true) { try sink.write($0) }
    }

    /// Encodes the profile, handing the output to `emit` in chunks of about `chunkSize` bytes.
    func encode(
        compressed: Bool,
        chunkSize: Int = 64 * 1024,
        emit: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        if compressed {
            let gzip = try GzipCompressor(level: 1, chunkSize: chunkSize)
            try encodeRaw(chunkSize: chunkSize) { try gzip.compress($0, emit: emit) }
            try gzip.finish(emit: emit)
        } else {
            try encodeRaw(chunkSize: chunkSize, emit: emit)
        }
    }

    /// The uncompressed protobuf, in chunks.
    func encodeRaw(chunkSize: Int, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        var out = ProtobufEncoder(capacity: min(max(chunkSize, 256), 1 << 20) + 4096)
        var strings = StringTable(expectedCount: functions.count * 2 + mappings.count + 64)

        // Not a nested function: capturing `out` would box it and check exclusivity on every write.
        @inline(__always)
        func flushIfFull(_ out: inout ProtobufEncoder) throws {
            if out.count >= chunkSize {
                try out.withBytes(emit)
                out.removeAll()
            }
        }

        for type in sampleTypes {
            out.valueType(1, type: strings.index(type.type), unit: strings.index(type.unit))
        }
        if !defaultSampleType.isEmpty {
            out.reserve(ProtobufEncoder.maximumScalarSize)
            out.int64(14, strings.index(defaultSampleType))
        }
        var repeatedIDs = RepeatedLocationIDs()
        try samples.withUnsafeBufferPointer { samples in
            for index in samples.indices {
                encodeSample(samples[index], into: &out, strings: &strings, repeatedIDs: &repeatedIDs)
                try flushIfFull(&out)
            }
        }
        for location in locations {
            out.reserve(ProtobufEncoder.maximumSize(of: location))
            let start = out.beginMessage(4)
            out.uint64Opt(1, location.id)
            out.uint64Opt(2, location.mappingID)
            out.uint64Opt(3, location.address)
            for line in location.lines {
                let lineStart = out.beginMessage(4)
                out.uint64Opt(1, line.functionID)
                out.int64Opt(2, line.line)
                out.int64Opt(3, line.column)
                out.endMessage(lineStart)
            }
            out.boolOpt(5, location.isFolded)
            out.endMessage(start)
            try flushIfFull(&out)
        }
        for function in functions {
            let name = strings.index(function.name)
            let systemName = strings.index(function.systemName)
            let file = strings.index(function.filename)
            out.reserve(ProtobufEncoder.maximumFunctionSize)
            let start = out.beginMessage(5)
            out.uint64Opt(1, function.id)
            out.int64Opt(2, name)
            out.int64Opt(3, systemName)
            out.int64Opt(4, file)
            out.int64Opt(5, function.startLine)
            out.endMessage(start)
            try flushIfFull(&out)
        }
        for mapping in mappings {
            let file = strings.index(mapping.filename)
            let buildID = strings.index(mapping.buildID)
            out.reserve(ProtobufEncoder.maximumMappingSize)
            let start = out.beginMessage(3)
            out.uint64Opt(1, mapping.id)
            out.uint64Opt(2, mapping.memoryStart)
            out.uint64Opt(3, mapping.memoryLimit)
            out.uint64Opt(4, mapping.fileOffset)
            out.int64Opt(5, file)
            out.int64Opt(6, buildID)
            out.boolOpt(7, mapping.hasFunctions)
            out.boolOpt(8, mapping.hasFilenames)
            out.boolOpt(9, mapping.hasLineNumbers)
            out.boolOpt(10, mapping.hasInlineFrames)
            out.endMessage(start)
        }
        if let periodType {
            out.valueType(11, type: strings.index(periodType.type), unit: strings.index(periodType.unit))
        }
        let dropFrames = strings.index(dropFrames)
        let keepFrames = strings.index(keepFrames)
        let comments = comments.map { strings.index($0) }
        out.reserve(ProtobufEncoder.maximumScalarSize * (6 + comments.count))
        out.int64Opt(7, dropFrames)
        out.int64Opt(8, keepFrames)
        out.int64Opt(9, timeNanos)
        out.int64Opt(10, durationNanos)
        out.int64Opt(12, period)
        for comment in comments { out.int64(13, comment) }
        try flushIfFull(&out)
        for string in strings.strings {
            out.string(6, string)
            try flushIfFull(&out)
        }
        if out.count > 0 { try out.withBytes(emit) }
    }

    @inline(__always)
    private func encodeSample(
        _ sample: borrowing Sample,
        into out: inout ProtobufEncoder,
        strings: inout StringTable,
        repeatedIDs: inout RepeatedLocationIDs
    ) {
        out.reserve(ProtobufEncoder.maximumSize(of: sample))
        let start = out.beginMessage(2)
        sample.values.withUnsafeBufferPointer { out.repeated(2, $0) }
        sample.locationIDs.withUnsafeBufferPointer { ids in
            if ids.count > 0 && ids.baseAddress == repeatedIDs.storage && ids.count == repeatedIDs.count {
                repeatedIDs.bytes.withUnsafeBytes { out.append($0) }
            } else {
                let before = out.count
                out.repeated(1, ids)
                repeatedIDs.storage = ids.baseAddress
                repeatedIDs.count = ids.count
                out.withBytes { repeatedIDs.bytes = Array($0[before...]) }
            }
        }
        sample.labels.withUnsafeBufferPointer { labels in
            for index in labels.indices {
                // Read in place: copying a Label would retain its three strings.
                let key = strings.index(labels[index].key)
                let string = labels[index].string != nil ? strings.index(labels[index].string!) : 0
                let unit = labels[index].numberUnit != nil ? strings.index(labels[index].numberUnit!) : 0
                let labelStart = out.beginMessage(3)
                out.int64Opt(1, key)
                out.int64Opt(2, string)
                out.int64Opt(3, labels[index].number ?? 0)
                out.int64Opt(4, unit)
                out.endMessage(labelStart)
            }
        }
        out.endMessage(start)
    }
}

/// The last location-ID field written and the array storage it came from. The builder gives all
/// samples of a stack one shared array and writes them next to each other, so most samples can
/// copy the previous encoding instead of writing thirty varints again. The same storage means the
/// same IDs: every array is kept alive by the profile being encoded.
private struct RepeatedLocationIDs {
    var storage: UnsafePointer<UInt64>?
    var count = 0
    var bytes: [UInt8] = []
}

/// A growable buffer of protobuf bytes. Writers other than `reserve`, `valueType` and `string`
/// assume the caller reserved room for them (see the `maximum…Size` bounds), so the hot paths do
/// no capacity checks.
@_spi(Integration) public struct ProtobufEncoder: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    public private(set) var count = 0

    /// The most bytes one tag plus one varint take. Every field number used is below 16, so a
    /// key is one byte.
    static let maximumScalarSize = 11
    /// A reserved length prefix grows to at most 5 bytes (messages stay under 32 GiB).
    static let maximumMessageOverhead = 1 + 5
    static let maximumFunctionSize = maximumMessageOverhead + 5 * maximumScalarSize
    static let maximumMappingSize = maximumMessageOverhead + 10 * maximumScalarSize
    static let maximumLabelSize = maximumMessageOverhead + 4 * maximumScalarSize

    static func maximumSize(of sample: borrowing ProfileData.Sample) -> Int {
        maximumMessageOverhead + maximumRepeatedSize(sample.values.count)
            + maximumRepeatedSize(sample.locationIDs.count) + sample.labels.count * maximumLabelSize
    }

    static func maximumSize(of location: ProfileData.Location) -> Int {
        maximumMessageOverhead + 4 * maximumScalarSize
            + location.lines.count * (maximumMessageOverhead + 3 * maximumScalarSize)
    }

    static func maximumRepeatedSize(_ count: Int) -> Int {
        maximumMessageOverhead + count * maximumScalarSize
    }

    public init(capacity: Int) {
        self.capacity = max(capacity, 64)
        base = UnsafeMutablePointer<UInt8>.allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// Makes room for `extra` more bytes.
    @inline(__always)
    public mutating func reserve(_ extra: Int) {
        if capacity &- count < extra { grow(extra) }
    }

    @inline(never)
    private mutating func grow(_ extra: Int) {
        let newCapacity = max(capacity * 2, count + extra)
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    mutating func removeAll() { count = 0 }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    @inline(__always)
    private mutating func byte(_ value: UInt8) {
        assert(count < capacity)
        base[count] = value
        count &+= 1
    }

    /// Raw bytes (the caller reserved room).
    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        assert(count + bytes.count <= capacity)
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        UnsafeMutableRawPointer(base + count).copyMemory(from: source, byteCount: bytes.count)
        count &+= bytes.count
    }

    @inline(__always)
    mutating func varint(_ value: UInt64) {
        assert(count + varintSize(value) <= capacity)
        // Most values in a profile (IDs, string indices, counts) take one or two bytes.
        if value < 0x80 {
            base[count] = UInt8(truncatingIfNeeded: value)
            count &+= 1
            return
        }
        if value < 0x4000 {
            base[count] = UInt8(truncatingIfNeeded: value) | 0x80
            base[count &+ 1] = UInt8(truncatingIfNeeded: value >> 7)
            count &+= 2
            return
        }
        var value = value
        var at = count
        while value >= 0x80 {
            base[at] = UInt8(truncatingIfNeeded: value) | 0x80
            value >>= 7
            at &+= 1
        }
        base[at] = UInt8(truncatingIfNeeded: value)
        count = at &+ 1
    }

    @inline(__always)
    private mutating func key(_ field: Int, _ wireType: UInt8) {
        assert(field > 0 && field < 16)
        byte(UInt8(truncatingIfNeeded: field) << 3 | wireType)
    }

    /// An integer field, always written (Go's `uint64`).
    @inline(__always)
    mutating func uint64(_ field: Int, _ value: UInt64) {
        key(field, 0)
        varint(value)
    }

    /// An int64 as its two's-complement bits (not zigzag), always written.
    @inline(__always)
    mutating func int64(_ field: Int, _ value: Int64) {
        uint64(field, UInt64(bitPattern: value))
    }

    @inline(__always)
    mutating func uint64Opt(_ field: Int, _ value: UInt64) {
        if value != 0 { uint64(field, value) }
    }

    @inline(__always)
    mutating func int64Opt(_ field: Int, _ value: Int64) {
        if value != 0 { int64(field, value) }
    }

    @inline(__always)
    mutating func boolOpt(_ field: Int, _ value: Bool) {
        if value { uint64(field, 1) }
    }

    /// Repeated integers: packed when there are more than two, otherwise one field each (Go).
    @inline(__always)
    mutating func repeated<T: FixedWidthInteger>(_ field: Int, _ values: UnsafeBufferPointer<T>) {
        if values.count > 2 {
            let start = beginMessage(field)
            for value in values { varint(UInt64(truncatingIfNeeded: value)) }
            endMessage(start)
        } else {
            for value in values { uint64(field, UInt64(truncatingIfNeeded: value)) }
        }
    }

    /// Starts a length-delimited field: writes its key and reserves one byte for the length,
    /// which `endMessage` patches (moving the body if the length needs more bytes).
    @inline(__always)
    public mutating func beginMessage(_ field: Int) -> Int {
        key(field, 2)
        let start = count
        byte(0)
        return start
    }

    @inline(__always)
    public mutating func endMessage(_ start: Int) {
        let length = count &- start &- 1
        if length < 0x80 {
            base[start] = UInt8(truncatingIfNeeded: length)
            return
        }
        let extra = varintSize(UInt64(length)) - 1
        assert(count + extra <= capacity)
        (base + start + 1 + extra).update(from: base + start + 1, count: length)
        let end = count &+ extra
        count = start
        varint(UInt64(length))
        count = end
    }

    /// A `ValueType` message; both fields are always written, as Go does.
    mutating func valueType(_ field: Int, type: Int64, unit: Int64) {
        reserve(Self.maximumMessageOverhead + 2 * Self.maximumScalarSize)
        let start = beginMessage(field)
        int64(1, type)
        int64(2, unit)
        endMessage(start)
    }

    /// A bytes field (checks capacity itself).
    public mutating func bytes(_ field: Int, _ value: UnsafeRawBufferPointer) {
        reserve(1 + 10 + value.count)
        key(field, 2)
        varint(UInt64(value.count))
        append(value)
    }

    /// A string field (checks capacity itself).
    public mutating func string(_ field: Int, _ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            reserve(1 + 10 + utf8.count)
            key(field, 2)
            varint(UInt64(utf8.count))
            if let source = utf8.baseAddress, utf8.count > 0 {
                (base + count).update(from: source, count: utf8.count)
                count += utf8.count
            }
        }
    }
}

@inline(__always)
func varintSize(_ value: UInt64) -> Int {
    value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
}

/// The string table under construction: index 0 is always "", others in order of first use.
///
/// Profiles repeat the same few strings (label keys and values) hundreds of thousands of times,
/// and hashing a `String` costs far more than the rest of encoding a sample, so a direct-mapped
/// memo keyed by the string's 16 raw bytes (its storage reference or its inline contents) answers
/// repeats. Equal raw bytes mean an equal string as long as the string is alive; every string
/// looked up here belongs to the profile being encoded, which outlives the table.
struct StringTable {
    private(set) var strings: [String] = [""]
    private var indices: [String: Int64] = ["": 0]
    private var memo: [MemoEntry]
    private static let memoSize = 1024

    private struct MemoEntry {
        var low: UInt64 = 0
        var high: UInt64 = 0
        var index: Int64 = -1
    }

    init(expectedCount: Int = 0) {
        strings.reserveCapacity(expectedCount + 1)
        indices.reserveCapacity(expectedCount + 1)
        memo = Array(repeating: MemoEntry(), count: Self.memoSize)
    }

    /// The index of `string`, adding it on first use.
    @inline(__always)
    mutating func index(_ string: String) -> Int64 {
        // Read in place: a copy of the string would be a retain and a release.
        let (low, high) = withUnsafeBytes(of: string) { $0.loadUnaligned(as: (UInt64, UInt64).self) }
        let slot = Int(truncatingIfNeeded: ((low ^ (high &* 0x9e37_79b9_7f4a_7c15)) &* 0xff51_afd7_ed55_8ccd) >> 54)
        let entry = memo[slot]
        if entry.index >= 0 && entry.low == low && entry.high == high { return entry.index }
        let index = lookUp(string)
        memo[slot] = MemoEntry(low: low, high: high, index: index)
        return index
    }

    private mutating func lookUp(_ string: String) -> Int64 {
        if string.isEmpty { return 0 }
        let candidate = Int64(strings.count)
        let index = Self.assign(&indices[string, default: -1], candidate)
        if index == candidate { strings.append(string) }
        return index
    }

    @inline(__always)
    private static func assign(_ slot: inout Int64, _ candidate: Int64) -> Int64 {
        if slot < 0 { slot = candidate }
        return slot
    }
}
