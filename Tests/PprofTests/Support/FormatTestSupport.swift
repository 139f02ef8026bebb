import Foundation

@_spi(Benchmarks) @testable import Pprof

/// Random profiles that exercise every field of the format.
enum RandomProfiles {
    /// Strings of every kind the table must carry: empty, ASCII, long, and non-ASCII.
    static func string(_ rng: inout SplitMix64, allowEmpty: Bool = true) -> String {
        let pool = [
            "main", "Swift.Array.append(_:)", "/src/app/main.swift", "ñandú", "函数", "emoji 🦊 name",
            "tab\there", "quote\"and\\slash", String(repeating: "x", count: 300), "$s4main3fooyyF",
            "pprof::reserved", "bytes", "count", "nanoseconds",
        ]
        if allowEmpty && Int.random(in: 0..<8, using: &rng) == 0 { return "" }
        var result = pool.randomElement(using: &rng)!
        if Bool.random(using: &rng) { result += String(Int.random(in: 0..<1000, using: &rng)) }
        return result
    }

    static func interestingInt64(_ rng: inout SplitMix64) -> Int64 {
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: return 0
        case 1: return [Int64.max, Int64.min, -1, 1, 127, 128, 16383, 16384].randomElement(using: &rng)!
        case 2: return Int64.random(in: -1000...1000, using: &rng)
        default: return Int64.random(in: Int64.min...Int64.max, using: &rng)
        }
    }

    static func interestingUInt64(_ rng: inout SplitMix64) -> UInt64 {
        UInt64(bitPattern: interestingInt64(&rng))
    }

    /// Distinct nonzero IDs: dense (1…n, as writers usually make them) or scattered.
    static func ids(_ count: Int, _ rng: inout SplitMix64) -> [UInt64] {
        if Bool.random(using: &rng) { return (0..<count).map { UInt64($0 + 1) } }
        var seen = Set<UInt64>()
        var result: [UInt64] = []
        while result.count < count {
            let id = UInt64.random(in: 1...UInt64.max, using: &rng) >> UInt64.random(in: 0..<63, using: &rng)
            if id != 0, seen.insert(id).inserted { result.append(id) }
        }
        return result
    }

    static func profile(seed: UInt64) -> ProfileData {
        var rng = SplitMix64(seed: seed)
        var profile = ProfileData()
        let typeCount = Int.random(in: 1...4, using: &rng)
        profile.sampleTypes = (0..<typeCount).map { _ in
            ProfileData.ValueType(type: string(&rng), unit: string(&rng))
        }
        if Bool.random(using: &rng) {
            profile.periodType = ProfileData.ValueType(type: string(&rng), unit: string(&rng))
        }
        profile.period = interestingInt64(&rng)
        profile.timeNanos = interestingInt64(&rng)
        profile.durationNanos = interestingInt64(&rng)
        profile.dropFrames = string(&rng)
        profile.keepFrames = string(&rng)
        profile.comments = (0..<Int.random(in: 0...3, using: &rng)).map { _ in string(&rng) }
        profile.defaultSampleType = Bool.random(using: &rng) ? profile.sampleTypes[0].type : string(&rng)

        let mappingIDs = ids(Int.random(in: 0...5, using: &rng), &rng)
        profile.mappings = mappingIDs.map { id in
            ProfileData.Mapping(
                id: id,
                memoryStart: interestingUInt64(&rng),
                memoryLimit: interestingUInt64(&rng),
                fileOffset: interestingUInt64(&rng),
                filename: string(&rng),
                buildID: Bool.random(using: &rng) ? "" : "0123456789abcdef\(id)",
                hasFunctions: Bool.random(using: &rng),
                hasFilenames: Bool.random(using: &rng),
                hasLineNumbers: Bool.random(using: &rng),
                hasInlineFrames: Bool.random(using: &rng)
            )
        }
        let functionIDs = ids(Int.random(in: 0...20, using: &rng), &rng)
        profile.functions = functionIDs.map { id in
            ProfileData.Function(
                id: id,
                name: string(&rng),
                systemName: string(&rng),
                filename: string(&rng),
                startLine: interestingInt64(&rng)
            )
        }
        let locationIDs = ids(Int.random(in: 0...30, using: &rng), &rng)
        profile.locations = locationIDs.map { id in
            let lines = functionIDs.isEmpty ? 0 : Int.random(in: 0...4, using: &rng)
            return ProfileData.Location(
                id: id,
                mappingID: mappingIDs.isEmpty || Int.random(in: 0..<4, using: &rng) == 0
                    ? 0 : mappingIDs.randomElement(using: &rng)!,
                address: interestingUInt64(&rng),
                lines: (0..<lines).map { _ in
                    ProfileData.Line(
                        functionID: functionIDs.randomElement(using: &rng)!,
                        line: interestingInt64(&rng),
                        column: Int.random(in: 0..<3, using: &rng) == 0 ? interestingInt64(&rng) : 0
                    )
                },
                isFolded: Int.random(in: 0..<4, using: &rng) == 0
            )
        }
        let sampleCount = Int.random(in: 0...50, using: &rng)
        profile.samples = (0..<sampleCount).map { _ in
            let depth = locationIDs.isEmpty ? 0 : [0, 1, 2, 3, 40].randomElement(using: &rng)!
            return ProfileData.Sample(
                locationIDs: (0..<depth).map { _ in locationIDs.randomElement(using: &rng)! },
                values: (0..<typeCount).map { _ in interestingInt64(&rng) },
                labels: (0..<Int.random(in: 0...4, using: &rng)).map { _ in label(&rng) }
            )
        }
        return profile
    }

    static func label(_ rng: inout SplitMix64) -> ProfileData.Label {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return ProfileData.Label(key: string(&rng), string: string(&rng))
        case 1: return ProfileData.Label(key: string(&rng), number: interestingInt64(&rng))
        case 2: return ProfileData.Label(key: string(&rng), number: interestingInt64(&rng), unit: string(&rng))
        default: return ProfileData.Label(key: string(&rng, allowEmpty: false), string: string(&rng, allowEmpty: false))
        }
    }

    /// What a profile reads back as: labels that carry nothing on the wire (an empty string value,
    /// or the number 0 without a unit) are dropped, as google/pprof drops them; an empty unit is
    /// no unit.
    static func wireNormalized(_ profile: ProfileData) -> ProfileData {
        var result = profile
        for index in result.samples.indices {
            result.samples[index].labels = result.samples[index].labels.compactMap { label in
                if let string = label.string {
                    return string.isEmpty ? nil : label
                }
                let unit = label.numberUnit ?? ""
                if (label.number ?? 0) == 0 && unit.isEmpty { return nil }
                return ProfileData.Label(key: label.key, number: label.number ?? 0, unit: unit.isEmpty ? nil : unit)
            }
        }
        return result
    }
}

