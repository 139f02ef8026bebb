import Foundation
import Testing

@testable import Pprof

// Call sites whose lines the tests check once the symbolizer provides file:line. Keep each
// `profile.add` exactly two lines above its `…Line` constant.
@inline(never) func openConnectionForFormatTest(_ profile: Profile, _ value: Int) {
    profile.add(value)
}
let openConnectionAddLine = #line - 2

@inline(never) func openFileForFormatTest(_ profile: Profile, _ value: Int) {
    profile.add(value)
}
let openFileAddLine = #line - 2

/// Adds on behalf of its caller, as a library helper would: `skip: 1`.
@inline(never) func addOnBehalfOfCaller(_ profile: Profile, _ value: Int, skip: Int = 1) {
    profile.add(value, skip: skip)
}

@inline(never) func callerOfAddHelper(_ profile: Profile, _ value: Int, skip: Int = 1) {
    addOnBehalfOfCaller(profile, value, skip: skip)
}
let callerOfAddHelperLine = #line - 2

/// A custom profile written with debug=0 and debug=1, read back, and `add`'s `skip`.
@Suite struct FormatCustomProfileTests {
    static let thisFile = URL(fileURLWithPath: #filePath).lastPathComponent

    /// A profile with 3 values added at one site and 2 at another, from `fillProfile`.
    @inline(never) static func fillProfile() -> Profile {
        let profile = Profile(name: "format.custom.\(UUID().uuidString)")
        for value in 0..<3 { openConnectionForFormatTest(profile, value) }
        for value in 10..<12 { openFileForFormatTest(profile, value) }
        return profile
    }

    /// Checks a frame's file and line when the symbolizer knows them (DWARF); names always.
    static func expectFrame(
        _ frame: ProfileData.Frame?,
        function: String,
        line: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard let frame else {
            Issue.record("missing frame for \(function)", sourceLocation: sourceLocation)
            return
        }
        #expect(frame.function.hasPrefix(function), sourceLocation: sourceLocation)
        #expect(frame.systemName.hasPrefix("$s"), "mangled Swift symbol as system name", sourceLocation: sourceLocation)
        if !frame.file.isEmpty {
            #expect(URL(fileURLWithPath: frame.file).lastPathComponent == thisFile, sourceLocation: sourceLocation)
            #expect(frame.line == Int64(line), sourceLocation: sourceLocation)
        }
    }

    @Test func debugZeroDecodesToTheRightStacksAndCounts() throws {
        let profile = Self.fillProfile()
        let buffer = ProfileBuffer()
        try profile.write(to: buffer, debug: 0)
        let decoded = try ProfileData(decoding: buffer.bytes)

        let type = ProfileData.ValueType(type: profile.name, unit: "count")
        #expect(decoded.sampleTypes == [type] && decoded.periodType == type && decoded.period == 1)
        #expect(decoded.timeNanos > 0)
        let samples = decoded.resolvedSamples()
        #expect(samples.map(\.values) == [[3], [2]], "one sample per call site, largest count first")
        #expect(decoded.total(of: profile.name) == 5)

        // Leaf first: the caller of `add`, demangled, then the function that called it.
        Self.expectFrame(
            samples[0].frames.first,
            function: "PprofTests.openConnectionForFormatTest(_:_:)",
            line: openConnectionAddLine
        )
        Self.expectFrame(
            samples[1].frames.first,
            function: "PprofTests.openFileForFormatTest(_:_:)",
            line: openFileAddLine
        )
        for sample in samples {
            #expect(sample.frames.count >= 3)
            #expect(sample.frames[1].function.hasPrefix("static PprofTests.FormatCustomProfileTests.fillProfile()"))
            #expect(!sample.frames.contains { $0.function.contains("Profile.add") }, "add itself is not shown")
        }
        #expect(samples[0].frames[1].address != samples[1].frames[1].address, "two call sites in fillProfile")
        #expect(Array(samples[0].frames.dropFirst(2)) == Array(samples[1].frames.dropFirst(2)), "same callers above")

        // Every location of the test executable is symbolized, so its mapping says so.
        let main = try #require(decoded.mappings.first)
        #expect(main.hasFunctions && !main.buildID.isEmpty)
    }

    @Test func debugOneListsTheSameStacks() throws {
        let profile = Self.fillProfile()
        let text = ProfileBuffer()
        try profile.write(to: text, debug: 1)
        let proto = ProfileBuffer()
        try profile.write(to: proto, debug: 0)
        let decoded = try ProfileData(decoding: proto.bytes)

        let lines = text.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "\(profile.name) profile: total 5")
        let records = lines.filter { $0.first?.isNumber == true }
        #expect(records.count == 2)
        // The `@` list holds the raw return addresses: one more than each location's address.
        for (record, sample) in zip(records, decoded.samples) {
            let addresses = sample.locationIDs.map {
                "0x" + String(decoded.locations[Int($0 - 1)].address + 1, radix: 16)
            }
            #expect(record == "\(sample.values[0]) @ " + addresses.joined(separator: " "))
        }
        let leafLine = try #require(lines.first { $0.hasPrefix("#\t") })
        let leafAddress = decoded.locations[Int(decoded.samples[0].locationIDs[0] - 1)].address
        #expect(
            leafLine.hasPrefix(
                "#\t0x\(String(leafAddress, radix: 16))\tPprofTests.openConnectionForFormatTest(_:_:)+0x"
            )
        )
        #expect(text.text.hasSuffix("\n\n"))
    }

    @Test func skipZeroStartsAtTheCallerOfAddAndSkipOneAtItsCaller() throws {
        let profile = Profile(name: "format.skip.\(UUID().uuidString)")
        openConnectionForFormatTest(profile, 1)  // skip 0
        callerOfAddHelper(profile, 2)  // skip 1 inside the helper
        callerOfAddHelper(profile, 3, skip: 2)
        callerOfAddHelper(profile, 4, skip: 10_000)
        callerOfAddHelper(profile, 5, skip: .max)
        let buffer = ProfileBuffer()
        try profile.write(to: buffer)
        let leaves = try ProfileData(decoding: buffer.bytes).resolvedSamples().map { $0.frames.first?.function ?? "" }
        #expect(leaves.count == 4, "the two empty stacks are one sample")
        #expect(leaves.contains { $0.hasPrefix("PprofTests.openConnectionForFormatTest(") })
        #expect(leaves.contains { $0.hasPrefix("PprofTests.callerOfAddHelper(") }, "skip 1: the helper's caller")
        #expect(!leaves.contains { $0.hasPrefix("PprofTests.addOnBehalfOfCaller(") })
        #expect(leaves.contains { $0.contains("skipZeroStartsAtTheCallerOfAdd") }, "skip 2: one frame further")
        // A skip past the whole stack leaves an empty stack, shown as Go's lostProfileEvent.
        let lost = try ProfileData(decoding: buffer.bytes).resolvedSamples().filter {
            $0.functionNames == ["pprof.lostProfileEvent"]
        }
        #expect(lost.map(\.values) == [[2]])
        let helper = try ProfileData(decoding: buffer.bytes).resolvedSamples().first {
            $0.frames.first?.function.hasPrefix("PprofTests.callerOfAddHelper(") == true
        }
        Self.expectFrame(helper?.frames.first, function: "PprofTests.callerOfAddHelper(", line: callerOfAddHelperLine)
    }

    @Test func valuesCanBeAddedAgainAfterRemoval() throws {
        let profile = Profile(name: "format.readd.\(UUID().uuidString)")
        openConnectionForFormatTest(profile, 1)
        openConnectionForFormatTest(profile, 2)
        profile.remove(1)
        profile.remove(99)  // unknown: nothing happens
        #expect(profile.count == 1)
        openFileForFormatTest(profile, 1)  // the same value again, from another site
        #expect(profile.count == 2)
        let buffer = ProfileBuffer()
        try profile.write(to: buffer)
        let leaves = try ProfileData(decoding: buffer.bytes).resolvedSamples().map { $0.frames.first?.function ?? "" }
        #expect(leaves.filter { $0.hasPrefix("PprofTests.openFileForFormatTest(") }.count == 1)
        #expect(leaves.filter { $0.hasPrefix("PprofTests.openConnectionForFormatTest(") }.count == 1)
    }

    @Test func anEmptyProfileIsStillAValidProfile() throws {
        let profile = Profile(name: "format.empty.\(UUID().uuidString)")
        let buffer = ProfileBuffer()
        try profile.write(to: buffer)
        let decoded = try ProfileData(decoding: buffer.bytes)
        #expect(decoded.samples.isEmpty && decoded.sampleTypes.count == 1)
        let text = ProfileBuffer()
        try profile.write(to: text, debug: 1)
        #expect(text.text == "\(profile.name) profile: total 0\n")
    }
}
