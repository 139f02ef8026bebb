/// Scaling, merging and subtracting profiles with google/pprof's semantics (`Profile.Scale`,
/// `ScaleN`, `Merge`), as `net/http/pprof` uses them for `?seconds=` deltas.
extension ProfileData {
    /// Every value multiplied by `ratio` and rounded half away from zero, as Go's `Scale` does;
    /// samples whose values all become zero are dropped. A ratio of 1 returns the profile as it is.
    /// Results beyond the range of `Int64` are clamped (a NaN product becomes 0) instead of trapping.
    public func scaled(by ratio: Double) -> ProfileData {
        // Cannot throw: the ratios match the sample types by construction.
        (try? scaled(by: Array(repeating: ratio, count: sampleTypes.count))) ?? self
    }

    /// Each value column multiplied by its own ratio (Go's `ScaleN`). A sample is kept if any of
    /// the columns whose ratio is not 1 is nonzero afterwards. Throws if `ratios` does not have
    /// one entry per sample type.
    public func scaled(by ratios: [Double]) throws -> ProfileData {
        guard ratios.count == sampleTypes.count else {
            throw PprofError.invalidArgument(
                "mismatched scale ratios: got \(ratios.count), want \(sampleTypes.count)"
            )
        }
        if ratios.allSatisfy({ $0 == 1 }) { return self }
        var result = self
        result.samples = []
        result.samples.reserveCapacity(samples.count)
        for var sample in samples {
            var keep = false
            for (column, ratio) in ratios.enumerated() where ratio != 1 && column < sample.values.count {
                let value = Self.roundedProduct(sample.values[column], ratio)
                sample.values[column] = value
                keep = keep || value != 0
            }
            if keep { result.samples.append(sample) }
        }
        return result
    }

    /// Only the sample types named in `types` (in the profile's order), with their value columns;
    /// samples left all zero are dropped. Go's `pprof -sample_index` keeps one such column.
    public func keepingSampleTypes(_ types: Set<String>) -> ProfileData {
        let columns = sampleTypes.indices.filter { types.contains(sampleTypes[$0].type) }
        if columns.count == sampleTypes.count { return self }
        var result = self
        result.sampleTypes = columns.map { sampleTypes[$0] }
        if !types.contains(defaultSampleType) { result.defaultSampleType = "" }
        result.samples = samples.compactMap { sample in
            let values = columns.map { $0 < sample.values.count ? sample.values[$0] : 0 }
            guard values.contains(where: { $0 != 0 }) else { return nil }
            return Sample(locationIDs: sample.locationIDs, values: values, labels: sample.labels)
        }
        return result
    }

    static func roundedProduct(_ value: Int64, _ ratio: Double) -> Int64 {
        let product = (Double(value) * ratio).rounded(.toNearestOrAwayFromZero)
        if product.isNaN { return 0 }
        // 2^63 is exactly representable; anything at or above it does not fit.
        if product >= 9_223_372_036_854_775_808.0 { return .max }
        if product < -9_223_372_036_854_775_808.0 { return .min }
        return Int64(product)
    }

    /// Throws unless `other` has the same period type and sample types (type and unit, in order),
    /// which merging and subtracting require.
    public func checkCompatible(with other: ProfileData) throws {
        guard periodType == other.periodType else {
            throw PprofError.invalidArgument(
                "incompatible period types \(periodType?.description ?? "none") and \(other.periodType?.description ?? "none")"
            )
        }
        guard sampleTypes == other.sampleTypes else {
            throw PprofError.invalidArgument("incompatible sample types \(sampleTypes) and \(other.sampleTypes)")
        }
    }

    /// Merges profiles as google/pprof's `profile.Merge` does: samples with the same stack (same
    /// functions, lines and addresses relative to their mapping) and the same labels are summed
    /// into one, samples whose values are all zero are dropped, and mappings, locations and
    /// functions are shared and numbered afresh. The profiles must be compatible
    /// (`checkCompatible(with:)`), else this throws.
    ///
    /// Header fields: the earliest nonzero `timeNanos`, the sum of `durationNanos`, the largest
    /// `period`, comments without repeats, the first nonempty `defaultSampleType`, and the first
    /// profile's types and drop/keep frames. Sums wrap on overflow, as in Go.
    public init(merging profiles: [ProfileData]) throws {
        guard let first = profiles.first else { throw PprofError.invalidArgument("no profiles to merge") }
        for other in profiles.dropFirst() { try first.checkCompatible(with: other) }
        var merger = ProfileMerger(header: Self.combinedHeader(profiles))
        for profile in profiles { try merger.add(profile) }
        let merged = merger.result
        if merged.samples.contains(where: { $0.values.allSatisfy { $0 == 0 } }) {
            // Values that cancelled out: merge once more to drop them and what only they used.
            self = try ProfileData(merging: [merged])
        } else {
            self = merged
        }
    }

