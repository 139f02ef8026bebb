import Glibc
import Synchronization

/// Pseudo-frames for what a stack cannot show, like Go's `runtime._LostExternalCode`. They are
/// stored in stacks as small integers that no code address can take.
enum SyntheticFrame: UInt, CaseIterable, Sendable {
    /// Samples dropped because the profiler's buffers were full (Go: `lostProfileEvent`).
    case lostSamples = 1
    /// The stack was deeper than the walk's limit; outer frames are missing.
    case truncatedStack = 2
    /// The walk stopped at a frame it could not unwind; outer frames are missing.
    case unwindStopped = 3
    /// A count-profile entry whose stack is empty (Go: `lostProfileEvent`).
    case emptyStack = 4
    /// A thread dump could not sample this thread: it blocks the dump signal.
    case threadBlocksSignal = 5
    /// A thread dump could not sample this thread: it did not answer in time.
    case threadDidNotAnswer = 6

    static let maximumRawValue: UInt = 0xfff

    var functionName: String {
        switch self {
        case .lostSamples: return "pprof.lostSamples"
        case .truncatedStack: return "pprof.truncatedStack"
        case .unwindStopped: return "pprof.unwindStopped"
        case .emptyStack: return "pprof.lostProfileEvent"
        case .threadBlocksSignal: return "pprof.threadBlocksSignal"
        case .threadDidNotAnswer: return "pprof.threadDidNotAnswer"
        }
    }

    /// The pseudo-function of a stack entry at or below `maximumRawValue`.
    static func functionName(forEntry entry: UInt) -> String {
        SyntheticFrame(rawValue: entry)?.functionName ?? "pprof.unknownFrame"
    }
}

/// Turns raw stacks and values into `ProfileData`, the way Go's `profileBuilder` does.
///
/// Stack entries are return addresses, leaf first (see `pp_unwind.h`). Each distinct entry is
/// symbolized once and becomes one Location whose address is the call PC (entry − 1), with one
/// Line per inlined function, innermost first. Functions are shared by name, system name and file.
/// Mappings are the executable lines of `/proc/self/maps` (read when the builder is created, and
/// once more if an address falls outside all of them), with GNU build IDs so tools can symbolize
/// offline; each mapping's `has_*` flags say what every one of its locations got.
///
/// Samples with the same stack share one location-ID array, and `build()` puts them next to each
/// other (stacks in first-seen order, samples of a stack in the order added). Sample order means
/// nothing in pprof, but gzip only finds repeats within 32 KiB: for a CPU profile whose samples
/// arrive in hash-table order, grouping makes the file about 4× smaller and 4× faster to compress.
struct ProfileBuilder {
    private let symbolize: (UInt) -> [SymbolFrame]
    private var profile: ProfileData
    private var locationIDs = AddressTable()
    private var functionIDs: [FunctionKey: UInt64] = [:]
    private var mappings: MappingTable
    /// Distinct stacks seen so far, and the stack of each sample.
    private var stacks = StackTable()
    private var sampleStacks: [Int32] = []
    /// Whether `build()` groups samples by stack; off to keep the order samples were added in.
    var groupsSamplesByStack = true
    /// The form of Swift function names (see `FunctionNameStyle`); functions are still told apart
    /// by their full name, so specializations folded into one name stay separate functions with
    /// their own `system_name`.
    var functionNames = Profile.functionNames

    private struct FunctionKey: Hashable {
        var name: String
        var systemName: String
        var file: String
    }

    init(
        sampleTypes: [ProfileData.ValueType],
        periodType: ProfileData.ValueType?,
        period: Int64,
        defaultSampleType: String = "",
        timeNanos: Int64 = currentUnixNanos(),
        durationNanos: Int64 = 0,
        comments: [String] = [],
        symbolizer: Symbolizer = .shared
    ) {
        self.init(
            sampleTypes: sampleTypes,
            periodType: periodType,
            period: period,
            defaultSampleType: defaultSampleType,
            timeNanos: timeNanos,
            durationNanos: durationNanos,
            comments: comments,
            processMappings: nil,
            symbolize: { symbolizer.frames(at: $0) }
        )
    }

