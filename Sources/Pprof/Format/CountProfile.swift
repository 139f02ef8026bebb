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
        var record: Record
        var count: Int
        /// Where the group's key is in `Groups.keys`: the `@ …` text, plus the `# labels:` line
        /// when the record has labels.
        var key: Range<Int>
    }

    struct Groups {
        var list: [Group]
        /// Every group's key, as UTF-8.
        var keys: [UInt8]

        func key(of group: Group) -> String { String(decoding: keys[group.key], as: UTF8.self) }
    }

    /// A record's identity for grouping: its stack and its labels in any order, as the text key
    /// (which sorts the labels) tells records apart.
    private struct Identity: Hashable {
        var record: Record

        static func == (a: Identity, b: Identity) -> Bool {
            let (x, y) = (a.record.labels, b.record.labels)
            guard a.record.stack == b.record.stack, x.count == y.count else { return false }
            if x.elementsEqual(y, by: ==) { return true }
            return x.allSatisfy { label in
                x.count(where: { $0 == label }) == y.count(where: { $0 == label })
            }
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(record.stack)
            // Order-independent: a sum of each label's own hash.
            var labels = 0
            for label in record.labels {
                var own = Hasher()
                own.combine(label.key)
                own.combine(label.value)
                labels &+= own.finalize()
            }
            hasher.combine(labels)
        }
    }

    /// The records grouped and ordered as Go prints them.
    func groups() -> Groups {
        // Grouped by identity first, so that each group's key is formatted once (tasks at one
        // await share a stack and labels).
        var index: [Identity: Int] = [:]
        var grouped: [(record: Record, count: Int)] = []
        for record in records {
            let identity = Identity(record: record)
            if let at = index[identity] {
                grouped[at].count += 1
            } else {
                index[identity] = grouped.count
                grouped.append((record, 1))
            }
        }
        // Many groups share a stack (threads parked alike, tasks at one await with other labels).
        var addressLists: [[UInt]: [UInt8]] = [:]
        var keys: [UInt8] = []
        var scratch: [UInt8] = []
        var list: [Group] = []
        list.reserveCapacity(grouped.count)
        for (record, count) in grouped {
            let start = keys.count
            if let known = addressLists[record.stack] {
                keys.append(contentsOf: known)
            } else {
                LegacyText.appendAddressList(record.stack, to: &keys)
                addressLists[record.stack] = Array(keys[start...])
            }
            if !record.labels.isEmpty {
                keys.append(contentsOf: "\n# labels: ".utf8)
                LegacyText.appendLabelString(record.labels, to: &keys, scratch: &scratch)
            }
            list.append(Group(record: record, count: count, key: start..<keys.count))
        }
        keys.withUnsafeBufferPointer { bytes in
            list.sort {
                $0.count != $1.count ? $0.count > $1.count : LegacyText.compareBytes(bytes, $0.key, bytes, $1.key) < 0
            }
        }
        return Groups(list: list, keys: keys)
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
        let groups = groups()
        for group in groups.list {
            text += "\(group.count) \(groups.key(of: group))\n"
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
        for group in groups().list {
            builder.addSample(
                stack: group.record.stack,
                values: [Int64(group.count)],
                labels: group.record.labels.map { ProfileData.Label(key: $0.key, string: $0.value) }
            )
        }
        return builder.build()
    }
}
