import Pprof

/// The compact JSON the UI draws from: the profile's stacks merged into one call tree (root
/// first, frames of the same function name under the same parent are one node, as in
/// `go tool pprof -http`'s flame graph), with every sample type's value per node, so the page can
/// switch sample types, zoom, search and compute the top table without asking again.
///
/// ```json
/// {"version":1, "header":["Type: cpu", …], "sampleTypes":[{"type":"cpu","unit":"nanoseconds"}],
///  "defaultIndex":0, "durationNanos":…, "totals":[…], "names":["root", "main", …],
///  "parent":[-1,0,…], "name":[0,1,…], "self":[[…per node…], …per sample type…],
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
        let report = try TextReport(profile: profile, base: base, options: options)
        let unfiltered = try ProfileData(merging: [profile])
        let mergedBase = try base.map { try ProfileData(merging: [$0]) }
        let totals = profile.sampleTypes.indices.map { TextReport.total(unfiltered, mergedBase, $0) }

        var tree = CallTree(typeCount: profile.sampleTypes.count)
        tree.add(report.profile, into: \.selfValues)
        if let filteredBase = report.base { tree.add(filteredBase, into: \.baseSelfValues) }

        var out = JSONWriter()
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
        out.raw(",\"parent\":")
        out.integers(tree.parent)
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
        var values: [String: Set<String>] = [:]
        var truncated = false
        for sample in profile.samples {
            for label in sample.labels {
                guard let value = label.string else { continue }
                if values[label.key, default: []].count < maximumLabelValues {
                    values[label.key, default: []].insert(value)
                } else if !values[label.key, default: []].contains(value) {
                    truncated = true
                }
            }
        }
        return (values, truncated)
    }
}

/// The call tree of one or two profiles (a diff's base on the same nodes): a node per distinct
/// path of function names from the root.
struct CallTree {
    private(set) var names = ["root"]
    private(set) var parent: [Int32] = [-1]
    private(set) var nameOfNode: [Int32] = [0]
    var selfValues: [[Int64]]
    var baseSelfValues: [[Int64]]
    private var nameIndex: [String: Int32] = ["root": 0]
    private var children: [UInt64: Int32] = [:]

    init(typeCount: Int) {
        selfValues = [[Int64]](repeating: [0], count: typeCount)
        baseSelfValues = selfValues
    }

    /// Adds every sample of `profile` at the node its stack ends in. Samples with the same
    /// locations find their node once.
    mutating func add(_ profile: ProfileData, into column: WritableKeyPath<CallTree, [[Int64]]>) {
        let stacks = FunctionStacks(profile)
        let globalName = stacks.names.map { name -> Int32 in
            if let known = nameIndex[name] { return known }
            let new = Int32(names.count)
            names.append(name)
            nameIndex[name] = new
            return new
        }
        let typeCount = selfValues.count
        var leafOfStack: [[UInt64]: Int32] = [:]
        for (sample, stack) in zip(profile.samples, stacks.stacks) {
            guard sample.values.count == typeCount else { continue }
            let leaf: Int32
            if let known = leafOfStack[sample.locationIDs] {
                leaf = known
            } else {
                var node: Int32 = 0
                for frame in stack.reversed() { node = child(of: node, named: globalName[Int(frame)]) }
                leafOfStack[sample.locationIDs] = node
                leaf = node
            }
            for type in 0..<typeCount { self[keyPath: column][type][Int(leaf)] &+= sample.values[type] }
        }
    }

    private mutating func child(of node: Int32, named name: Int32) -> Int32 {
        let key = UInt64(UInt32(bitPattern: node)) << 32 | UInt64(UInt32(bitPattern: name))
        if let known = children[key] { return known }
        let new = Int32(parent.count)
        parent.append(node)
        nameOfNode.append(name)
        for type in selfValues.indices {
            selfValues[type].append(0)
            baseSelfValues[type].append(0)
        }
        children[key] = new
        return new
    }
}

/// Appends JSON to a byte array without building intermediate strings.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []

    mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// JSON written elsewhere, appended as it is.
    mutating func appendJSON(_ json: [UInt8]) { bytes.append(contentsOf: json) }

    mutating func integer<T: BinaryInteger>(_ value: T) {
        if value == 0 {
            bytes.append(UInt8(ascii: "0"))
            return
        }
        var magnitude = value.magnitude
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // up to 20 digits, written backwards
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            while magnitude > 0 {
                buffer[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) { bytes.append(buffer[index]) }
        }
    }

    mutating func integers<T: BinaryInteger>(_ values: [T]) {
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            integer(value)
        }
        bytes.append(UInt8(ascii: "]"))
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
        bytes.append(UInt8(ascii: "\""))
        let hex = Array("0123456789abcdef".utf8)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0..<0x20, UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "&"):
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 15)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
