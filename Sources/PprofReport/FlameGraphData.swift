import Pprof

/// The compact JSON the UI draws from: the profile's stacks merged into one call tree (root
/// first, frames of the same function name under the same parent are one node, as in
/// `go tool pprof -http`'s flame graph), with every sample type's value per node, so the page can
/// switch sample types, zoom, search and compute the top table without asking again.
///
/// ```json
/// {"version":1, "header":["Type: cpu", …], "sampleTypes":[{"type":"cpu","unit":"nanoseconds"}],
///  "defaultIndex":0, "durationNanos":…, "totals":[…], "names":["root", "main", …],
///  "parentOffset":[0,1,1,…], "name":[0,1,…], "self":[[…per node…], …per sample type…],
///  "baseSelf":[[…]] (a diff only), "labels":{"route":["/search", …]}, "labelsTruncated":false,
///  "filters":["tagfocus=route=/search"]}
/// ```
///
/// `self[t][n]` is the value of the samples whose stack ends at node `n` in sample type `t`; a
/// node's total is its self value plus its children's totals (children come after their
/// parent). In a diff, `baseSelf` holds the base profile's values on the same tree and the
/// reports show `self - baseSelf`, as `go tool pprof -diff_base` does. `totals[t]` is what
/// percentages are of: go tool pprof's total, taken before filtering (the base's in a diff).
/// Node 0 is the root.
public enum FlameGraphData {
    /// Distinct values listed per label key, for the page's filter choices.
    public static let maximumLabelValues = 200

    /// The data of `profile` (minus `base`, when given) after `options`' filters; `options`'
    /// sample index picks the type the page starts with.
    public static func json(
        _ profile: ProfileData,
        base: ProfileData? = nil,
        options: ReportOptions = ReportOptions()
    ) throws -> [UInt8] {
        // Merging (as go tool pprof does) changes a total only where samples of one stack and
        // labels have values of both signs; without negative values it is skipped.
        func merged(_ profile: ProfileData) throws -> ProfileData {
            profile.samples.contains { $0.values.contains { $0 < 0 } } ? try ProfileData(merging: [profile]) : profile
        }
        let unfiltered = try merged(profile)
        let mergedBase = try base.map(merged)
        let report = try TextReport(merged: unfiltered, mergedBase: mergedBase, options: options)
        let totals = profile.sampleTypes.indices.map { TextReport.total(unfiltered, mergedBase, $0) }

        var tree = CallTree(typeCount: profile.sampleTypes.count)
        tree.add(report.profile)
        if let filteredBase = report.base { tree.add(filteredBase, asBase: true) }

        var out = JSONWriter()
        out.reserve(
            tree.parent.count * (8 + 8 * profile.sampleTypes.count * (base == nil ? 1 : 2)) + 64 * tree.names.count
        )
        out.raw("{\"version\":1,\"header\":")
        out.strings(report.headerLines)
        out.raw(",\"sampleTypes\":[")
        for (index, type) in profile.sampleTypes.enumerated() {
            if index > 0 { out.raw(",") }
            out.raw("{\"type\":")
            out.string(type.type)
            out.raw(",\"unit\":")
            out.string(type.unit)
            out.raw("}")
        }
        let duration = profile.durationNanos &+ (base?.durationNanos ?? 0)
        out.raw("],\"defaultIndex\":\(report.valueIndex),\"durationNanos\":\(duration),\"totals\":")
        out.integers(totals)
        out.raw(",\"names\":")
        out.strings(tree.names)
        // Node n's parent is n - parentOffset[n] (0 for the root): mostly 1, one digit each.
        out.raw(",\"parentOffset\":")
        out.integers(tree.parent.enumerated().map { $0.offset == 0 ? 0 : Int32($0.offset) - $0.element })
        out.raw(",\"name\":")
        out.integers(tree.nameOfNode)
        out.raw(",\"self\":")
        out.integerRows(tree.selfValues)
        if base != nil {
            out.raw(",\"baseSelf\":")
            out.integerRows(tree.baseSelfValues)
        }
        out.raw(",\"labels\":{")
        let labels = labelValues(unfiltered)
        for (index, key) in labels.values.keys.sorted().enumerated() {
            if index > 0 { out.raw(",") }
            out.string(key)
            out.raw(":")
            out.strings(labels.values[key]!.sorted())
        }
        out.raw("},\"labelsTruncated\":\(labels.truncated),\"filters\":")
        out.strings(report.activeFilters.dropFirst().map { $0.trimmingLeadingSpaces })
        out.raw("}")
        return out.bytes
    }

