import Glibc
import Pprof

/// The text reports of `go tool pprof`: `-top`, `-traces` and `-tags`, from a profile already
/// filtered (`SampleFilter`). Layouts follow google/pprof's `report` package.
public struct TextReport {
    public let profile: ProfileData
    public let base: ProfileData?
    public let valueIndex: Int
    public let options: ReportOptions
    /// Go's total: the sum of absolute values before filtering, or in a diff the base's sum
    /// (`computeTotal`).
    public let totalForPercentages: Int64

    /// Applies `options`' filters to `profile` (and `base`, for a diff) and picks the value column.
    public init(profile: ProfileData, base: ProfileData? = nil, options: ReportOptions = ReportOptions()) throws {
        // go tool pprof merges what it reads (samples with one stack and labels become one) and
        // takes the total for percentages before filtering.
        try self.init(
            merged: try ProfileData(merging: [profile]),
            mergedBase: try base.map { try ProfileData(merging: [$0]) },
            options: options
        )
    }

    /// The same from profiles already merged (or whose merging changes no report: no negative
    /// values, so every total is a plain sum).
    init(merged: ProfileData, mergedBase: ProfileData?, options: ReportOptions) throws {
        let filter = try SampleFilter(options)
        valueIndex = try merged.reportValueIndex(options.sampleIndex)
        if let base = mergedBase {
            guard base.sampleTypes.map(\.type) == merged.sampleTypes.map(\.type) else {
                throw ReportError(
                    "the base profile's sample types (\(base.sampleTypes.map(\.description).joined(separator: ", "))) "
                        + "differ from the profile's (\(merged.sampleTypes.map(\.description).joined(separator: ", ")))"
                )
            }
        }
        totalForPercentages = Self.total(merged, mergedBase, valueIndex)
        self.profile = filter.apply(to: merged)
        self.base = mergedBase.map { filter.apply(to: $0) }
        self.options = options
    }

    var unit: String { profile.sampleTypes[valueIndex].unit }

    /// `File:`, `Build ID:`, comments, `Type:`, `Time:`, `Duration:`: how go tool pprof starts
    /// every text report (google/pprof's `ProfileLabels`). `format` prints the total.
    public func headerLines(format: (Int64) -> String) -> [String] {
        var lines: [String] = []
        if let main = profile.mappings.first {
            if !main.filename.isEmpty {
                lines.append("File: " + (main.filename.split(separator: "/").last.map(String.init) ?? main.filename))
            }
            if !main.buildID.isEmpty { lines.append("Build ID: " + main.buildID) }
        }
        lines += profile.comments.filter { !$0.hasPrefix("#") }
        lines.append("Type: " + profile.sampleTypes[valueIndex].type)
        if profile.timeNanos != 0 { lines.append("Time: " + Self.goTime(profile.timeNanos)) }
        // A diff is the two profiles merged: their durations add up.
        let duration = profile.durationNanos &+ (base?.durationNanos ?? 0)
        if duration != 0 {
            let total = totalForPercentages
            var line = "Duration: " + ValueFormat.label(duration, unit: "nanoseconds")
            line += ", Total samples = " + format(total) + " "
            let nanos = ValueFormat.converted(total, from: unit, to: 1)
            if let nanos, nanos != 0 {
                line += "(" + ValueFormat.percentage(Int64(nanos), of: duration) + ")"
            }
            lines.append(line)
        }
        return lines
    }

    /// The header with values scaled one by one (as `traces` prints it).
    public var headerLines: [String] { headerLines { ValueFormat.label($0, unit: unit) } }

    static func total(_ profile: ProfileData, _ base: ProfileData?, _ valueIndex: Int) -> Int64 {
        func absoluteSum(_ profile: ProfileData) -> Int64 {
            profile.samples.reduce(Int64(0)) { sum, sample in
                guard valueIndex < sample.values.count else { return sum }
                let value = sample.values[valueIndex]
                return sum &+ (value < 0 ? 0 &- value : value)
            }
        }
        if let base {
            let baseTotal = absoluteSum(base)
            if baseTotal > 0 { return baseTotal }
        }
        return absoluteSum(profile)
    }