    /// What changed from `base` to this profile (`self − base`), as `net/http/pprof` computes a
    /// `?seconds=` delta: `base` scaled by −1 and merged with this profile, so unchanged samples
    /// vanish; `timeNanos` is this profile's and `durationNanos` the time between the two.
    public func delta(since base: ProfileData) throws -> ProfileData {
        var result = try ProfileData(merging: [base.scaled(by: -1), self])
        result.timeNanos = timeNanos
        result.durationNanos = timeNanos &- base.timeNanos
        return result
    }

    private static func combinedHeader(_ profiles: [ProfileData]) -> ProfileData {
        let first = profiles[0]
        var header = ProfileData(
            sampleTypes: first.sampleTypes,
            dropFrames: first.dropFrames,
            keepFrames: first.keepFrames,
            periodType: first.periodType
        )
        var seenComments = Set<String>()
        for profile in profiles {
            if header.timeNanos == 0 || profile.timeNanos < header.timeNanos { header.timeNanos = profile.timeNanos }
            header.durationNanos &+= profile.durationNanos
            if header.period == 0 || header.period < profile.period { header.period = profile.period }
            for comment in profile.comments where seenComments.insert(comment).inserted {
                header.comments.append(comment)
            }
            if header.defaultSampleType.isEmpty { header.defaultSampleType = profile.defaultSampleType }
        }
        return header
    }
}

/// The state of one merge: memo tables across profiles, and ID translations per source profile.
private struct ProfileMerger {
    private(set) var result: ProfileData
    private var samples: [SampleKey: Int] = [:]
    private var locations: [LocationKey: UInt64] = [:]
    private var functions: [FunctionKey: UInt64] = [:]
    private var mappings: [MappingKey: Int] = [:]

    init(header: ProfileData) {
        result = header
    }

    private struct SampleKey: Hashable {
        var locationIDs: [UInt64]
        // google/pprof keeps labels as maps from key to values: order across keys does not matter.
        var strings: [String: [String]]
        var numbers: [String: [NumberLabel]]
    }

    private struct NumberLabel: Hashable {
        var value: Int64
        var unit: String
    }

    private struct LocationKey: Hashable {
        var address: UInt64
        var mappingID: UInt64
        var lines: [ProfileData.Line]
        var isFolded: Bool
    }

    private struct FunctionKey: Hashable {
        var startLine: Int64
        var name: String
        var systemName: String
        var filename: String
    }

    /// Mappings are the same binary if they have the same size (rounded up to 4 KiB), offset and
    /// build ID (or file name when there is no build ID).
    private struct MappingKey: Hashable {
        var size: UInt64
        var offset: UInt64
        var buildIDOrFile: String

        init(_ mapping: ProfileData.Mapping) {
            let rounding: UInt64 = 0x1000
            let size = (mapping.memoryLimit &- mapping.memoryStart) &+ rounding &- 1
            self.size = size - size % rounding
            offset = mapping.fileOffset
            buildIDOrFile = !mapping.buildID.isEmpty ? mapping.buildID : mapping.filename
        }
    }

    /// One source profile's translations from its IDs to merged ones.
    private struct SourceTables {
        var mappings: [UInt64: (index: Int, offset: UInt64)] = [:]
        var functions: [UInt64: UInt64] = [:]
        var locations: [UInt64: UInt64] = [:]
        let mappingIndex: IDIndex
        let functionIndex: IDIndex
        let locationIndex: IDIndex
    }

