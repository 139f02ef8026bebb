/// A profile in the data model of google/pprof's `profile.proto`, with strings resolved.
///
/// This is what every profile kind produces and what `ProfileData(decoding:)` reads back: the
/// writer turns it into gzip-compressed protobuf (building the string table), the reader turns
/// protobuf (gzip or not) into it. IDs are the proto's: nonzero and unique per message kind;
/// `Sample.locationIDs` lists the leaf first; `Location.lines` lists the innermost inlined
/// function first and the physical function last.
public struct ProfileData: Sendable, Hashable {
    /// What a value column counts, e.g. `cpu`/`nanoseconds` or `inuse_space`/`bytes`.
    public struct ValueType: Sendable, Hashable, CustomStringConvertible {
        public var type: String
        public var unit: String

        public init(type: String, unit: String) {
            self.type = type
            self.unit = unit
        }

        public var description: String { "\(type)/\(unit)" }
    }

    /// A sample label: a string value, or a number with an optional unit. On the wire a label
    /// with an empty string, or the number 0 without a unit, carries nothing; readers (google/pprof
    /// and this one) drop it.
    public struct Label: Sendable, Hashable {
        public var key: String
        /// The value of a string label; nil for a numeric one.
        public var string: String?
        /// The value of a numeric label; nil for a string one.
        public var number: Int64?
        /// The unit of a numeric label (e.g. `bytes`), if any.
        public var numberUnit: String?

        public init(key: String, string: String) {
            self.key = key
            self.string = string
        }

        public init(key: String, number: Int64, unit: String? = nil) {
            self.key = key
            self.number = number
            self.numberUnit = unit
        }
    }

    /// One stack with its values.
    public struct Sample: Sendable, Hashable {
        /// IDs of `Location`s, leaf first.
        public var locationIDs: [UInt64]
        /// One value per sample type.
        public var values: [Int64]
        public var labels: [Label]

        public init(locationIDs: [UInt64], values: [Int64], labels: [Label] = []) {
            self.locationIDs = locationIDs
            self.values = values
            self.labels = labels
        }
    }

    /// A mapped executable image: where it was in memory and which file it came from.
    public struct Mapping: Sendable, Hashable {
        public var id: UInt64
        /// The first run-time address of the mapping.
        public var memoryStart: UInt64
        /// One past its last run-time address.
        public var memoryLimit: UInt64
        /// The file offset mapped at `memoryStart`.
        public var fileOffset: UInt64
        /// The file's path (or a name such as `[vdso]`).
        public var filename: String
        /// The file's GNU build ID in lower-case hex, "" when unknown; tools use it to find the
        /// binary for offline symbolization.
        public var buildID: String
        /// Every location in this mapping has function names (tools then skip symbolizing it).
        public var hasFunctions: Bool
        /// Every location in this mapping has file names.
        public var hasFilenames: Bool
        /// Every location in this mapping has line numbers.
        public var hasLineNumbers: Bool
        /// Inlined calls have been expanded into several lines per location.
        public var hasInlineFrames: Bool

        public init(
            id: UInt64,
            memoryStart: UInt64,
            memoryLimit: UInt64,
            fileOffset: UInt64,
            filename: String,
            buildID: String,
            hasFunctions: Bool = false,
            hasFilenames: Bool = false,
            hasLineNumbers: Bool = false,
            hasInlineFrames: Bool = false
        ) {
            self.id = id
            self.memoryStart = memoryStart
            self.memoryLimit = memoryLimit
            self.fileOffset = fileOffset
            self.filename = filename
            self.buildID = buildID
            self.hasFunctions = hasFunctions
            self.hasFilenames = hasFilenames
            self.hasLineNumbers = hasLineNumbers
            self.hasInlineFrames = hasInlineFrames
        }
    }

    /// One function at a location; several for inlined calls.
    public struct Line: Sendable, Hashable {
        /// The ID of a `Function`.
        public var functionID: UInt64
        /// The source line, 0 when unknown.
        public var line: Int64
        /// The source column, 0 when unknown (Go does not write it).
        public var column: Int64

        public init(functionID: UInt64, line: Int64, column: Int64 = 0) {
            self.functionID = functionID
            self.line = line
            self.column = column
        }
    }