/// Hand-made protobuf for crafting malformed input.
enum Wire {
    static func varint(_ value: UInt64) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        while value >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
        return out
    }

    static func integer(_ field: UInt64, _ value: UInt64) -> [UInt8] {
        varint(field << 3) + varint(value)
    }

    static func integer(_ field: UInt64, signed value: Int64) -> [UInt8] {
        integer(field, UInt64(bitPattern: value))
    }

    static func bytes(_ field: UInt64, _ body: [UInt8]) -> [UInt8] {
        varint(field << 3 | 2) + varint(UInt64(body.count)) + body
    }

    static func string(_ value: String) -> [UInt8] {
        bytes(6, Array(value.utf8))
    }

    /// A string table, "" first.
    static func strings(_ values: [String]) -> [UInt8] {
        ([""] + values).flatMap { string($0) }
    }
}

/// Runs the Go toolchain (`go run`, `go tool pprof`) when it is installed.
enum GoTool {
    static let executable: URL? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("go")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }()

    static var isAvailable: Bool { executable != nil }

    struct Output {
        var status: Int32
        var stdout: [UInt8]
        var stderr: String
        var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// Runs `go <arguments>` in `directory` with `input` on stdin.
    static func run(_ arguments: [String], input: [UInt8] = [], in directory: URL? = nil) throws -> Output {
        guard let executable else { throw CocoaError(.fileNoSuchFile) }
        var environment: [String: String] = [:]
        // `go` needs a writable build cache; keep it out of the user's home if there is none.
        let inherited = ProcessInfo.processInfo.environment
        if inherited["HOME"] == nil && inherited["GOCACHE"] == nil {
            environment["GOCACHE"] = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-gocache").path
        }
        let result = try Tools.run(
            executable.path,
            arguments,
            bytes: input,
            environment: environment,
            directory: directory
        )
        return Output(status: result.status, stdout: [UInt8](result.data), stderr: result.stderr)
    }

    /// Writes `source` as `main.go` into a fresh directory and runs it.
    static func runProgram(_ source: String, input: [UInt8] = [], arguments: [String] = []) throws -> Output {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("pprof-go-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try source.write(to: directory.appendingPathComponent("main.go"), atomically: true, encoding: .utf8)
        return try run(["run", "main.go"] + arguments, input: input, in: directory)
    }

    /// `go tool pprof <arguments> <file>` on `profile` bytes.
    static func pprof(_ arguments: [String], profile: [UInt8]) throws -> Output {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-\(UUID().uuidString).pb.gz")
        try Data(profile).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        return try run(["tool", "pprof"] + arguments + [file.path])
    }
}

/// A fake symbolizer for builder and text tests: fixed frames per call PC.
func fakeSymbolizer(_ table: [UInt: [SymbolFrame]]) -> (UInt) -> [SymbolFrame] {
    { table[$0] ?? [] }
}

func frame(_ name: String, file: String = "", line: Int = 0, entry: UInt = 0, system: String? = nil) -> SymbolFrame {
    SymbolFrame(name: name, systemName: system ?? name, file: file, line: line, startLine: 0, entry: entry)
}
