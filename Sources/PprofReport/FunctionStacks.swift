import Pprof

/// Strings numbered in the order they first come, each once.
struct NameTable {
    private(set) var names: [String] = []
    private var index: [String: Int32] = [:]

    init(_ first: [String] = []) {
        for name in first { _ = intern(name) }
    }

    mutating func intern(_ name: String) -> Int32 {
        if let known = index[name] { return known }
        let new = Int32(names.count)
        names.append(name)
        index[name] = new
        return new
    }
}

/// The function names of a profile's locations, interned: each location's frames (inlined first,
/// as pprof lists them) as indices into `names`, looked up once per location.
struct LocationNames {
    /// Node names; a location without symbols is named by its mapping's file (`[libc.so.6]`), as
    /// google/pprof names a node that has only an object file.
    var names: [String] { table.names }
    private var table = NameTable()
    /// Each location's frames, by location id when ids are dense (as in profiles we write),
    /// else in `sparseCache`.
    private var denseCache: [Frames?] = []
    private var sparseCache: [UInt64: Frames] = [:]
    private let functionNames: [UInt64: String]
    private let mappingFiles: [UInt64: String]
    private let locations: [UInt64: ProfileData.Location]

    struct Frames {
        var names: [Int32]
        var inlined: [Bool]
    }

    init(_ profile: ProfileData) {
        functionNames = Dictionary(profile.functions.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
        mappingFiles = Dictionary(
            profile.mappings.map { ($0.id, $0.filename) },
            uniquingKeysWith: { first, _ in first }
        )
        locations = Dictionary(profile.locations.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let largestID = profile.locations.lazy.map(\.id).max() ?? 0
        if largestID < 4 * UInt64(profile.locations.count) + 64 {
            denseCache = [Frames?](repeating: nil, count: Int(largestID) + 1)
        }
    }

    /// Names are interned only for locations some sample uses, so a filtered profile's leftover
    /// tables name nothing.
    mutating func frames(of id: UInt64) -> Frames {
        let dense = id < UInt64(denseCache.count)
        if dense, let known = denseCache[Int(id)] { return known }
        if !dense, let known = sparseCache[id] { return known }
        var frames = Frames(names: [], inlined: [])
        if let location = locations[id] {
            for (position, line) in location.lines.enumerated() {
                let name = functionNames[line.functionID] ?? ""
                frames.names.append(table.intern(name.isEmpty ? objectName(location) : name))
                frames.inlined.append(position < location.lines.count - 1)
            }
            if frames.names.isEmpty {
                frames.names.append(table.intern(objectName(location)))
                frames.inlined.append(false)
            }
        } else {
            frames.names.append(table.intern("<unknown>"))
            frames.inlined.append(false)
        }
        if dense { denseCache[Int(id)] = frames } else { sparseCache[id] = frames }
        return frames
    }

    private func objectName(_ location: ProfileData.Location) -> String {
        guard let file = mappingFiles[location.mappingID], !file.isEmpty else { return "<unknown>" }
        let base = file.split(separator: "/").last.map(String.init) ?? file
        return "[\(base)]"
    }
}

/// Every sample's stack as function-name indices (leaf first, inlined frames expanded), the
/// `functions` granularity of `go tool pprof`: frames of the same function name are one node.
struct FunctionStacks {
    /// Node names (`LocationNames.names`).
    var names: [String] { locationNames.names }
    /// Per sample: its frames' name indices, leaf first.
    private(set) var stacks: [[Int32]] = []
    /// Per frame of `stacks`: whether the frame is inlined into its caller.
    private(set) var inlined: [[Bool]] = []
    private var locationNames: LocationNames

    init(_ profile: ProfileData) {
        locationNames = LocationNames(profile)
        stacks.reserveCapacity(profile.samples.count)
        inlined.reserveCapacity(profile.samples.count)
        for sample in profile.samples {
            var stack: [Int32] = []
            var flags: [Bool] = []
            stack.reserveCapacity(sample.locationIDs.count)
            for id in sample.locationIDs {
                let location = locationNames.frames(of: id)
                stack.append(contentsOf: location.names)
                flags.append(contentsOf: location.inlined)
            }
            stacks.append(stack)
            inlined.append(flags)
        }
    }
}

/// Flat and cumulative values per function, as `go tool pprof -top` computes them: flat is the
/// value of samples whose leaf frame is the function, cum the value of samples with the function
/// anywhere in the stack (once per sample, however often it recurses).
public struct FunctionTotals: Sendable {
    public struct Row: Sendable, Hashable {
        public var name: String
        public var flat: Int64
        public var cum: Int64
    }

    /// Every function with a nonzero flat or cum value (or both, in a diff).
    public private(set) var rows: [Row]
    /// The total the percentages are relative to: the sum of absolute sample values, or in a
    /// diff the sum of the base's (Go's `computeTotal`).
    public private(set) var total: Int64

    /// The totals of column `valueIndex` of `profile`, minus those of `base` when given.
    public init(_ profile: ProfileData, valueIndex: Int, base: ProfileData? = nil) {
        var byName: [String: (flat: Int64, cum: Int64)] = [:]
        var total: Int64 = 0
        func add(_ profile: ProfileData, sign: Int64) -> Int64 {
            let stacks = FunctionStacks(profile)
            var sum: Int64 = 0
            var seen = Set<Int32>()
            var flat = [Int64](repeating: 0, count: stacks.names.count)
            var cum = [Int64](repeating: 0, count: stacks.names.count)
            for (sample, stack) in zip(profile.samples, stacks.stacks) {
                guard valueIndex < sample.values.count else { continue }
                let value = sample.values[valueIndex]
                if value == 0 { continue }
                sum &+= value < 0 ? 0 &- value : value
                if let leaf = stack.first { flat[Int(leaf)] &+= value }
                seen.removeAll(keepingCapacity: true)
                for name in stack where seen.insert(name).inserted { cum[Int(name)] &+= value }
            }
            for (index, name) in stacks.names.enumerated() where flat[index] != 0 || cum[index] != 0 {
                byName[name, default: (0, 0)].flat &+= sign &* flat[index]
                byName[name, default: (0, 0)].cum &+= sign &* cum[index]
            }
            return sum
        }
        total = add(profile, sign: 1)
        if let base {
            let baseTotal = add(base, sign: -1)
            if baseTotal > 0 { total = baseTotal }
        }
        self.total = total
        rows = byName.compactMap { name, values in
            values.flat == 0 && values.cum == 0 ? nil : Row(name: name, flat: values.flat, cum: values.cum)
        }
        // go tool pprof's FlatNameOrder: |flat| descending, then name, then |cum| descending.
        rows.sort { left, right in
            if left.flat.magnitude != right.flat.magnitude { return left.flat.magnitude > right.flat.magnitude }
            if left.name != right.name { return left.name < right.name }
            return left.cum.magnitude > right.cum.magnitude
        }
    }
}
