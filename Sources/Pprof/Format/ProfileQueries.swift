/// Reading a profile the way a person (or a test) does: stacks as frames, values by sample type.
extension ProfileData {
    /// One frame of a sample's stack, with its location's references resolved.
    public struct Frame: Sendable, Hashable, CustomStringConvertible {
        /// The demangled function name; "" when the location has no symbol.
        public var function: String
        /// The linker symbol (the mangled name for Swift and C++).
        public var systemName: String
        /// The source file, "" when unknown.
        public var file: String
        /// The source line, 0 when unknown.
        public var line: Int64
        /// The location's address (the call PC); the same for every inlined frame of one location.
        public var address: UInt64
        /// True for a function inlined into the next frame of the same location.
        public var isInlined: Bool
        /// The file of the location's mapping, "" when it has none.
        public var mappingFile: String

        public init(
            function: String,
            systemName: String = "",
            file: String = "",
            line: Int64 = 0,
            address: UInt64 = 0,
            isInlined: Bool = false,
            mappingFile: String = ""
        ) {
            self.function = function
            self.systemName = systemName
            self.file = file
            self.line = line
            self.address = address
            self.isInlined = isInlined
            self.mappingFile = mappingFile
        }

        /// `function file:line`, or the address when the location has no symbol.
        public var description: String {
            if function.isEmpty && file.isEmpty { return "0x\(String(address, radix: 16))" }
            return file.isEmpty ? function : "\(function) \(file):\(line)"
        }
    }

    /// A sample with its stack resolved into frames.
    public struct ResolvedSample: Sendable, Hashable {
        /// Leaf first, inlined frames expanded (innermost first within a location).
        public var frames: [Frame]
        /// One value per sample type.
        public var values: [Int64]
        public var labels: [Label]

        /// The string value of the first label with `key`, if any.
        public func label(_ key: String) -> String? {
            labels.first { $0.key == key && $0.string != nil }?.string
        }

        /// The function names of the stack, leaf first.
        public var functionNames: [String] { frames.map(\.function) }
    }

    /// Every sample with its stack resolved, in order. Unknown references (which a decoded profile
    /// never has) resolve to empty frames instead of trapping.
    public func resolvedSamples() -> [ResolvedSample] {
        let resolver = FrameResolver(self)
        return samples.map {
            ResolvedSample(frames: resolver.frames(of: $0), values: $0.values, labels: $0.labels)
        }
    }

    /// The frames of `sample`'s stack, leaf first, inlined frames expanded. For many samples,
    /// `resolvedSamples()` is cheaper: this builds its lookup tables on every call.
    public func frames(of sample: Sample) -> [Frame] {
        FrameResolver(self).frames(of: sample)
    }

    /// The index of the sample type (value column) named `type`, e.g. `"inuse_space"`.
    public func sampleTypeIndex(named type: String) -> Int? {
        sampleTypes.firstIndex { $0.type == type }
    }

    /// The sum of the value column `index` over all samples (wrapping on overflow, never trapping);
    /// 0 for a column that does not exist.
    public func total(at index: Int) -> Int64 {
        guard index >= 0, index < sampleTypes.count else { return 0 }
        var sum: Int64 = 0
        for sample in samples where index < sample.values.count { sum &+= sample.values[index] }
        return sum
    }

    /// The sum of the values of the sample type named `type`, or nil if there is no such type.
    public func total(of type: String) -> Int64? {
        sampleTypeIndex(named: type).map { total(at: $0) }
    }

    /// The function with `id`, if any.
    public func function(id: UInt64) -> Function? {
        functions.first { $0.id == id }
    }

    /// The location with `id`, if any.
    public func location(id: UInt64) -> Location? {
        locations.first { $0.id == id }
    }

    /// The mapping with `id`, if any.
    public func mapping(id: UInt64) -> Mapping? {
        mappings.first { $0.id == id }
    }
}

/// Resolves location IDs to frames with tables built once.
private struct FrameResolver {
    let profile: ProfileData
    let locations: [UInt64: Int]
    let functions: [UInt64: Int]
    let mappings: [UInt64: Int]

    init(_ profile: ProfileData) {
        self.profile = profile
        func table(_ ids: some Sequence<UInt64>) -> [UInt64: Int] {
            var table: [UInt64: Int] = [:]
            for (index, id) in ids.enumerated() where table[id] == nil { table[id] = index }
            return table
        }
        locations = table(profile.locations.lazy.map(\.id))
        functions = table(profile.functions.lazy.map(\.id))
        mappings = table(profile.mappings.lazy.map(\.id))
    }

    func frames(of sample: ProfileData.Sample) -> [ProfileData.Frame] {
        var frames: [ProfileData.Frame] = []
        frames.reserveCapacity(sample.locationIDs.count)
        for id in sample.locationIDs {
            guard let index = locations[id] else {
                frames.append(ProfileData.Frame(function: ""))
                continue
            }
            let location = profile.locations[index]
            let mappingFile = mappings[location.mappingID].map { profile.mappings[$0].filename } ?? ""
            if location.lines.isEmpty {
                frames.append(ProfileData.Frame(function: "", address: location.address, mappingFile: mappingFile))
                continue
            }
            for (position, line) in location.lines.enumerated() {
                let function = functions[line.functionID].map { profile.functions[$0] }
                frames.append(
                    ProfileData.Frame(
                        function: function?.name ?? "",
                        systemName: function?.systemName ?? "",
                        file: function?.filename ?? "",
                        line: line.line,
                        address: location.address,
                        isInlined: position < location.lines.count - 1,
                        mappingFile: mappingFile
                    )
                )
            }
        }
        return frames
    }
}
