import Pprof

/// What a report shows, with `go tool pprof`'s option names and meanings.
public struct ReportOptions: Sendable, Hashable {
    /// `-sample_index`: a sample type's name (`alloc_space`) or its position; nil picks the
    /// profile's default sample type, else its last one, as Go does.
    public var sampleIndex: String?
    /// `-focus`: keep only samples with a frame whose function, file or mapping matches.
    public var focus: String?
    /// `-ignore`: drop samples with a frame whose function, file or mapping matches.
    public var ignore: String?
    /// `-tagfocus`: keep only samples whose labels match (`key=regex[,regex…]`, or `regex`
    /// matched against every `key:value`).
    public var tagFocus: String?
    /// `-tagignore`: drop samples whose labels match, same syntax as `tagFocus`.
    public var tagIgnore: String?
    /// `-nodefraction`: functions whose cumulative value is below this share of the total are left
    /// out of `top` (Go's default 0.005).
    public var nodeFraction: Double
    /// `-nodecount`: at most this many rows in `top`; nil for all.
    public var nodeCount: Int?

    public init(
        sampleIndex: String? = nil,
        focus: String? = nil,
        ignore: String? = nil,
        tagFocus: String? = nil,
        tagIgnore: String? = nil,
        nodeFraction: Double = 0.005,
        nodeCount: Int? = nil
    ) {
        self.sampleIndex = sampleIndex
        self.focus = focus
        self.ignore = ignore
        self.tagFocus = tagFocus
        self.tagIgnore = tagIgnore
        self.nodeFraction = nodeFraction
        self.nodeCount = nodeCount
    }
}

/// A bad report option: a regular expression that does not compile, an unknown sample type.
public struct ReportError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

extension ProfileData {
    /// The value column a report shows: `sampleIndex` as a name or a number, else the default
    /// sample type, else the last column (Go's rule).
    public func reportValueIndex(_ sampleIndex: String?) throws -> Int {
        guard !sampleTypes.isEmpty else { throw ReportError("profile has no sample types") }
        if let requested = sampleIndex, !requested.isEmpty {
            if let number = Int(requested) {
                guard sampleTypes.indices.contains(number) else {
                    throw ReportError("sample_index \(number) is outside 0…\(sampleTypes.count - 1)")
                }
                return number
            }
            // Go also accepts the legacy `-inuse_space` style without the prefix dash.
            if let index = sampleTypeIndex(named: requested) { return index }
            let known = sampleTypes.map(\.type).joined(separator: ", ")
            throw ReportError("sample_index \"\(requested)\" is not one of: \(known)")
        }
        if !defaultSampleType.isEmpty, let index = sampleTypeIndex(named: defaultSampleType) { return index }
        return sampleTypes.count - 1
    }
}
