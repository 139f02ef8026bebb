import Foundation
import Testing

@testable import Pprof

/// `go tool pprof` reads what we write and sees what our reader sees. Skipped without Go.
@Suite(.enabled(if: GoTool.isAvailable, "needs the go toolchain"))
struct FormatGoToolTests {
    /// A frame as `-raw` prints it.
    struct RawFrame: Equatable, CustomStringConvertible {
        var function: String
        var file: String
        var line: Int64
        var startLine: Int64
        var systemName: String
        var description: String { "\(function) \(file):\(line) s=\(startLine)(\(systemName))" }
    }

    struct RawLocation {
        var address: UInt64
        var mappingID: UInt64
        var frames: [RawFrame]
    }

    struct RawSample {
        var values: [Int64]
        var locationIDs: [UInt64]
        var labelText = ""
    }

    /// What `go tool pprof -raw` printed, parsed.
    struct Raw {
        var header: [String] = []
        var sampleTypes = ""
        var samples: [RawSample] = []
        var locations: [UInt64: RawLocation] = [:]
        var mappings: [String] = []

        init(_ text: String) throws {
            enum Section { case header, samples, locations, mappings }
            var section = Section.header
            var lastLocation: UInt64?
            for line in text.split(separator: "\n").map(String.init) {
                switch line {
                case "Samples:": section = .samples; continue
                case "Locations": section = .locations; continue
                case "Mappings": section = .mappings; continue
                default: break
                }
                switch section {
                case .header: header.append(line)
                case .samples:
                    if sampleTypes.isEmpty {
                        sampleTypes = line
                    } else if line.hasPrefix("                ") {
                        samples[samples.count - 1].labelText += line.trimmingCharacters(in: .whitespaces) + " "
                    } else {
                        let parts = line.split(separator: ":", maxSplits: 1)
                        samples.append(
                            RawSample(
                                values: parts[0].split(separator: " ").compactMap { Int64($0) },
                                locationIDs: parts.count > 1
                                    ? parts[1].split(separator: " ").compactMap { UInt64($0) } : []
                            )
                        )
                    }
                case .locations:
                    var rest = Substring(line)
                    if line.hasPrefix("             ") {
                        // Another (outer) line of the previous location.
                        let id = try #require(lastLocation)
                        locations[id]?.frames.append(try Self.frame(rest.drop(while: { $0 == " " })))
                        continue
                    }
                    rest = rest.drop(while: { $0 == " " })
                    let idText = rest.prefix(while: { $0 != ":" })
                    let id = try #require(UInt64(idText))
                    rest = rest.dropFirst(idText.count + 2)
                    let addressText = rest.prefix(while: { $0 != " " })
                    let address = try #require(UInt64(addressText.dropFirst(2), radix: 16))
                    rest = rest.dropFirst(addressText.count + 1)
                    var mappingID: UInt64 = 0
                    if rest.hasPrefix("M=") {
                        let text = rest.dropFirst(2).prefix(while: { $0 != " " })
                        mappingID = try #require(UInt64(text))
                        rest = rest.dropFirst(2 + text.count + 1)
                    }
                    if rest.hasPrefix("[F] ") { rest = rest.dropFirst(4) }
                    let frames = rest.isEmpty ? [] : [try Self.frame(rest)]
                    locations[id] = RawLocation(address: address, mappingID: mappingID, frames: frames)
                    lastLocation = id
                case .mappings: mappings.append(line)
                }
            }
        }

        /// `name file:line[:column] s=start[(systemName)]`, read from the right since Swift
        /// names contain spaces.
        static func frame(_ text: Substring) throws -> RawFrame {
            let marker = try #require(text.range(of: " s=", options: .backwards))
            let left = text[..<marker.lowerBound]
            var right = text[marker.upperBound...]
            let startText = right.prefix(while: { $0.isNumber || $0 == "-" })
            right = right.dropFirst(startText.count)
            let systemName = right.hasPrefix("(") && right.hasSuffix(")") ? String(right.dropFirst().dropLast()) : nil
            let space = try #require(left.lastIndex(of: " "))
            let function = String(left[..<space])
            var location = left[left.index(after: space)...].split(separator: ":", omittingEmptySubsequences: false)
            if location.count >= 3, Int64(location[location.count - 1]) != nil,
                Int64(location[location.count - 2]) != nil
            {
                location.removeLast()  // newer pprof prints the column too
            }
            let line = try #require(Int64(location.removeLast()))
            return RawFrame(
                function: function,
                file: location.joined(separator: ":"),
                line: line,
                startLine: Int64(startText) ?? 0,
                systemName: systemName ?? function
            )
        }

        /// A sample's frames, leaf first, and its location addresses.
        func frames(of sample: RawSample) -> [RawFrame] {
            sample.locationIDs.flatMap { locations[$0]?.frames ?? [] }
        }

        func addresses(of sample: RawSample) -> [UInt64] {
            sample.locationIDs.map { locations[$0]?.address ?? 0 }
        }
    }

