import Pprof

/// `-focus`, `-ignore`, `-tagfocus` and `-tagignore` compiled once, applied to samples with
/// google/pprof's rules: name filters match a location's function names, source files or mapping
/// file (unanchored); a tag filter `key=re1,re2` matches when any value of `key` matches any of
/// them, and a bare `re1,re2` when every regex matches some `key:value` of the sample.
public struct SampleFilter {
    private let focus: Regex<AnyRegexOutput>?
    private let ignore: Regex<AnyRegexOutput>?
    private let tagFocus: TagMatcher?
    private let tagIgnore: TagMatcher?

    public init(_ options: ReportOptions) throws {
        focus = try Self.compile(options.focus, option: "focus")
        ignore = try Self.compile(options.ignore, option: "ignore")
        tagFocus = try options.tagFocus.flatMap { $0.isEmpty ? nil : try TagMatcher($0, option: "tagfocus") }
        tagIgnore = try options.tagIgnore.flatMap { $0.isEmpty ? nil : try TagMatcher($0, option: "tagignore") }
    }

    /// True when nothing is filtered.
    public var isEmpty: Bool { focus == nil && ignore == nil && tagFocus == nil && tagIgnore == nil }

    static func compile(_ pattern: String?, option: String) throws -> Regex<AnyRegexOutput>? {
        guard let pattern, !pattern.isEmpty else { return nil }
        do {
            return try Regex(pattern)
        } catch {
            throw ReportError("invalid \(option) regular expression \"\(pattern)\": \(error)")
        }
    }

    /// The profile with only the samples the filters keep (tables are left as they are: unused
    /// entries are harmless to every report).
    public func apply(to profile: ProfileData) -> ProfileData {
        if isEmpty { return profile }
        var matchCache: [UInt64: (focus: Bool, ignore: Bool)] = [:]
        let locations = Dictionary(profile.locations.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let functions = Dictionary(profile.functions.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let mappings = Dictionary(profile.mappings.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })

        func matches(_ regex: Regex<AnyRegexOutput>, _ location: ProfileData.Location) -> Bool {
            for line in location.lines {
                if let function = functions[line.functionID] {
                    if function.name.contains(regex) || function.filename.contains(regex) { return true }
                }
            }
            if let mapping = mappings[location.mappingID], mapping.filename.contains(regex) { return true }
            return false
        }
        func locationMatches(_ id: UInt64) -> (focus: Bool, ignore: Bool) {
            if let known = matchCache[id] { return known }
            var result = (focus: false, ignore: false)
            if let location = locations[id] {
                if let focus { result.focus = matches(focus, location) }
                if let ignore { result.ignore = matches(ignore, location) }
            }
            matchCache[id] = result
            return result
        }

        // Regular expressions are slow next to hashing: each label set is judged once, found by
        // its storage (decoded samples with equal labels share it) or else by its contents.
        var labelVerdicts: [[ProfileData.Label]: Bool] = [:]
        var verdictsByStorage: [UnsafeRawPointer: Bool] = [:]
        func labelsPass(_ labels: [ProfileData.Label]) -> Bool {
            if tagFocus == nil && tagIgnore == nil { return true }
            let storage = labels.withUnsafeBufferPointer { $0.baseAddress.map(UnsafeRawPointer.init) }
            if let storage, let known = verdictsByStorage[storage] { return known }
            defer { if let storage { verdictsByStorage[storage] = labelVerdicts[labels] } }
            if let known = labelVerdicts[labels] { return known }
            var pass = true
            if let tagFocus, !tagFocus.matches(labels) { pass = false }
            if pass, let tagIgnore, tagIgnore.matches(labels) { pass = false }
            labelVerdicts[labels] = pass
            return pass
        }
        var result = profile
        result.samples = profile.samples.filter { sample in
            if !labelsPass(sample.labels) { return false }
            if focus != nil, !sample.locationIDs.contains(where: { locationMatches($0).focus }) { return false }
            if ignore != nil, sample.locationIDs.contains(where: { locationMatches($0).ignore }) { return false }
            return true
        }
        return result
    }
}

/// One `-tagfocus`/`-tagignore` expression.
struct TagMatcher {
    let key: String?
    let patterns: [Regex<AnyRegexOutput>]
    /// A numeric range `low:high` (either side may be empty) for numeric labels of `key`.
    let range: ClosedRange<Int64>?

    init(_ expression: String, option: String) throws {
        var value = expression
        if let equals = expression.firstIndex(of: "=") {
            key = String(expression[..<equals])
            value = String(expression[expression.index(after: equals)...])
        } else {
            key = nil
        }
        range = Self.numericRange(value)
        patterns = try value.split(separator: ",", omittingEmptySubsequences: false).map { part in
            do {
                return try Regex(String(part))
            } catch {
                throw ReportError("invalid \(option) regular expression \"\(part)\": \(error)")
            }
        }
    }

    /// `12`, `12:`, `:12` or `1:12` in the label's own unit; nil for anything else.
    static func numericRange(_ text: String) -> ClosedRange<Int64>? {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 1 { return Int64(text).map { $0...$0 } }
        let low = parts[0].isEmpty ? Int64.min : Int64(parts[0])
        let high = parts[1].isEmpty ? Int64.max : Int64(parts[1])
        guard let low, let high, low <= high, !(parts[0].isEmpty && parts[1].isEmpty) else { return nil }
        return low...high
    }

    func matches(_ labels: [ProfileData.Label]) -> Bool {
        if let key, let range {
            let numbers = labels.filter { $0.key == key }.compactMap(\.number)
            if !numbers.isEmpty { return numbers.contains { range.contains($0) } }
        }
        if let key {
            return labels.contains { label in
                guard label.key == key, let value = label.string else { return false }
                return patterns.contains { value.contains($0) }
            }
        }
        return patterns.allSatisfy { pattern in
            labels.contains { label in
                guard let value = label.string else { return false }
                return (label.key + ":" + value).contains(pattern)
            }
        }
    }
}
