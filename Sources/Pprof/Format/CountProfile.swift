/// A count profile — custom profiles, `goroutine` and `threadcreate` — written as Go's
/// `printCountProfile` writes it: records with the same stack and labels are counted together,
/// ordered by count (descending), then by their `@ …` text.
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
    var comments: [String] = []

    private struct Group {
        var key: String
        var record: Record
        var count: Int
    }

    private func groups() -> [Group] {
        var index: [String: Int] = [:]
        var groups: [Group] = []
        for record in records {
            var key = LegacyText.addressList(record.stack)
            if !record.labels.isEmpty { key += "\n# labels: " + LegacyText.labelString(record.labels) }
            if let at = index[key] {
                groups[at].count += 1
            } else {
                index[key] = groups.count
                groups.append(Group(key: key, record: record, count: 1))
            }
        }
        return groups.sorted {
            $0.count != $1.count ? $0.count > $1.count : Array($0.key.utf8).lexicographicallyPrecedes($1.key.utf8)
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
        var text = "\(name) profile: total \(records.count)\n"
        for group in groups() {
            text += "\(group.count) \(group.key)\n"
            text += LegacyText.stackRecord(
                group.record.stack,
                allFrames: false,
                symbolizer: symbolizer,
                isHiddenLeadingFrame: isHiddenLeadingFrame
            )
        }
        return TabWriter.format(text)
    }

    func profileData(symbolizer: Symbolizer = .shared) -> ProfileData {
        let type = ProfileData.ValueType(type: name, unit: "count")
        var builder = ProfileBuilder(
            sampleTypes: [type],
            periodType: type,
            period: 1,
            comments: comments,
            symbolizer: symbolizer
        )
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