    static func ourFrames(_ profile: ProfileData, _ sample: ProfileData.Sample) -> [RawFrame] {
        sample.locationIDs.flatMap { id -> [RawFrame] in
            let location = profile.location(id: id)!
            return location.lines.map { line in
                let function = profile.function(id: line.functionID)!
                return RawFrame(
                    function: function.name,
                    file: function.filename,
                    line: line.line,
                    startLine: function.startLine,
                    systemName: function.systemName
                )
            }
        }
    }

    /// Our reader's view and `go tool pprof -raw`'s view of the same bytes are the same.
    static func expectSameRawView(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let ours = try ProfileData(decoding: bytes)
        let output = try GoTool.pprof(["-raw", "-symbolize=none"], profile: bytes)
        #expect(output.status == 0, "\(output.stderr)", sourceLocation: sourceLocation)
        let raw = try Raw(output.text)
        #expect(raw.samples.count == ours.samples.count, sourceLocation: sourceLocation)
        for (theirs, mine) in zip(raw.samples, ours.samples) {
            #expect(theirs.values == mine.values, sourceLocation: sourceLocation)
            #expect(raw.frames(of: theirs) == ourFrames(ours, mine), sourceLocation: sourceLocation)
            #expect(
                raw.addresses(of: theirs) == mine.locationIDs.map { ours.location(id: $0)!.address },
                sourceLocation: sourceLocation
            )
        }
        let types = ours.sampleTypes.map {
            "\($0.type)/\($0.unit)" + ($0.type == ours.defaultSampleType ? "[dflt]" : "")
        }
        #expect(raw.sampleTypes == types.joined(separator: " "), sourceLocation: sourceLocation)
        if let periodType = ours.periodType {
            #expect(
                raw.header.contains("PeriodType: \(periodType.type) \(periodType.unit)"),
                sourceLocation: sourceLocation
            )
        }
        #expect(raw.header.contains("Period: \(ours.period)"), sourceLocation: sourceLocation)
        // pprof drops mappings no location uses and numbers the rest afresh.
        let used = Set(ours.locations.map(\.mappingID))
        let expectedMappings = ours.mappings.filter { used.contains($0.id) }.map { mapping in
            var bits = ""
            if mapping.hasFunctions { bits += "[FN]" }
            if mapping.hasFilenames { bits += "[FL]" }
            if mapping.hasLineNumbers { bits += "[LN]" }
            if mapping.hasInlineFrames { bits += "[IN]" }
            let hex = { (value: UInt64) in value == 0 ? "0x0" : "0x" + String(value, radix: 16) }
            return
                "\(hex(mapping.memoryStart))/\(hex(mapping.memoryLimit))/\(hex(mapping.fileOffset)) \(mapping.filename) \(mapping.buildID) \(bits)"
        }
        let theirMappings = raw.mappings.map { String($0.drop(while: { $0 != " " }).dropFirst()) }
        #expect(Set(theirMappings) == Set(expectedMappings), sourceLocation: sourceLocation)
        #expect(theirMappings.count == expectedMappings.count, sourceLocation: sourceLocation)
    }

    @Test func rawShowsTheSameFunctionsFilesAndLinesForACustomProfile() throws {
        let profile = FormatCustomProfileTests.fillProfile()
        let buffer = ProfileBuffer()
        try profile.write(to: buffer)
        try Self.expectSameRawView(buffer.bytes)
        // And the callers of add are there by name.
        let output = try GoTool.pprof(["-raw", "-symbolize=none"], profile: buffer.bytes)
        #expect(output.text.contains("PprofTests.openConnectionForFormatTest(_:_:)"))
    }

    @Test func tracesShowTheSameStacksForACustomProfile() throws {
        let profile = FormatCustomProfileTests.fillProfile()
        let buffer = ProfileBuffer()
        try profile.write(to: buffer)
        let ours = try ProfileData(decoding: buffer.bytes)
        for lines in [false, true] {
            let output = try GoTool.pprof(
                ["-traces", "-symbolize=none"] + (lines ? ["-lines"] : []),
                profile: buffer.bytes
            )
            #expect(output.status == 0, "\(output.stderr)")
            let traces = Self.traces(output.text)
            #expect(traces.count == 2 && traces.allSatisfy { $0.count >= 3 })
            #expect(traces == Self.expectedTraces(ours, withLines: lines))
        }
    }

    /// Every feature of the format (inline lines, string and numeric labels with units, several
    /// sample types, a default type, comments, flags) read by Go's parser exactly as ours reads it.
    @Test func everyFeatureSurvivesGosParser() throws {
        let maps = """
            400000-500000 r-xp 00001000 08:01 100 /app/server
            7f0000000000-7f0000100000 r-xp 00020000 08:01 200 /lib/libc.so.6
            """
        let frames: [UInt: [SymbolFrame]] = [
            0x401000: [
                frame("Swift.Array.append(_:)", file: "/swift/Array.swift", line: 10, system: "$sSa6appendyyxnF"),
                frame(
                    "app.handle(request: app.Request) -> ()",
                    file: "/src/app.swift",
                    line: 42,
                    system: "$s3app6handle"
                ),
            ],
            0x402000: [frame("main", file: "/src/main.swift", line: 7)],
            0x7f0000000100: [frame("memcpy")],
        ]
        var builder = ProfileBuilder(
            sampleTypes: [.init(type: "alloc_objects", unit: "count"), .init(type: "alloc_space", unit: "bytes")],
            periodType: .init(type: "space", unit: "bytes"),
            period: 524_288,
            defaultSampleType: "alloc_space",
            timeNanos: 0,
            comments: ["made by a test", "second comment"],
            processMappings: ProcessMaps.parse(maps),
            symbolize: fakeSymbolizer(frames)
        )
        builder.addSample(
            stack: [0x7f0000000101, 0x401001, 0x402001],
            values: [3, 3072],
            labels: [.init(key: "bytes", number: 1024, unit: "bytes"), .init(key: "route", string: "/users")]
        )
        builder.addSample(
            stack: [0x401001, 0x402001],
            values: [-1, 9_000_000_000],
            labels: [.init(key: "tenant", string: "a b")]
        )
        builder.addSample(stack: [SyntheticFrame.lostSamples.rawValue], values: [1, 1])
        let profile = builder.build()
        let bytes = try profile.encoded()
        try Self.expectSameRawView(bytes)

        let output = try GoTool.pprof(["-raw", "-symbolize=none"], profile: bytes)
        #expect(output.text.contains("Comment: made by a test"))
        #expect(output.text.contains("Comment: second comment"))
        #expect(output.text.contains("bytes:[1024 bytes]"))
        #expect(output.text.contains("route:[/users]"))
        #expect(output.text.contains("tenant:[a b]"))
        #expect(output.text.contains("pprof.lostSamples"))
        // Go sees the inlined frame as such.
        let traces = try GoTool.pprof(["-traces", "-symbolize=none"], profile: bytes)
        #expect(traces.text.contains("Swift.Array.append(_:) (inline)"))
    }

    /// Go's `filepath.Clean`, which pprof applies to file names in reports.
    static func cleanPath(_ path: String) -> String {
        if path.isEmpty { return "." }
        let rooted = path.hasPrefix("/")
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." {
            if part == ".." {
                if let last = parts.last, last != ".." {
                    parts.removeLast()
                } else if !rooted {
                    parts.append(part)
                }
            } else {
                parts.append(part)
            }
        }
        let joined = parts.joined(separator: "/")
        return rooted ? "/" + joined : (joined.isEmpty ? "." : joined)
    }

    @Test func cleanPathIsGos() {
        #expect(Self.cleanPath("/a/./b/../c//d/") == "/a/c/d")
        #expect(Self.cleanPath("a/../../b") == "../b")
        #expect(Self.cleanPath("/../x") == "/x")
        #expect(Self.cleanPath("") == ".")
    }

    /// `-traces` blocks: (value text, frame texts), labels left out.
    static func traces(_ text: String) -> [[String]] {
        var blocks: [[String]] = []
        var current: [String]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("-----------+") {
                if let current { blocks.append(current) }
                current = []
                continue
            }
            guard current != nil, line.count > 13 else { continue }
            let index = line.index(line.startIndex, offsetBy: 10)
            if line[index] == ":" { continue }  // a label line
            let value = line[..<index].trimmingCharacters(in: .whitespaces)
            let name = String(line[line.index(index, offsetBy: 3)...])
            current?.append(value.isEmpty ? name : "\(value) \(name)")
        }
        return blocks
    }

    static func expectedTraces(_ profile: ProfileData, withLines: Bool) -> [[String]] {
        profile.samples.compactMap { sample in
            var names: [String] = []
            for id in sample.locationIDs {
                let location = profile.location(id: id)!
                if location.lines.isEmpty {
                    let file = profile.mapping(id: location.mappingID)?.filename ?? ""
                    names.append(file.isEmpty ? "<unknown>" : "[\(URL(fileURLWithPath: file).lastPathComponent)]")
                }
                for (index, line) in location.lines.enumerated() {
                    let function = profile.function(id: line.functionID)!
                    var name = function.name
                    // pprof's NameComponents: file:line, or the file alone when the line is 0.
                    if withLines && line.line != 0 {
                        name += " \(cleanPath(function.filename)):\(line.line)"
                    } else if withLines && !function.filename.isEmpty {
                        name += " \(cleanPath(function.filename))"
                    }
                    if index < location.lines.count - 1 { name += " (inline)" }
                    names.append(name)
                }
            }
            guard !names.isEmpty else { return nil }
            names[0] = "\(sample.values.last!) " + names[0]
            return names
        }
    }
}
