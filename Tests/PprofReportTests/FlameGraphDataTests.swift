import Foundation
import Pprof
import PprofReport
import Testing

@Suite struct FlameGraphDataTests {
    /// Names with JSON's special characters and HTML's come back unchanged through a JSON parser,
    /// and the JSON has no raw `<`, `>` or `&`, so it can be embedded in a page's `<script>`.
    @Test func namesAreEscapedForJSONAndForAScriptElement() throws {
        let names = [
            "plain.function()", "quote\"d", "back\\slash", "<script>alert(1)</script>", "a&b",
            "tab\tnew\nline\u{1}", "ünïcödé.λ()", "tail<",
        ]
        let profile = ProfileData(
            sampleTypes: [.init(type: "samples", unit: "count")],
            samples: names.indices.map { .init(locationIDs: [UInt64($0 + 1)], values: [Int64($0 + 1)]) },
            locations: names.indices.map {
                .init(id: UInt64($0 + 1), mappingID: 0, address: 0, lines: [.init(functionID: UInt64($0 + 1), line: 1)])
            },
            functions: names.enumerated().map {
                .init(id: UInt64($0.offset + 1), name: $0.element, systemName: $0.element, filename: "f.swift")
            }
        )
        let json = try FlameGraphData.json(profile)
        for forbidden in ["<", ">", "&"] {
            #expect(!String(decoding: json, as: UTF8.self).contains(forbidden), "raw \(forbidden) in the JSON")
        }
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
        let decodedNames = try #require(object["names"] as? [String])
        #expect(Set(decodedNames) == Set(["root"] + names))
        // Each name's node carries its own sample's value.
        let nameOfNode = try #require(object["name"] as? [Int])
        let selfValues = try #require((object["self"] as? [[Int]])?.first)
        for (index, name) in names.enumerated() {
            let node = try #require(nameOfNode.firstIndex { decodedNames[$0] == name })
            #expect(selfValues[node] == index + 1, "\(name)")
        }
    }
}
