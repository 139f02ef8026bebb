import Foundation
import Testing

@_spi(Benchmarks) @testable import Pprof

/// Corrupt, truncated and hostile input is rejected with `PprofError.malformedProfile`, never a
/// trap, and nothing is allocated on the word of a length field.
@Suite struct FormatCorruptionTests {
    /// Decodes `bytes`; returns nil if it was rejected the right way, the profile if it was
    /// accepted (a corruption may still be a valid profile). Any other error fails the test.
    @discardableResult
    private func decodeOrReject(_ bytes: [UInt8], _ context: @autoclosure () -> String) -> ProfileData? {
        do {
            let profile = try ProfileData(decoding: bytes)
            // Whatever is accepted is a consistent profile that encodes again.
            #expect(throws: Never.self, "\(context())") { try profile.validateReferences() }
            #expect(throws: Never.self, "\(context())") { _ = try profile.encoded(compressed: false) }
            return profile
        } catch PprofError.malformedProfile {
            return nil
        } catch {
            Issue.record("\(context()): unexpected error \(error)")
            return nil
        }
    }

    private func rejects(_ bytes: [UInt8], _ comment: Comment) {
        #expect(throws: PprofError.self, comment) { _ = try ProfileData(decoding: bytes) }
        do {
            _ = try ProfileData(decoding: bytes)
        } catch PprofError.malformedProfile {
        } catch {
            Issue.record("\(comment): wrong error \(error)")
        }
    }

    /// A real profile written by the library: a custom profile with symbolized stacks and
    /// mappings, plus labels and inline lines from a random one merged in.
    private static func realProfile() throws -> ProfileData {
        let profile = Profile(name: "corruption.\(UUID().uuidString)")
        for value in 0..<5 { addForCorruption(profile, value) }
        let buffer = ProfileBuffer()
        try profile.write(to: buffer, debug: 0)
        return try ProfileData(decoding: buffer.bytes)
    }

    @Test func truncationAtEveryOffsetOfARealProfile() throws {
        let profile = try Self.realProfile()
        let raw = try profile.encoded(compressed: false)
        let gzip = try profile.encoded(compressed: true)
        #expect(raw.count > 500)
        var accepted = 0
        for length in 0..<raw.count where decodeOrReject(Array(raw[..<length]), "raw prefix \(length)") != nil {
            accepted += 1
        }
        // The string table comes last, so almost every prefix lacks strings it needs.
        #expect(accepted < raw.count / 10)
        for length in 0..<gzip.count {
            rejects(Array(gzip[..<length]), "gzip prefix \(length)")
        }
    }