    /// A builder with its own symbolization and mappings (tests, offline use). `processMappings`
    /// nil means this process's `/proc/self/maps`.
    init(
        sampleTypes: [ProfileData.ValueType],
        periodType: ProfileData.ValueType?,
        period: Int64,
        defaultSampleType: String = "",
        timeNanos: Int64 = currentUnixNanos(),
        durationNanos: Int64 = 0,
        comments: [String] = [],
        processMappings: [MemoryMapping]?,
        symbolize: @escaping (UInt) -> [SymbolFrame]
    ) {
        self.symbolize = symbolize
        self.profile = ProfileData(
            sampleTypes: sampleTypes,
            timeNanos: timeNanos,
            durationNanos: durationNanos,
            periodType: periodType,
            period: period,
            comments: comments,
            defaultSampleType: defaultSampleType
        )
        self.mappings = MappingTable(fixed: processMappings)
    }

    /// Adds one sample. `stack` holds return-address-style entries, leaf first; `values` has one
    /// value per sample type.
    mutating func addSample(stack: [UInt], values: [Int64], labels: [ProfileData.Label] = []) {
        stack.withUnsafeBufferPointer { addSample(stack: $0, values: values, labels: labels) }
    }

    /// Adds one sample whose stack is in a buffer (no copy of the stack is made).
    mutating func addSample(stack: UnsafeBufferPointer<UInt>, values: [Int64], labels: [ProfileData.Label] = []) {
        assert(values.count == profile.sampleTypes.count, "one value per sample type")
        let hash = StackTable.hash(stack)
        let index: Int
        if let known = stacks.index(of: stack, hash: hash) {
            index = known
        } else {
            var ids: [UInt64] = []
            ids.reserveCapacity(stack.count)
            for entry in stack {
                ids.append(locationIDs[entry] ?? addLocation(for: entry))
            }
            index = stacks.add(stack, ids: ids, hash: hash)
        }
        sampleStacks.append(Int32(truncatingIfNeeded: index))
        profile.samples.append(ProfileData.Sample(locationIDs: stacks.ids[index], values: values, labels: labels))
    }

    /// The number of samples added so far.
    var sampleCount: Int { profile.samples.count }

    private mutating func addLocation(for entry: UInt) -> UInt64 {
        let id = UInt64(profile.locations.count + 1)
        var location = ProfileData.Location(id: id, mappingID: 0, address: 0, lines: [])
        if entry <= SyntheticFrame.maximumRawValue {
            let name = SyntheticFrame.functionName(forEntry: entry)
            location.lines = [ProfileData.Line(functionID: functionID(name: name, systemName: name, file: ""), line: 0)]
            location.mappingID = mappings.isFake ? 1 : 0
        } else {
            let address = entry - 1
            location.address = UInt64(address)
            let frames = symbolize(address)
            location.lines.reserveCapacity(frames.count)
            for frame in frames {
                let function = functionID(
                    name: frame.name,
                    systemName: frame.systemName,
                    file: frame.file,
                    startLine: frame.startLine
                )
                location.lines.append(ProfileData.Line(functionID: function, line: Int64(frame.line)))
            }
            if let index = mappings.index(containing: UInt64(address)) {
                location.mappingID = UInt64(index + 1)
                mappings.record(frames, at: index)
            }
        }
        profile.locations.append(location)
        locationIDs.insert(entry, id)
        return id
    }

    private mutating func functionID(name: String, systemName: String, file: String, startLine: Int = 0) -> UInt64 {
        let key = FunctionKey(name: name, systemName: systemName, file: file)
        if let id = functionIDs[key] { return id }
        let id = UInt64(profile.functions.count + 1)
        profile.functions.append(
            ProfileData.Function(
                id: id,
                name: displayName(name, systemName: systemName, style: functionNames),
                systemName: systemName,
                filename: file,
                startLine: Int64(startLine)
            )
        )
        functionIDs[key] = id
        return id
    }

    /// The finished profile.
    func build() -> ProfileData {
        var result = profile
        result.mappings = mappings.profileMappings()
        if groupsSamplesByStack && stacks.count < profile.samples.count {
            // A stable counting sort by stack index (= first-seen order).
            var starts = [Int](repeating: 0, count: stacks.count + 1)
            for stack in sampleStacks { starts[Int(stack) + 1] += 1 }
            for index in 0..<stacks.count { starts[index + 1] += starts[index] }
            var order = [Int](repeating: 0, count: sampleStacks.count)
            for (sample, stack) in sampleStacks.enumerated() {
                order[starts[Int(stack)]] = sample
                starts[Int(stack)] += 1
            }
            result.samples = order.map { profile.samples[$0] }
        }
        return result
    }
}

