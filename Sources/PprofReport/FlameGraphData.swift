import Pprof

/// The compact JSON the UI draws from: the profile's stacks merged into one call tree (root
/// first, frames of the same function name under the same parent are one node, as in
/// `go tool pprof -http`'s flame graph), with every sample type's value per node, so the page can
/// switch sample types, zoom, search and compute the top table without asking again.
///
/// ```json
/// {"version":1, "header":["Type: cpu", …], "sampleTypes":[{"type":"cpu","unit":"nanoseconds"}],
///  "defaultIndex":0, "totals":[…], "names":["root", "main", …],
///  "parent":[-1,0,…], "name":[0,1,…], "values":[[…per node…], …per sample type…],
///  "labels":{"route":["/search", …]}, "labelsTruncated":false}
/// ```
///
/// `values[t][n]` is node `n`'s cumulative value in sample type `t`; a node's own (self) value is
/// that minus its children's. Node 0 is the root (all samples).
public enum FlameGraphData {
    /// Distinct values listed per label key, for the page's filter choices.
    public static let maximumLabelValues = 200

    public static func json(_ profile: ProfileData, header: [String] = []) -> [UInt8] {
        let stacks = FunctionStacks(profile)
        let typeCount = profile.sampleTypes.count
        var names = ["root"]
        names.append(contentsOf: stacks.names)
        var parent: [Int32] = [-1]
        var nameOfNode: [Int32] = [0]
        var values = [[Int64]](repeating: [0], count: typeCount)
        var children: [UInt64: Int32] = [:]
        children.reserveCapacity(stacks.names.count * 4)

        for (sample, stack) in zip(profile.samples, stacks.stacks) {
            let sampleValues = sample.values
            guard sampleValues.count == typeCount else { continue }
            for type in 0..<typeCount { values[type][0] &+= sampleValues[type] }
            var node: Int32 = 0
            for frame in stack.reversed() {
                let name = frame + 1
                let key = UInt64(UInt32(bitPattern: node)) << 32 | UInt64(UInt32(bitPattern: name))
                if let child = children[key] {
                    node = child
                } else {
                    let child = Int32(parent.count)
                    parent.append(node)
                    nameOfNode.append(name)
                    for type in 0..<typeCount { values[type].append(0) }
                    children[key] = child
                    node = child
                }
                for type in 0..<typeCount { values[type][Int(node)] &+= sampleValues[type] }
            }
        }

        var labelValues: [String: Set<String>] = [:]
        var labelsTruncated = false
        for sample in profile.samples {
            for label in sample.labels {
                guard let value = label.string else { continue }
                if labelValues[label.key, default: []].count < maximumLabelValues {
                    labelValues[label.key, default: []].insert(value)
                } else if !labelValues[label.key, default: []].contains(value) {
                    labelsTruncated = true
                }
            }
        }

        var out = JSONWriter()
        out.raw("{\"version\":1,\"header\":")
        out.strings(header)
        out.raw(",\"sampleTypes\":[")
        for (index, type) in profile.sampleTypes.enumerated() {
            if index > 0 { out.raw(",") }
            out.raw("{\"type\":")
            out.string(type.type)
            out.raw(",\"unit\":")
            out.string(type.unit)
            out.raw("}")
        }
        let defaultIndex = (try? profile.reportValueIndex(nil)) ?? 0
        out.raw("],\"defaultIndex\":\(defaultIndex),\"durationNanos\":\(profile.durationNanos),\"totals\":[")
        for type in 0..<typeCount {
            if type > 0 { out.raw(",") }
            var total: Int64 = 0
            for sample in profile.samples where type < sample.values.count {
                total &+= sample.values[type] < 0 ? 0 &- sample.values[type] : sample.values[type]
            }
            out.integer(total)
        }
        out.raw("],\"names\":")
        out.strings(names)
        out.raw(",\"parent\":")
        out.integers(parent)
        out.raw(",\"name\":")
        out.integers(nameOfNode)
        out.raw(",\"values\":[")
        for type in 0..<typeCount {
            if type > 0 { out.raw(",") }
            out.integers(values[type])
        }
        out.raw("],\"labels\":{")
        for (index, key) in labelValues.keys.sorted().enumerated() {
            if index > 0 { out.raw(",") }
            out.string(key)
            out.raw(":")
            out.strings(labelValues[key]!.sorted())
        }
        out.raw("},\"labelsTruncated\":\(labelsTruncated)}")
        return out.bytes
    }
}

/// Appends JSON to a byte array without building intermediate strings.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []

    mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

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