    /// The unit of a numeric label: its own, else google/pprof's guess from the key
    /// (`alignment` and `request` are bytes, any other key is its own unit, e.g. `bytes`).
    static func numberUnit(_ label: ProfileData.Label) -> String {
        if let unit = label.numberUnit, !unit.isEmpty { return unit }
        return label.key == "alignment" || label.key == "request" ? "bytes" : label.key
    }

    /// `Dec 6, 2026 at 1:46pm (UTC)`: Go's layout `Jan 2, 2006 at 3:04pm (MST)`, in UTC.
    static func goTime(_ nanos: Int64) -> String {
        var seconds = time_t(nanos / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let hour = parts.tm_hour % 12 == 0 ? 12 : parts.tm_hour % 12
        let minute = parts.tm_min < 10 ? "0\(parts.tm_min)" : "\(parts.tm_min)"
        return "\(months[Int(parts.tm_mon)]) \(parts.tm_mday), \(parts.tm_year + 1900) at "
            + "\(hour):\(minute)\(parts.tm_hour < 12 ? "am" : "pm") (UTC)"
    }

    /// What `top` shows (google/pprof's `newTrimmedGraph`): functions whose |cum| reaches the
    /// node fraction of the summed flat values, then at most `nodeCount` of them; each name marked
    /// `(inline)` or `(partial-inline)` as go tool pprof marks it.
    public struct Top: Sendable {
        public var rows: [FunctionTotals.Row]
        /// The total the percentages are of.
        public var total: Int64
        /// Functions left out by the node fraction.
        public var dropped: Int
        /// Functions left after the node fraction (before `nodeCount`).
        public var remaining: Int
        /// The sample unit every value of the report is scaled to (`ms`, `MB`, …), as Go picks it.
        public var outputScale: (factor: Double, name: String)?
    }

    public func topRows() -> Top {
        let totals = FunctionTotals(profile, valueIndex: valueIndex, base: base)
        let flatSum = totals.rows.reduce(Int64(0)) { $0 &+ $1.flat }
        let cutoff = Int64(Double(flatSum) * options.nodeFraction).magnitude
        var rows = cutoff > 0 ? totals.rows.filter { $0.cum.magnitude >= cutoff } : totals.rows
        let dropped = totals.rows.count - rows.count
        let remaining = rows.count
        if let count = options.nodeCount, count > 0, rows.count > count { rows.removeLast(rows.count - count) }
        rows = markInlined(rows)
        return Top(
            rows: rows,
            total: totalForPercentages,
            dropped: dropped,
            remaining: remaining,
            outputScale: outputScale(rows, total: totalForPercentages)
        )
    }

    /// google/pprof's `selectOutputUnit`: the unit of the smallest nonzero value shown, or a larger
    /// one (down to 0.01 of it) when the total is more than 100 times that value.
    func outputScale(_ rows: [FunctionTotals.Row], total: Int64) -> (factor: Double, name: String)? {
        var minimum: Int64 = 0
        for row in rows {
            var value = row.flat.magnitude == 0 ? row.cum.magnitude : row.flat.magnitude
            value = min(value, UInt64(Int64.max))
            if value > 0 && (minimum == 0 || Int64(value) < minimum) { minimum = Int64(value) }
        }
        if minimum == 0 { minimum = total }
        let minimumUnit = ValueFormat.scaledUnit(minimum, unit: unit)
        let maximumUnit = ValueFormat.scaledUnit(total, unit: unit)
        var chosen = minimumUnit
        if minimumUnit?.name != maximumUnit?.name && minimum.multipliedReportingOverflow(by: 100).partialValue < total {
            chosen = ValueFormat.scaledUnit(minimum &* 100, unit: unit)
        }
        return chosen
    }

    /// Adds ` (inline)` to a function every call edge into which (between functions shown) is an
    /// inlined call, ` (partial-inline)` when only some are.
    func markInlined(_ rows: [FunctionTotals.Row]) -> [FunctionTotals.Row] {
        var edges: [String: [String: Bool]] = [:]  // callee → caller → every traversal inlined
        func scan(_ profile: ProfileData) {
            let stacks = FunctionStacks(profile)
            let kept = Set(rows.map(\.name))
            let keptIndex = stacks.names.map { kept.contains($0) }
            for (sample, (stack, inlined)) in zip(profile.samples, zip(stacks.stacks, stacks.inlined)) {
                guard valueIndex < sample.values.count, sample.values[valueIndex] != 0 else { continue }
                var parent: Int32 = -1
                var seen = Set<UInt64>()
                for position in stack.indices.reversed() {
                    let node = stack[position]
                    guard keptIndex[Int(node)] else { continue }
                    if parent >= 0, parent != node {
                        let pair = UInt64(UInt32(parent)) << 32 | UInt64(UInt32(node))
                        if seen.insert(pair).inserted {
                            let callee = stacks.names[Int(node)]
                            let caller = stacks.names[Int(parent)]
                            let previous = edges[callee]?[caller] ?? true
                            edges[callee, default: [:]][caller] = previous && inlined[position]
                        }
                    }
                    parent = node
                }
            }
        }
        scan(profile)
        if let base { scan(base) }
        return rows.map { row in
            guard let callers = edges[row.name] else { return row }
            var row = row
            let inline = callers.values.contains(true)
            let notInline = callers.values.contains(false)
            if inline { row.name += notInline ? " (partial-inline)" : " (inline)" }
            return row
        }
    }

    /// The active filters, as go tool pprof lists them.
    var activeFilters: [String] {
        var filters: [String] = []
        if let focus = options.focus, !focus.isEmpty { filters.append("focus=" + focus) }
        if let ignore = options.ignore, !ignore.isEmpty { filters.append("ignore=" + ignore) }
        if let tagFocus = options.tagFocus, !tagFocus.isEmpty { filters.append("tagfocus=" + tagFocus) }
        if let tagIgnore = options.tagIgnore, !tagIgnore.isEmpty { filters.append("tagignore=" + tagIgnore) }
        return filters.isEmpty ? [] : ["Active filters:"] + filters.map { "   " + $0 }
    }

    /// `go tool pprof -top`.
    public func top() -> String {
        let top = topRows()
        func format(_ value: Int64) -> String {
            guard let scale = top.outputScale else { return ValueFormat.label(value, unit: unit) }
            return ValueFormat.label(value, scale: scale)
        }
        var lines = headerLines(format: format)
        lines += activeFilters
        let shown = top.rows.reduce(Int64(0)) { $0 &+ $1.flat }
        lines.append(
            "Showing nodes accounting for \(format(shown)), \(ValueFormat.percentage(shown, of: top.total).trimmingLeadingSpaces) of \(format(top.total)) total"
        )
        if top.total != 0 {
            if top.dropped > 0 {
                let cutoff = Int64(Double(top.total) * options.nodeFraction).magnitude
                lines.append(
                    "Dropped \(top.dropped) node\(top.dropped == 1 ? "" : "s") (cum <= \(format(Int64(min(cutoff, UInt64(Int64.max))))))"
                )
            }
            if !top.rows.isEmpty, top.rows.count < top.remaining {
                lines.append("Showing top \(top.rows.count) nodes out of \(top.remaining)")
            }
        }
        lines.append("      flat  flat%   sum%        cum   cum%")
        var sum: Int64 = 0
        for row in top.rows {
            sum &+= row.flat
            lines.append(
                ValueFormat.padded(format(row.flat), 10) + " " + ValueFormat.percentage(row.flat, of: top.total) + " "
                    + ValueFormat.percentage(sum, of: top.total) + " " + ValueFormat.padded(format(row.cum), 10) + " "
                    + ValueFormat.percentage(row.cum, of: top.total) + "  " + row.name
            )
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `go tool pprof -traces`: every sample's stack with its labels and value.
    public func traces() -> String {
        let separator = "-----------+-------------------------------------------------------"
        var lines = headerLines
        // A diff lists the base's samples after the profile's, negated and marked as go tool pprof
        // marks them.
        let parts: [(profile: ProfileData, isBase: Bool)] = [(profile, false)] + (base.map { [($0, true)] } ?? [])
        for (part, isBase) in parts {
            let stacks = FunctionStacks(part)
            for (sample, (stack, inlined)) in zip(part.samples, zip(stacks.stacks, stacks.inlined)) {
                guard !stack.isEmpty, valueIndex < sample.values.count else { continue }
                lines.append(separator)
                var strings: [String: [String]] = isBase ? ["pprof::base": ["true"]] : [:]
                var numbers: [String: [String]] = [:]
                for label in sample.labels {
                    if let value = label.string {
                        strings[label.key, default: []].append(value)
                    } else if let number = label.number {
                        numbers[label.key, default: []]
                            .append(ValueFormat.label(number, unit: Self.numberUnit(label)))
                    }
                }
                lines += strings.map { ValueFormat.padded($0.key, 10) + ":  " + $0.value.joined(separator: " ") }
                    .sorted()
                lines += numbers.map { ValueFormat.padded($0.key, 10) + ":  " + $0.value.joined(separator: " ") }
                    .sorted()
                let value = isBase ? 0 &- sample.values[valueIndex] : sample.values[valueIndex]
                for (position, name) in stack.enumerated() {
                    lines.append(
                        ValueFormat.padded(position == 0 ? ValueFormat.label(value, unit: unit) : "", 10) + "   "
                            + stacks.names[Int(name)] + (inlined[position] ? " (inline)" : "")
                    )
                }
            }
        }
        lines.append(separator)
        return lines.joined(separator: "\n") + "\n"
    }

    /// `go tool pprof -tags`: per label key, the value of each label value and its share, in
    /// right-aligned columns as Go's tabwriter sets them.
    public func tags() -> String {
        var byKey: [String: [String: Int64]] = [:]
        for sample in profile.samples where valueIndex < sample.values.count {
            let value = sample.values[valueIndex]
            for label in sample.labels {
                let text = label.string ?? ValueFormat.label(label.number ?? 0, unit: Self.numberUnit(label))
                byKey[label.key, default: [:]][text, default: 0] &+= value
            }
        }
        func scaled(_ value: Int64) -> String {
            let (number, name) = ValueFormat.scaled(value, unit: unit)
            return ValueFormat.fixed(number, decimals: 1) + name
        }
        var out = ""
        for key in byKey.keys.sorted() {
            let values = byKey[key]!
            let total = values.values.reduce(Int64(0), &+)
            let ordered = values.sorted {
                $0.value.magnitude != $1.value.magnitude ? $0.value.magnitude > $1.value.magnitude : $0.key < $1.key
            }
            let cells = ordered.map { name, value in
                (scaled(value) + (total > 0 ? " (\(ValueFormat.percentage(value, of: total))):" : ":"), name)
            }
            // Cell widths plus one space of padding, per column of this key's block.
            let keyWidth = max(key.count + 1, 1) + 1
            let valueWidth = (cells.map(\.0.count).max() ?? 0) + 1
            out += ValueFormat.padded(key + ":", keyWidth) + " Total " + scaled(total) + "\n"
            for (cell, name) in cells {
                out += ValueFormat.padded(" ", keyWidth) + ValueFormat.padded(cell, valueWidth) + " " + name + "\n"
            }
            out += "\n"
        }
        return out
    }
}

extension String {
    var trimmingLeadingSpaces: String { String(drop { $0 == " " }) }
}