/// From stack entries to location IDs: open addressing with a multiplicative hash, several times
/// faster than `Dictionary` (SipHash) on the millions of lookups a large profile makes.
struct AddressTable {
    private var keys: [UInt]
    private var values: [UInt64]
    private var count = 0
    /// `UInt.max` marks an empty slot; the entry `UInt.max` itself is kept aside.
    private var maxKeyValue: UInt64?

    init(capacity: Int = 1024) {
        let size = max(16, (capacity * 2).nextPowerOfTwo)
        keys = Array(repeating: .max, count: size)
        values = Array(repeating: 0, count: size)
    }

    @inline(__always)
    private static func slot(_ key: UInt, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (UInt64(key) &* 0x9e37_79b9_7f4a_7c15) >> 32) & mask
    }

    subscript(key: UInt) -> UInt64? {
        if key == .max { return maxKeyValue }
        return keys.withUnsafeBufferPointer { keys in
            let mask = keys.count - 1
            var slot = Self.slot(key, mask)
            while true {
                let found = keys[slot]
                if found == key { return values[slot] }
                if found == .max { return nil }
                slot = (slot + 1) & mask
            }
        }
    }

    mutating func insert(_ key: UInt, _ value: UInt64) {
        if key == .max {
            maxKeyValue = value
            return
        }
        if (count + 1) * 2 > keys.count { grow() }
        let mask = keys.count - 1
        var slot = Self.slot(key, mask)
        while keys[slot] != .max && keys[slot] != key { slot = (slot + 1) & mask }
        if keys[slot] == .max { count += 1 }
        keys[slot] = key
        values[slot] = value
    }

    private mutating func grow() {
        var bigger = AddressTable(capacity: keys.count)
        for (index, key) in keys.enumerated() where key != .max { bigger.insert(key, values[index]) }
        bigger.maxKeyValue = maxKeyValue
        self = bigger
    }
}

private extension Int {
    var nextPowerOfTwo: Int { self <= 1 ? 1 : 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount) }
}

/// The distinct stacks of a profile, found by a hash of their entries (and compared in full).
private struct StackTable {
    private var entries: [[UInt]] = []
    private(set) var ids: [[UInt64]] = []
    private var byHash = AddressTable()

    var count: Int { ids.count }

    static func hash(_ stack: UnsafeBufferPointer<UInt>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(stack.count)
        for entry in stack {
            hash = (hash ^ UInt64(entry)) &* 0x9e37_79b9_7f4a_7c15
            hash ^= hash >> 29
        }
        return hash
    }

    func index(of stack: UnsafeBufferPointer<UInt>, hash: UInt64) -> Int? {
        guard let found = byHash[UInt(truncatingIfNeeded: hash)] else { return nil }
        let index = Int(found)
        let equal = entries[index].withUnsafeBufferPointer { known in
            known.count == stack.count
                && (stack.isEmpty
                    || memcmp(known.baseAddress!, stack.baseAddress!, stack.count * MemoryLayout<UInt>.size) == 0)
        }
        return equal ? index : nil
    }

    /// Adds a stack; on a hash collision the newer stack is simply not found by hash later.
    mutating func add(_ stack: UnsafeBufferPointer<UInt>, ids: [UInt64], hash: UInt64) -> Int {
        let index = self.ids.count
        entries.append(Array(stack))
        self.ids.append(ids)
        let key = UInt(truncatingIfNeeded: hash)
        if byHash[key] == nil { byHash.insert(key, UInt64(index)) }
        return index
    }
}

/// The executable mappings of a profile and what symbolization found in each.
private struct MappingTable {
    /// Mappings in profile order (ID = index + 1); the main executable comes first.
    private var mappings: [MemoryMapping]
    /// Indices into `mappings`, sorted by start address, for binary search.
    private var sorted: [Int] = []
    private var coverage: [Coverage]
    /// Whether `/proc/self/maps` may be read again when an address is in no mapping.
    private var canRefresh: Bool
    /// No mapping could be read: one fake mapping stands for everything, as in Go.
    private(set) var isFake = false