    /// Each label key's string values (at most `maximumLabelValues`), for the filter choices.
    static func labelValues(_ profile: ProfileData) -> (values: [String: Set<String>], truncated: Bool) {
        // Few keys, and usually few values each: lists searched in order beat hashing; a key's
        // values move to a set past 16.
        var keys: [String] = []
        var lists: [[String]] = []
        var sets: [Set<String>] = []
        var truncated = false
        // Decoded samples with equal labels share storage (`ProfileData(decoding:)`): a set seen
        // before is skipped by its address; equal sets elsewhere are only looked at again.
        var seen = Set<UnsafeRawPointer>()
        for sample in profile.samples {
            let storage = sample.labels.withUnsafeBufferPointer { $0.baseAddress.map(UnsafeRawPointer.init) }
            guard let storage, seen.insert(storage).inserted else { continue }
            for label in sample.labels {
                guard let value = label.string else { continue }
                let slot: Int
                if let known = keys.firstIndex(of: label.key) {
                    slot = known
                } else {
                    slot = keys.count
                    keys.append(label.key)
                    lists.append([])
                    sets.append([])
                }
                if lists[slot].count < 16 {
                    if !lists[slot].contains(value) { lists[slot].append(value) }
                } else if lists[slot].contains(value) || sets[slot].contains(value) {
                    continue
                } else if lists[slot].count + sets[slot].count < maximumLabelValues {
                    sets[slot].insert(value)
                } else {
                    truncated = true
                }
            }
        }
        let values = zip(lists, sets).map { list, set in set.union(list) }
        return (Dictionary(uniqueKeysWithValues: zip(keys, values)), truncated)
    }
}

/// The call tree of one or two profiles (a diff's base on the same nodes): a node per distinct
/// path of function names from the root.
struct CallTree {
    var names: [String] { nameTable.names }
    private(set) var parent: [Int32] = [-1]
    private(set) var nameOfNode: [Int32] = [0]
    private var nameTable = NameTable(["root"])
    private var firstChild: [Int32] = [-1]
    private var nextSibling: [Int32] = [-1]
    private var childCount: [Int32] = [0]
    private var children = ChildTable()
    private let typeCount: Int
    /// Each sample's leaf node and values (`typeCount` per sample), summed per node at the end:
    /// cheaper than growing a column per sample type with every new node.
    private var leaves: [Int32] = []
    private var leafValues: [Int64] = []
    private var baseLeaves: [Int32] = []
    private var baseLeafValues: [Int64] = []

    init(typeCount: Int) {
        self.typeCount = typeCount
    }

    /// `self[t][n]`: the value of the samples whose stack ends at node `n`, per sample type.
    var selfValues: [[Int64]] { Self.sum(leaves, leafValues, typeCount: typeCount, nodes: parent.count) }
    /// The same for the base's samples.
    var baseSelfValues: [[Int64]] { Self.sum(baseLeaves, baseLeafValues, typeCount: typeCount, nodes: parent.count) }

    private static func sum(_ leaves: [Int32], _ values: [Int64], typeCount: Int, nodes: Int) -> [[Int64]] {
        var columns = [[Int64]](repeating: [Int64](repeating: 0, count: nodes), count: typeCount)
        for type in 0..<typeCount {
            columns[type].withUnsafeMutableBufferPointer { column in
                for (index, leaf) in leaves.enumerated() { column[Int(leaf)] &+= values[index * typeCount + type] }
            }
        }
        return columns
    }

    /// Adds every sample of `profile` (to the base's values with `asBase`) at the node its stack
    /// ends in. Each distinct stack is walked once: a sample with the locations of the one before
    /// it (a stack's samples with other labels) or of an earlier one finds its node at once.
    mutating func add(_ profile: ProfileData, asBase: Bool = false) {
        var locationNames = LocationNames(profile)
        var globalName: [Int32] = []
        // The tree's name of each location with one frame (most), by id where ids are dense.
        let largestID = profile.locations.lazy.map(\.id).max() ?? 0
        var singleName = [Int32](
            repeating: -1,
            count: largestID < 4 * UInt64(profile.locations.count) + 64 ? Int(largestID) + 1 : 0
        )
        var previous: (locations: [UInt64], leaf: Int32)?
        var leafOfStack = StackTable()
        for sample in profile.samples {
            guard sample.values.count == typeCount else { continue }
            let leaf: Int32
            if let previous, previous.locations == sample.locationIDs {
                leaf = previous.leaf
            } else if let known = leafOfStack.leaf(of: sample.locationIDs) {
                leaf = known
                previous = (sample.locationIDs, known)
            } else {
                var node: Int32 = 0
                for id in sample.locationIDs.reversed() {
                    if id < UInt64(singleName.count), singleName[Int(id)] >= 0 {
                        node = child(of: node, named: singleName[Int(id)])
                        continue
                    }
                    let frames = locationNames.frames(of: id).names
                    while globalName.count < locationNames.names.count {
                        globalName.append(nameTable.intern(locationNames.names[globalName.count]))
                    }
                    if frames.count == 1, id < UInt64(singleName.count) {
                        singleName[Int(id)] = globalName[Int(frames[0])]
                    }
                    for frame in frames.reversed() { node = child(of: node, named: globalName[Int(frame)]) }
                }
                leaf = node
                previous = (sample.locationIDs, node)
                leafOfStack.insert(sample.locationIDs, leaf: node)
            }
            if asBase {
                baseLeaves.append(leaf)
                baseLeafValues.append(contentsOf: sample.values)
            } else {
                leaves.append(leaf)
                leafValues.append(contentsOf: sample.values)
            }
        }
    }