    mutating func add(_ source: ProfileData) throws {
        var tables = SourceTables(
            mappingIndex: try IDIndex(source.mappings.map(\.id), kind: "mapping"),
            functionIndex: try IDIndex(source.functions.map(\.id), kind: "function"),
            locationIndex: try IDIndex(source.locations.map(\.id), kind: "location")
        )
        if result.mappings.isEmpty, let main = source.mappings.first {
            // The first mapping is conventionally the main binary: keep it first.
            _ = mapMapping(main.id, source, &tables)
        }
        for sample in source.samples where !sample.values.allSatisfy({ $0 == 0 }) {
            guard sample.values.count == result.sampleTypes.count else {
                throw PprofError.malformedProfile(
                    "sample has \(sample.values.count) values for \(result.sampleTypes.count) sample types"
                )
            }
            var ids: [UInt64] = []
            ids.reserveCapacity(sample.locationIDs.count)
            for id in sample.locationIDs {
                ids.append(try mapLocation(id, source, &tables))
            }
            var key = SampleKey(locationIDs: ids, strings: [:], numbers: [:])
            for label in sample.labels {
                if let string = label.string {
                    key.strings[label.key, default: []].append(string)
                } else {
                    key.numbers[label.key, default: []]
                        .append(NumberLabel(value: label.number ?? 0, unit: label.numberUnit ?? ""))
                }
            }
            if let index = samples[key] {
                for column in sample.values.indices {
                    result.samples[index].values[column] &+= sample.values[column]
                }
            } else {
                samples[key] = result.samples.count
                result.samples.append(
                    ProfileData.Sample(locationIDs: ids, values: sample.values, labels: sample.labels)
                )
            }
        }
    }

    private mutating func mapMapping(
        _ id: UInt64,
        _ source: ProfileData,
        _ tables: inout SourceTables
    ) -> (index: Int, offset: UInt64)? {
        if let known = tables.mappings[id] { return known }
        guard let sourceIndex = tables.mappingIndex[id] else { return nil }
        let mapping = source.mappings[sourceIndex]
        let key = MappingKey(mapping)
        let mapped: (index: Int, offset: UInt64)
        if let index = mappings[key] {
            mapped = (index, result.mappings[index].memoryStart &- mapping.memoryStart)
        } else {
            var copy = mapping
            copy.id = UInt64(result.mappings.count + 1)
            mappings[key] = result.mappings.count
            mapped = (result.mappings.count, 0)
            result.mappings.append(copy)
        }
        tables.mappings[id] = mapped
        return mapped
    }

    private mutating func mapLocation(_ id: UInt64, _ source: ProfileData, _ tables: inout SourceTables) throws
        -> UInt64
    {
        if let known = tables.locations[id] { return known }
        guard let sourceIndex = tables.locationIndex[id] else {
            throw PprofError.malformedProfile("sample refers to unknown location \(id)")
        }
        let location = source.locations[sourceIndex]
        var mapped = ProfileData.Location(id: 0, mappingID: 0, address: location.address, lines: [])
        mapped.isFolded = location.isFolded
        if location.mappingID != 0 {
            guard let mapping = mapMapping(location.mappingID, source, &tables) else {
                throw PprofError.malformedProfile(
                    "location \(location.id) refers to unknown mapping \(location.mappingID)"
                )
            }
            mapped.mappingID = UInt64(mapping.index + 1)
            mapped.address = location.address &+ mapping.offset
        }
        mapped.lines.reserveCapacity(location.lines.count)
        for line in location.lines {
            var line = line
            line.functionID = try mapFunction(line.functionID, source, &tables)
            mapped.lines.append(line)
        }
        let relativeAddress =
            mapped.mappingID == 0
            ? mapped.address : mapped.address &- result.mappings[Int(mapped.mappingID - 1)].memoryStart
        let key = LocationKey(
            address: relativeAddress,
            mappingID: mapped.mappingID,
            lines: mapped.lines,
            isFolded: mapped.isFolded
        )
        if let existing = locations[key] {
            tables.locations[id] = existing
            return existing
        }
        mapped.id = UInt64(result.locations.count + 1)
        result.locations.append(mapped)
        locations[key] = mapped.id
        tables.locations[id] = mapped.id
        return mapped.id
    }

    private mutating func mapFunction(_ id: UInt64, _ source: ProfileData, _ tables: inout SourceTables) throws
        -> UInt64
    {
        if let known = tables.functions[id] { return known }
        guard let sourceIndex = tables.functionIndex[id] else {
            throw PprofError.malformedProfile("line refers to unknown function \(id)")
        }
        let function = source.functions[sourceIndex]
        let key = FunctionKey(
            startLine: function.startLine,
            name: function.name,
            systemName: function.systemName,
            filename: function.filename
        )
        let mappedID: UInt64
        if let existing = functions[key] {
            mappedID = existing
        } else {
            var copy = function
            copy.id = UInt64(result.functions.count + 1)
            result.functions.append(copy)
            functions[key] = copy.id
            mappedID = copy.id
        }
        tables.functions[id] = mappedID
        return mappedID
    }
}