    @Test func randomByteFlipsNeverTrap() throws {
        var rng = SplitMix64(seed: 99)
        for (name, original) in [
            ("real", try Self.realProfile().encoded(compressed: false)),
            ("random", try RandomProfiles.profile(seed: 5).encoded(compressed: false)),
            ("gzip", try Self.realProfile().encoded(compressed: true)),
        ] {
            for trial in 0..<800 {
                var bytes = original
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let at = Int.random(in: 0..<bytes.count, using: &rng)
                    bytes[at] ^= UInt8.random(in: 1...255, using: &rng)
                }
                decodeOrReject(bytes, "\(name) flip trial \(trial)")
            }
        }
    }

    @Test func randomGarbageNeverTraps() {
        var rng = SplitMix64(seed: 1234)
        for trial in 0..<3000 {
            let count = Int.random(in: 0..<200, using: &rng)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if trial % 3 == 0 { bytes = [0x1f, 0x8b] + bytes }
            decodeOrReject(bytes, "garbage \(trial)")
        }
    }

    @Test func hostileLengthsAreRejectedWithoutAllocating() {
        let huge = Wire.varint(1 << 62)
        // A top-level message, a nested message, a packed field and a string claiming 2^62 bytes.
        rejects([0x12] + huge + [0x08, 0x01], "sample length")
        rejects(Wire.bytes(2, [0x1a] + huge) + Wire.strings([]), "label length")
        rejects(Wire.bytes(2, [0x0a] + huge) + Wire.strings([]), "packed length")
        rejects([0x32] + huge, "string length")
        rejects([0x32] + Wire.varint(UInt64.max), "string length 2^64-1")
        rejects([0x0a, 0x05, 0x08], "message longer than its parent")
        // A varint of eleven bytes, and one cut short.
        rejects([0x48] + [UInt8](repeating: 0xff, count: 10) + [0x01], "11-byte varint")
        rejects([0x48, 0xff], "truncated varint")
    }

    @Test func decompressionIsCapped() throws {
        let bomb = try Zlib.gzip([UInt8](repeating: 0, count: 4 << 20))
        #expect(bomb.count < 64 * 1024)
        #expect(throws: PprofError.self) { _ = try ProfileData(decoding: bomb[...], maximumSize: 1 << 20) }
    }

    @Test func badStringIndices() {
        let type = { (type: Int64, unit: Int64) in
            Wire.bytes(1, Wire.integer(1, signed: type) + Wire.integer(2, signed: unit))
        }
        rejects(type(5, 1) + Wire.strings(["a"]), "index past the table")
        rejects(type(-1, 1) + Wire.strings(["a"]), "negative index")
        rejects(type(1, 1), "no string table")
        rejects(type(1, 1) + Wire.string("a") + Wire.string(""), "table not starting with \"\"")
        rejects(Wire.bytes(5, Wire.integer(1, 1) + Wire.integer(2, 9)) + Wire.strings(["a"]), "function name")
        rejects(Wire.bytes(3, Wire.integer(1, 1) + Wire.integer(6, 9)) + Wire.strings(["a"]), "mapping build ID")
        rejects(Wire.integer(14, 3) + Wire.strings(["a"]), "default sample type")
        rejects(Wire.integer(13, 3) + Wire.strings(["a"]), "comment")
        let labelled =
            type(1, 1) + Wire.bytes(2, Wire.integer(2, 1) + Wire.bytes(3, Wire.integer(1, 1) + Wire.integer(2, 7)))
        rejects(labelled + Wire.strings(["a"]), "label value")
    }

    @Test func danglingReferencesAndBadIDs() {
        let strings = Wire.strings(["t"])
        let type = Wire.bytes(1, Wire.integer(1, 1) + Wire.integer(2, 1))
        let function = Wire.bytes(5, Wire.integer(1, 1) + Wire.integer(2, 1))
        let mapping = Wire.bytes(3, Wire.integer(1, 1))
        let location = { (id: UInt64, mapping: UInt64, function: UInt64) in
            Wire.bytes(4, Wire.integer(1, id) + Wire.integer(2, mapping) + Wire.bytes(4, Wire.integer(1, function)))
        }
        let sample = { (location: UInt64) in Wire.bytes(2, Wire.integer(1, location) + Wire.integer(2, 1)) }
        // The valid base case first, so the rejections below are about the one thing changed.
        #expect(throws: Never.self) {
            _ = try ProfileData(decoding: type + mapping + function + location(1, 1, 1) + sample(1) + strings)
        }
        rejects(type + mapping + function + location(1, 1, 1) + sample(2) + strings, "sample → location")
        rejects(type + mapping + function + location(1, 2, 1) + sample(1) + strings, "location → mapping")
        rejects(type + mapping + function + location(1, 1, 2) + sample(1) + strings, "line → function")
        rejects(type + mapping + function + location(1, 1, 0) + sample(1) + strings, "line without function")
        rejects(type + mapping + function + location(0, 1, 1) + strings, "location ID 0")
        rejects(type + mapping + function + location(1, 1, 1) + location(1, 1, 1) + strings, "repeated location ID")
        rejects(type + mapping + mapping + strings, "repeated mapping ID")
        rejects(type + Wire.bytes(3, Wire.integer(4, 1)) + strings, "mapping ID 0")
        rejects(type + function + function + strings, "repeated function ID")
        rejects(sample(1) + mapping + function + location(1, 1, 1) + strings, "samples without sample types")
        rejects(type + type + sample(1) + mapping + function + location(1, 1, 1) + strings, "too few values")
    }

    @Test func wrongWireTypes() {
        let strings = Wire.strings(["t"])
        rejects(Wire.integer(2, 5) + strings, "sample as an integer")
        rejects([0x0b] + strings, "start group")
        rejects([0x0e] + strings, "wire type 6")
        rejects([0x32, 0x00, 0x30, 0x01], "string table entry as an integer")
        rejects(Wire.bytes(4, Wire.bytes(1, [1])) + strings, "location id as bytes")
        rejects(Wire.bytes(2, Wire.integer(3, 1)) + strings, "label as an integer")
        rejects([0x00, 0x01] + strings, "field number 0")
        rejects(Wire.bytes(2, [0x0d, 1, 2, 3, 4]) + strings, "repeated integer as fixed32")
    }
}

@inline(never) func addForCorruption(_ profile: Profile, _ value: Int) {
    profile.add(value)
}
