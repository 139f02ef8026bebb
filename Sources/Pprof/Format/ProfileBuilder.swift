import Glibc
import Synchronization

/// Pseudo-frames for what a stack cannot show, like Go's `runtime._LostExternalCode`. They are
/// stored in stacks as small integers that no code address can take.
enum SyntheticFrame: UInt, CaseIterable, Sendable {
    /// Samples dropped because the profiler's buffers were full (Go: `lostProfileEvent`).
    case lostSamples = 1
    /// The stack was deeper than the walk's limit; outer frames are missing.
    case truncatedStack = 2
    /// The walk stopped at a frame it could not unwind; outer frames are missing.
    case unwindStopped = 3
    /// A count-profile entry whose stack is empty (Go: `lostProfileEvent`).
    case emptyStack = 4
    /// A thread dump could not sample this thread: it blocks the dump signal.
    case threadBlocksSignal = 5
    /// A thread dump could not sample this thread: it did not answer in time.
    case threadDidNotAnswer = 6

    static let maximumRawValue: UInt = 0xfff

    var functionName: String {
        switch self {
        case .lostSamples: return "pprof.lostSamples"
        case .truncatedStack: return "pprof.truncatedStack"
        case .unwindStopped: return "pprof.unwindStopped"
        case .emptyStack: return "pprof.lostProfileEvent"
        case .threadBlocksSignal: return "pprof.threadBlocksSignal"
        case .threadDidNotAnswer: return "pprof.threadDidNotAnswer"
        }
    }
}

/// Turns raw stacks and values into `ProfileData`, the way Go's `profileBuilder` does.
///
/// Stack entries are return addresses, leaf first (see `pp_unwind.h`); each distinct entry becomes
/// one Location whose address is the call PC (entry − 1), with one Line per inlined function
/// (innermost first). Functions are shared by name. Mappings come from `/proc/self/maps`, read when
/// the builder is created, with GNU build IDs so tools can symbolize offline.
struct ProfileBuilder {
    private let symbolizer: Symbolizer
    private var profile: ProfileData
    private var locationIDs: [UInt: UInt64] = [:]
    private var functionIDs: [FunctionKey: UInt64] = [:]
    private var processMappings: [MemoryMapping]
    /// Per mapping index: whether every location in it had a function, a file and a line.
    private var mappingCoverage: [(functions: Bool, files: Bool, lines: Bool, used: Bool)]

    private struct FunctionKey: Hashable {
        var name: String
        var systemName: String
        var file: String
    }

    init(
        sampleTypes: [ProfileData.ValueType],
        periodType: ProfileData.ValueType?,
        period: Int64,
        defaultSampleType: String = "",
        timeNanos: Int64 = currentUnixNanos(),
        durationNanos: Int64 = 0,
        comments: [String] = [],
        symbolizer: Symbolizer = .shared
    ) {
        self.symbolizer = symbolizer
        self.profile = ProfileData(
            sampleTypes: sampleTypes,
            timeNanos: timeNanos,
            durationNanos: durationNanos,
            periodType: periodType,
            period: period,
            comments: comments,
            defaultSampleType: defaultSampleType
        )
        self.processMappings = ProcessMaps.executableMappings(ProcessMaps.current())
        self.mappingCoverage = Array(repeating: (true, true, true, false), count: processMappings.count)
    }

    /// Adds one sample. `stack` holds return-address-style entries, leaf first.
    mutating func addSample(stack: [UInt], values: [Int64], labels: [ProfileData.Label] = []) {
        var ids: [UInt64] = []
        ids.reserveCapacity(stack.count)
        for entry in stack {
            ids.append(locationID(for: entry))
        }
        profile.samples.append(ProfileData.Sample(locationIDs: ids, values: values, labels: labels))
    }

    private mutating func locationID(for entry: UInt) -> UInt64 {
        if let id = locationIDs[entry] { return id }
        let id = UInt64(profile.locations.count + 1)
        var location = ProfileData.Location(id: id, mappingID: 0, address: 0, lines: [])
        if entry <= SyntheticFrame.maximumRawValue {
            let name = SyntheticFrame(rawValue: entry)?.functionName ?? "pprof.unknownFrame"
            location.lines = [ProfileData.Line(functionID: functionID(name: name, systemName: name, file: ""), line: 0)]
        } else {
            let address = entry - 1
            location.address = UInt64(address)
            let frames = symbolizer.frames(at: address)
            location.lines = frames.map {
                ProfileData.Line(
                    functionID: functionID(
                        name: $0.name,
                        systemName: $0.systemName,
                        file: $0.file,
                        startLine: $0.startLine
                    ),
                    line: Int64($0.line)
                )
            }
            if let index = processMappings.firstIndex(where: {
                UInt64(address) >= $0.start && UInt64(address) < $0.limit
            }) {
                location.mappingID = UInt64(index + 1)
                mappingCoverage[index].used = true
                if frames.isEmpty { mappingCoverage[index].functions = false }
                if frames.isEmpty || frames.contains(where: { $0.file.isEmpty }) {
                    mappingCoverage[index].files = false
                }
                if frames.isEmpty || frames.contains(where: { $0.line == 0 }) { mappingCoverage[index].lines = false }
            }
        }
        profile.locations.append(location)
        locationIDs[entry] = id
        return id
    }

    private mutating func functionID(name: String, systemName: String, file: String, startLine: Int = 0) -> UInt64 {
        let key = FunctionKey(name: name, systemName: systemName, file: file)
        if let id = functionIDs[key] { return id }
        let id = UInt64(profile.functions.count + 1)
        profile.functions.append(
            ProfileData.Function(
                id: id,
                name: name,
                systemName: systemName,
                filename: file,
                startLine: Int64(startLine)
            )
        )
        functionIDs[key] = id
        return id
    }

    /// The finished profile.
    func build() -> ProfileData {
        var result = profile
        var buildIDs: [String: String] = [:]
        result.mappings = processMappings.enumerated().map { index, mapping in
            let coverage = mappingCoverage[index]
            let buildID: String
            if let known = buildIDs[mapping.path] {
                buildID = known
            } else {
                buildID = BuildIDCache.shared.buildID(forPath: mapping.path)
                buildIDs[mapping.path] = buildID
            }
            return ProfileData.Mapping(
                id: UInt64(index + 1),
                memoryStart: mapping.start,
                memoryLimit: mapping.limit,
                fileOffset: mapping.fileOffset,
                filename: mapping.path,
                buildID: buildID,
                hasFunctions: coverage.used && coverage.functions,
                hasFilenames: coverage.used && coverage.functions && coverage.files,
                hasLineNumbers: coverage.used && coverage.functions && coverage.lines,
                hasInlineFrames: coverage.used && coverage.functions && coverage.lines
            )
        }
        if result.mappings.isEmpty {
            // Go adds one fake mapping so that every location has one.
            result.mappings = [
                ProfileData.Mapping(id: 1, memoryStart: 0, memoryLimit: 0, fileOffset: 0, filename: "", buildID: "")
            ]
        }
        return result
    }
}

/// GNU build IDs of files, read once per path.
final class BuildIDCache: Sendable {
    static let shared = BuildIDCache()
    private let cache = Mutex<[String: String]>([:])

    func buildID(forPath path: String) -> String {
        if let known = cache.withLock({ $0[path] }) { return known }
        let id: String
        if path.isEmpty || path.hasPrefix("[") {
            id = ""
        } else {
            id = (try? ELFFile(path: path))?.buildID ?? ""
        }
        cache.withLock { $0[path] = id }
        return id
    }
}

func currentUnixNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