    /// A node's children are a list (first child, next sibling): most nodes have one or two, and
    /// the first is usually the node created right after it, so the walk stays in cache. A node
    /// with many children also gets them in `children`, a hash table.
    private mutating func child(of node: Int32, named name: Int32) -> Int32 {
        let index = Int(node)
        if childCount[index] > Self.listedChildren {
            let new = Int32(parent.count)
            let found = children.findOrInsert(
                UInt64(UInt32(bitPattern: node)) << 32 | UInt64(UInt32(bitPattern: name)),
                new
            )
            if found != new { return found }
            return append(node, name)
        }
        var candidate = firstChild[index]
        while candidate >= 0 {
            if nameOfNode[Int(candidate)] == name { return candidate }
            candidate = nextSibling[Int(candidate)]
        }
        let new = append(node, name)
        nextSibling[Int(new)] = firstChild[index]
        firstChild[index] = new
        childCount[index] += 1
        if childCount[index] > Self.listedChildren {
            // From now on this node's children are found by hashing.
            var listed = firstChild[index]
            while listed >= 0 {
                let key = UInt64(UInt32(bitPattern: node)) << 32 | UInt64(UInt32(bitPattern: nameOfNode[Int(listed)]))
                _ = children.findOrInsert(key, listed)
                listed = nextSibling[Int(listed)]
            }
        }
        return new
    }

    private static let listedChildren: Int32 = 8

    private mutating func append(_ node: Int32, _ name: Int32) -> Int32 {
        let new = Int32(parent.count)
        parent.append(node)
        nameOfNode.append(name)
        firstChild.append(-1)
        nextSibling.append(-1)
        childCount.append(0)
        return new
    }
}

/// (parent, name) → child: an open-addressing table with a multiplicative hash, several times
/// faster here than `Dictionary`'s seeded SipHash, which protects against hostile keys these
/// (our own node numbers) cannot be.
struct ChildTable {
    /// Slot `i` is `slots[2i]` (the key) and `slots[2i + 1]` (the value + 1; 0 when empty): one
    /// cache line per probe.
    private var slots = [UInt64](repeating: 0, count: 2048)
    private var count = 0
    private var shift: UInt64 = 64 - 10

    /// The value of `key`, or `value` after inserting it.
    mutating func findOrInsert(_ key: UInt64, _ value: Int32) -> Int32 {
        if (count + 1) * 8 > slots.count * 3 { grow() }
        let mask = slots.count / 2 - 1
        var slot = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
        return slots.withUnsafeMutableBufferPointer { table in
            while table[2 * slot + 1] != 0 {
                if table[2 * slot] == key { return Int32(truncatingIfNeeded: table[2 * slot + 1] - 1) }
                slot = (slot + 1) & mask
            }
            table[2 * slot] = key
            table[2 * slot + 1] = UInt64(UInt32(bitPattern: value)) + 1
            count += 1
            return value
        }
    }

    private mutating func grow() {
        let old = slots
        slots = [UInt64](repeating: 0, count: old.count * 2)
        shift -= 1
        count = 0
        for slot in 0..<old.count / 2 where old[2 * slot + 1] != 0 {
            _ = findOrInsert(old[2 * slot], Int32(truncatingIfNeeded: old[2 * slot + 1] - 1))
        }
    }
}

/// Stack (location ids) → its leaf node, with a cheap hash of the ids: each sample looks its
/// stack up once.
struct StackTable {
    private var hashes = [UInt64](repeating: 0, count: 1024)
    private var stacks = [[UInt64]](repeating: [], count: 1024)
    private var leaves = [Int32](repeating: -1, count: 1024)
    private var count = 0