    /// What every location seen in a mapping had.
    struct Coverage {
        var used = false
        var functions = true
        var files = true
        var lines = true
    }

    init(fixed: [MemoryMapping]?) {
        canRefresh = fixed == nil
        mappings = ProcessMaps.executableMappings(fixed ?? ProcessMaps.current())
        coverage = Array(repeating: Coverage(), count: mappings.count)
        if mappings.isEmpty {
            isFake = true
            canRefresh = false
            mappings = [MemoryMapping(start: 0, limit: .max, permissions: "r-xp", fileOffset: 0, inode: 0, path: "")]
            coverage = [Coverage()]
        }
        sortIndex()
    }

    private mutating func sortIndex() {
        sorted = mappings.indices.sorted { mappings[$0].start < mappings[$1].start }
    }

    /// The index of the mapping holding `address`, reading the maps again once (for images
    /// loaded after the builder was made) if none does.
    mutating func index(containing address: UInt64) -> Int? {
        if let index = lookUp(address) { return index }
        guard canRefresh else { return nil }
        canRefresh = false
        let known = Set(mappings.map { Key(start: $0.start, limit: $0.limit, path: $0.path) })
        for mapping in ProcessMaps.executableMappings(ProcessMaps.current())
        where !known.contains(Key(start: mapping.start, limit: mapping.limit, path: mapping.path)) {
            mappings.append(mapping)
            coverage.append(Coverage())
        }
        sortIndex()
        return lookUp(address)
    }

    private struct Key: Hashable {
        var start: UInt64
        var limit: UInt64
        var path: String
    }

    private func lookUp(_ address: UInt64) -> Int? {
        // The last mapping starting at or below the address.
        var low = 0
        var high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if mappings[sorted[middle]].start <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        let index = sorted[low - 1]
        return address < mappings[index].limit ? index : nil
    }

    mutating func record(_ frames: [SymbolFrame], at index: Int) {
        coverage[index].used = true
        if frames.isEmpty {
            coverage[index].functions = false
            coverage[index].files = false
            coverage[index].lines = false
            return
        }
        for frame in frames {
            if frame.name.isEmpty { coverage[index].functions = false }
            if frame.file.isEmpty { coverage[index].files = false }
            if frame.line <= 0 { coverage[index].lines = false }
        }
    }

    /// The profile's Mapping messages. A flag is set when every location in the mapping had it;
    /// line numbers come from debug info, which is also where inlined frames come from, so
    /// `has_inline_frames` follows `has_line_numbers`. Unused mappings claim nothing (as in Go).
    func profileMappings() -> [ProfileData.Mapping] {
        mappings.enumerated().map { index, mapping in
            let seen = coverage[index]
            return ProfileData.Mapping(
                id: UInt64(index + 1),
                memoryStart: isFake ? 0 : mapping.start,
                memoryLimit: isFake ? 0 : mapping.limit,
                fileOffset: mapping.fileOffset,
                filename: mapping.path,
                buildID: isFake ? "" : BuildIDCache.shared.buildID(for: mapping),
                hasFunctions: seen.used && seen.functions,
                hasFilenames: seen.used && seen.files,
                hasLineNumbers: seen.used && seen.lines,
                hasInlineFrames: seen.used && seen.lines
            )
        }
    }
}

/// GNU build IDs of mapped files, read once per file (path and inode, so a replaced file is read
/// again).
final class BuildIDCache: Sendable {
    static let shared = BuildIDCache()
    private let cache = Mutex<[Key: String]>([:])

    private struct Key: Hashable {
        var path: String
        var inode: UInt64
    }

    func buildID(for mapping: MemoryMapping) -> String {
        buildID(forPath: mapping.path, inode: mapping.inode)
    }

    func buildID(forPath path: String, inode: UInt64 = 0) -> String {
        let key = Key(path: path, inode: inode)
        if let known = cache.withLock({ $0[key] }) { return known }
        let id: String
        if path.isEmpty || path.hasPrefix("[") {
            id = ""
        } else {
            id = (try? ELFFile(path: path))?.buildID ?? ""
        }
        cache.withLock { $0[key] = id }
        return id
    }
}

func currentUnixNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
