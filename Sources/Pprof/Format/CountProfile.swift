#if canImport(Glibc)
    import Glibc
#endif

/// A count profile — custom profiles, `goroutine` and `threadcreate` — written as Go's
/// `printCountProfile` writes it: records with the same stack and labels are counted together and
/// ordered by count (descending), then by their `@ …` text (byte-wise); the protobuf form has one
/// sample per group in that order, with type and period type `<name>/count` and period 1.
struct CountProfile {
    struct Record {
        /// Return-address-style entries, leaf first.
        var stack: [UInt]
        var labels: [(key: String, value: String)] = []
    }

    var name: String
    var records: [Record]
    /// Leading frames hidden in debug=1 text until the first shown one.
    var isHiddenLeadingFrame: (String) -> Bool = { _ in false }
    /// Frames never shown in debug=1 text.
    var isHiddenFrame: (String) -> Bool = { _ in false }
    var comments: [String] = []

    struct Group {
        /// The `@ …` text, plus the `# labels:` line when the record has labels.
        var key: String
        var record: Record
        var count: Int
    }

    /// The records grouped and ordered as Go prints them.
    func groups() -> [Group] {
        var index: [String: Int] = [:]
        var groups: [Group] = []
        // Many records share a stack (threads parked alike, tasks at one await): formatted once.
        var addressLists: [[UInt]: String] = [:]
        for record in records {
            var key: String
            if let known = addressLists[record.stack] {
                key = known
            } else {
                key = LegacyText.addressList(record.stack)
                addressLists[record.stack] = key
            }
            if !record.labels.isEmpty { key += "\n# labels: " + LegacyText.labelString(record.labels) }
            if let at = index[key] {
                groups[at].count += 1
            } else {
                index[key] = groups.count
                groups.append(Group(key: key, record: record, count: 1))
            }
        }
        return groups.sorted { $0.count != $1.count ? $0.count > $1.count : Self.utf8Precedes($0.key, $1.key) }
    }

    /// `a.utf8.lexicographicallyPrecedes(b.utf8)` with one memcmp: keys share long stack prefixes,
    /// which the element-wise comparison walks byte by byte.
    static func utf8Precedes(_ a: String, _ b: String) -> Bool {
        var (a, b) = (a, b)
        return a.withUTF8 { x in
            b.withUTF8 { y in
                let common = min(x.count, y.count)
                let order = common == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, common)
                return order != 0 ? order < 0 : x.count < y.count
            }
        }
    }

    func write(to sink: some ProfileSink, debug: Int) throws {
        if debug > 0 {
            try sink.write(legacyText())
        } else {
            try profileData().write(to: sink)
        }
    }

    func legacyText(symbolizer: Symbolizer = .shared) -> String {
        legacyText(symbolize: { symbolizer.frames(at: $0) })
    }

    /// The debug=1 text: `<name> profile: total <records>`, then per group `<count> @ …`, the
    /// `# labels:` line if any, and its frame lines, aligned by `TabWriter`.
    func legacyText(symbolize: (UInt) -> [SymbolFrame]) -> String {
        var text = "\(name) profile: total \(records.count)\n"
        for group in groups() {
            text += "\(group.count) \(group.key)\n"
            text += LegacyText.stackRecord(
                group.record.stack,
                allFrames: false,
                symbolize: symbolize,
                isHiddenLeadingFrame: isHiddenLeadingFrame,
                isHiddenFrame: isHiddenFrame
            )
        }
        return TabWriter.format(text)
    }

    func profileData(symbolizer: Symbolizer = .shared) -> ProfileData {
        var builder = ProfileBuilder(
            sampleTypes: [sampleType],
            periodType: sampleType,
            period: 1,
            comments: comments,
            symbolizer: symbolizer
        )
        return addGroups(to: &builder)
    }

    /// The protobuf form with its own symbolization and mappings (tests).
    func profileData(processMappings: [MemoryMapping]?, symbolize: @escaping (UInt) -> [SymbolFrame]) -> ProfileData {
        var builder = ProfileBuilder(
            sampleTypes: [sampleType],
            periodType: sampleType,
            period: 1,
            comments: comments,
            processMappings: processMappings,
            symbolize: symbolize
        )
        return addGroups(to: &builder)
    }

    private var sampleType: ProfileData.ValueType { ProfileData.ValueType(type: name, unit: "count") }

    private func addGroups(to builder: inout ProfileBuilder) -> ProfileData {
        // Go's order (count, then key), even where two groups share a stack with other labels.
        builder.groupsSamplesByStack = false
        for group in groups() {
            builder.addSample(
                stack: group.record.stack,
                values: [Int64(group.count)],
                labels: group.record.labels.map { ProfileData.Label(key: $0.key, string: $0.value) }
            )
        }
        return builder.build()
    }
}