    /// A code address and the functions (inlined ones first) it stands for.
    public struct Location: Sendable, Hashable {
        public var id: UInt64
        /// The ID of the `Mapping` holding the address; 0 for none.
        public var mappingID: UInt64
        /// The call PC: the return address minus one (or the interrupted PC for a CPU leaf).
        public var address: UInt64
        /// Innermost (inlined) function first, the physical function last.
        public var lines: [Line]
        /// Set when several addresses were folded into this one (tools may merge them).
        public var isFolded: Bool

        public init(id: UInt64, mappingID: UInt64, address: UInt64, lines: [Line], isFolded: Bool = false) {
            self.id = id
            self.mappingID = mappingID
            self.address = address
            self.lines = lines
            self.isFolded = isFolded
        }
    }

    /// A function: its names and where its source is.
    public struct Function: Sendable, Hashable {
        public var id: UInt64
        /// The demangled name.
        public var name: String
        /// The linker symbol (the mangled name for Swift).
        public var systemName: String
        /// The source file, "" when unknown.
        public var filename: String
        /// The first line of the function, 0 when unknown.
        public var startLine: Int64

        public init(id: UInt64, name: String, systemName: String, filename: String, startLine: Int64 = 0) {
            self.id = id
            self.name = name
            self.systemName = systemName
            self.filename = filename
            self.startLine = startLine
        }
    }

    /// The value columns of every sample.
    public var sampleTypes: [ValueType]
    public var samples: [Sample]
    /// The main executable first, by convention.
    public var mappings: [Mapping]
    public var locations: [Location]
    public var functions: [Function]
    /// A regular expression of frames tools should drop ("" for none; Go never sets it).
    public var dropFrames: String
    /// A regular expression of frames tools should keep despite `dropFrames`.
    public var keepFrames: String
    /// Collection time, Unix nanoseconds.
    public var timeNanos: Int64
    /// How long the profile covers, in nanoseconds (CPU and delta profiles).
    public var durationNanos: Int64
    /// What one unit of `period` is, e.g. `cpu`/`nanoseconds`.
    public var periodType: ValueType?
    /// Events between samples (10,000,000 ns at 100 Hz; the heap sampling rate in bytes).
    public var period: Int64
    /// Free-form notes shown by tools.
    public var comments: [String]
    /// The preferred sample type; empty means tools use the last one.
    public var defaultSampleType: String

    public init(
        sampleTypes: [ValueType] = [],
        samples: [Sample] = [],
        mappings: [Mapping] = [],
        locations: [Location] = [],
        functions: [Function] = [],
        dropFrames: String = "",
        keepFrames: String = "",
        timeNanos: Int64 = 0,
        durationNanos: Int64 = 0,
        periodType: ValueType? = nil,
        period: Int64 = 0,
        comments: [String] = [],
        defaultSampleType: String = ""
    ) {
        self.sampleTypes = sampleTypes
        self.samples = samples
        self.mappings = mappings
        self.locations = locations
        self.functions = functions
        self.dropFrames = dropFrames
        self.keepFrames = keepFrames
        self.timeNanos = timeNanos
        self.durationNanos = durationNanos
        self.periodType = periodType
        self.period = period
        self.comments = comments
        self.defaultSampleType = defaultSampleType
    }
}

/// From message IDs to array indices, rejecting zero and repeated IDs. IDs are usually dense (1…n
/// in order, as Go and this library write them), which needs no table.
struct IDIndex {
    private let isDense: Bool
    private let count: Int
    private let table: [UInt64: Int]

    init(_ ids: [UInt64], kind: String) throws {
        count = ids.count
        if ids.enumerated().allSatisfy({ $0.element == UInt64($0.offset + 1) }) {
            isDense = true
            table = [:]
            return
        }
        isDense = false
        var table: [UInt64: Int] = [:]
        table.reserveCapacity(ids.count)
        for (index, id) in ids.enumerated() {
            guard id != 0, table.updateValue(index, forKey: id) == nil else {
                throw PprofError.malformedProfile("\(kind) id \(id) is zero or repeated")
            }
        }
        self.table = table
    }

    subscript(id: UInt64) -> Int? {
        if isDense { return id >= 1 && id <= UInt64(count) ? Int(id - 1) : nil }
        return table[id]
    }
}