    private static func hash(_ stack: [UInt64]) -> UInt64 {
        var hash: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(stack.count)
        for id in stack { hash = (hash ^ id) &* 0x9E37_79B9_7F4A_7C15 }
        return hash | 1
    }

    func leaf(of stack: [UInt64]) -> Int32? {
        let hash = Self.hash(stack)
        let mask = hashes.count - 1
        var slot = Int(truncatingIfNeeded: hash >> 20) & mask
        while hashes[slot] != 0 {
            if hashes[slot] == hash, stacks[slot] == stack { return leaves[slot] }
            slot = (slot + 1) & mask
        }
        return nil
    }

    mutating func insert(_ stack: [UInt64], leaf: Int32) {
        if (count + 1) * 4 > hashes.count * 3 { grow() }
        let hash = Self.hash(stack)
        let mask = hashes.count - 1
        var slot = Int(truncatingIfNeeded: hash >> 20) & mask
        while hashes[slot] != 0 { slot = (slot + 1) & mask }
        hashes[slot] = hash
        stacks[slot] = stack
        leaves[slot] = leaf
        count += 1
    }

    private mutating func grow() {
        let old = (hashes, stacks, leaves)
        hashes = [UInt64](repeating: 0, count: old.0.count * 2)
        stacks = [[UInt64]](repeating: [], count: old.0.count * 2)
        leaves = [Int32](repeating: -1, count: old.0.count * 2)
        count = 0
        for slot in old.0.indices where old.0[slot] != 0 { insert(old.1[slot], leaf: old.2[slot]) }
    }
}

/// Appends JSON to a byte array without building intermediate strings.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []

    mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

    mutating func reserve(_ count: Int) { bytes.reserveCapacity(count) }

    /// JSON written elsewhere, appended as it is.
    mutating func appendJSON(_ json: [UInt8]) { bytes.append(contentsOf: json) }

    mutating func integer<T: BinaryInteger>(_ value: T) {
        var magnitude = UInt64(value.magnitude)
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // up to 20 digits and a sign, written backwards
        withUnsafeMutableBytes(of: &digits) { buffer in
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 {
                start -= 1
                buffer[start] = UInt8(ascii: "-")
            }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[start...]))
        }
    }

    /// A JSON array of integers, written in place: at most 20 digits and a sign each.
    mutating func integers<T: BinaryInteger>(_ values: [T]) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: values.count * 22 + 2))
        let end = bytes.withUnsafeMutableBufferPointer { output -> Int in
            var position = start
            output[position] = UInt8(ascii: "[")
            position += 1
            var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
            for (index, value) in values.enumerated() {
                if index > 0 {
                    output[position] = UInt8(ascii: ",")
                    position += 1
                }
                if value < 0 {
                    output[position] = UInt8(ascii: "-")
                    position += 1
                }
                var magnitude = UInt64(value.magnitude)
                withUnsafeMutableBytes(of: &digits) { scratch in
                    var first = scratch.count
                    repeat {
                        first -= 1
                        scratch[first] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                        magnitude /= 10
                    } while magnitude > 0
                    for digit in first..<scratch.count {
                        output[position] = scratch[digit]
                        position += 1
                    }
                }
            }
            output[position] = UInt8(ascii: "]")
            return position + 1
        }
        bytes.removeLast(bytes.count - end)
    }

    mutating func integerRows<T: BinaryInteger>(_ rows: [[T]]) {
        bytes.append(UInt8(ascii: "["))
        for (index, row) in rows.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            integers(row)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    mutating func strings(_ values: [String]) {
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            string(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// A JSON string; `<` is escaped too, so the JSON can sit inside an HTML `<script>` element.
    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            bytes.append(UInt8(ascii: "\""))
            var plainUpTo = 0
            for byte in utf8 {
                if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
                    || byte == UInt8(ascii: "<") || byte == UInt8(ascii: ">") || byte == UInt8(ascii: "&")
                {
                    break
                }
                plainUpTo += 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[..<plainUpTo]))
            for byte in utf8[plainUpTo...] {
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                    bytes.append(UInt8(ascii: "\\"))
                    bytes.append(byte)
                case 0..<0x20, UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "&"):
                    let hex: StaticString = "0123456789abcdef"
                    bytes.append(contentsOf: "\\u00".utf8)
                    bytes.append(hex.utf8Start[Int(byte >> 4)])
                    bytes.append(hex.utf8Start[Int(byte & 15)])
                default: bytes.append(byte)
                }
            }
            bytes.append(UInt8(ascii: "\""))
        }
    }
}
