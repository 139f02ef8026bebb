import Testing

@testable import Pprof

/// Writer → reader round trips over many random profiles that use every field.
@Suite struct FormatRoundTripTests {
    static let seeds = Array(UInt64(1)...300)

    @Test(arguments: [false, true])
    func randomProfilesRoundTrip(compressed: Bool) throws {
        var checkedLabels = 0
        var checkedInline = 0
        for seed in Self.seeds {
            let profile = RandomProfiles.profile(seed: seed)
            let bytes = try profile.encoded(compressed: compressed)
            let decoded = try ProfileData(decoding: bytes)
            let expected = RandomProfiles.wireNormalized(profile)
            #expect(decoded == expected, "seed \(seed)")
            if decoded != expected { break }
            // Encoding is deterministic and stable under a second round trip.
            #expect(try decoded.encoded(compressed: compressed) == expected.encoded(compressed: compressed))
            checkedLabels += decoded.samples.reduce(0) { $0 + $1.labels.count }
            checkedInline += decoded.locations.filter { $0.lines.count > 1 }.count
        }
        // The generator really covered labels and inline lines.
        #expect(checkedLabels > 500)
        #expect(checkedInline > 500)
    }

    @Test func generatorCoversEveryField() {
        let profiles = Self.seeds.map { RandomProfiles.profile(seed: $0) }
        let samples = profiles.flatMap(\.samples)
        let labels = samples.flatMap(\.labels)
        #expect(labels.contains { $0.string != nil && $0.string!.isEmpty })
        #expect(labels.contains { $0.number == 0 && $0.numberUnit == nil })
        #expect(labels.contains { $0.numberUnit != nil && $0.number != nil })
        #expect(labels.contains { ($0.string ?? "").unicodeScalars.contains { $0.value > 0x7f } })
        #expect(samples.contains { $0.values.contains(.min) } && samples.contains { $0.values.contains(.max) })
        #expect(samples.contains { $0.values.contains { $0 < 0 } })
        #expect(samples.contains { $0.locationIDs.count > 2 } && samples.contains { $0.locationIDs.count == 2 })
        let locations = profiles.flatMap(\.locations)
        #expect(locations.contains(where: \.isFolded) && locations.contains { $0.lines.contains { $0.column != 0 } })
        let mappings = profiles.flatMap(\.mappings)
        #expect(mappings.contains(where: \.hasInlineFrames) && mappings.contains { $0.buildID.isEmpty })
        #expect(profiles.contains { $0.periodType == nil } && profiles.contains { $0.periodType != nil })
        #expect(profiles.contains { !$0.comments.isEmpty && !$0.dropFrames.isEmpty && !$0.keepFrames.isEmpty })
        #expect(profiles.contains { $0.functions.contains { $0.name.isEmpty } })
        // Scattered IDs, not only 1…n.
        #expect(profiles.contains { $0.functions.enumerated().contains { $0.element.id != UInt64($0.offset + 1) } })
    }

    @Test func labelsThatCarryNothingAreDroppedAsGooglePprofDrops() throws {
        let profile = ProfileData(
            sampleTypes: [.init(type: "a", unit: "b")],
            samples: [
                .init(
                    locationIDs: [],
                    values: [1],
                    labels: [
                        .init(key: "empty", string: ""), .init(key: "zero", number: 0),
                        .init(key: "zeroWithUnit", number: 0, unit: "bytes"), .init(key: "kept", string: "v"),
                    ]
                )
            ]
        )
        let decoded = try ProfileData(decoding: profile.encoded())
        #expect(
            decoded.samples[0].labels == [
                .init(key: "zeroWithUnit", number: 0, unit: "bytes"), .init(key: "kept", string: "v"),
            ]
        )
    }
}
