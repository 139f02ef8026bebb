import Foundation
import Pprof
import PprofHTTP
import PprofReport
import Testing

/// The viewer's page and data endpoint, and godeltaprof's endpoints, at the handler.
@Suite struct ViewerEndpointTests {
    let handler = PprofHandler()

    func get(_ target: String) async -> PprofHandler.Response {
        await handler.respond(to: PprofHandler.Request(method: "GET", target: target))
    }

    @Test func thePageIsSmallSelfContainedAndOffersEveryProfile() async throws {
        _ = Fixtures.profile
        let page = await get("/debug/pprof/ui")
        #expect(page.status == 200)
        #expect(page.value(forHeader: "Content-Type") == "text/html; charset=utf-8")
        #expect(page.value(forHeader: "Content-Security-Policy")?.contains("connect-src 'self'") == true)
        #expect(page.body.count <= 80 * 1024, "the page is \(page.body.count) bytes, over its 80 KB budget")
        // No third-party code and no request to anything but this server.
        #expect(!page.text.contains("http://") && !page.text.contains("https://") && !page.text.contains("src="))
        for name in ["profile", "wall", "heap", "goroutine", "delta_heap", Fixtures.profileName] {
            #expect(page.text.contains("\"\(name)\""), "the picker lacks \(name)")
        }
        let index = await get("/debug/pprof/")
        #expect(index.text.contains("<a href=\"ui\">"))
    }

    @Test func malformedQueriesAreA400WithTheReason() async {
        _ = Fixtures.profile
        let cases: [(query: String, reason: String)] = [
            ("", "missing profile parameter"),
            ("profile=nosuch", "unknown profile \"nosuch\""),
            ("profile=heap&seconds=abc", "invalid value for \"seconds\""),
            ("profile=heap&seconds=-3", "invalid value for \"seconds\""),
            ("profile=profile&seconds=100000", "exceeds server's limit"),
            ("profile=\(Fixtures.profileName)&focus=(", "focus"),
            ("profile=\(Fixtures.profileName)&tagfocus=route=[", "tagfocus"),
            ("profile=\(Fixtures.profileName)&sample_index=bogus", "sample_index \"bogus\""),
            ("profile=\(Fixtures.profileName)&diff=maybe", "invalid value for \"diff\""),
            ("profile=\(Fixtures.profileName)&diff=1", "diff needs seconds=N"),
            ("profile=delta_heap&seconds=5", "takes neither seconds nor diff"),
        ]
        for (query, reason) in cases {
            let response = await get("/debug/pprof/ui/data?" + query)
            #expect(response.status == 400, "\(query): \(response.status) \(response.text)")
            #expect(response.text.contains(reason), "\(query): \(response.text)")
        }
    }

    /// The JSON's tree gives back the profile's flat and cum per function (what go tool pprof
    /// -top prints), its totals, and the label choices.
    @Test func theDataIsTheProfilesCallTree() async throws {
        _ = Fixtures.profile
        let response = await get("/debug/pprof/ui/data?profile=\(Fixtures.profileName)")
        #expect(response.status == 200, "\(response.text)")
        #expect(response.value(forHeader: "Content-Type") == "application/json")
        let tree = try ViewerTree(json: response.body)
        #expect(tree.totals == [3])
        #expect(tree.sampleTypes == [Fixtures.profileName])
        let raw = await get("/debug/pprof/\(Fixtures.profileName)")
        let expected = FunctionTotals(try ProfileData(decoding: raw.body), valueIndex: 0).rows
        let expectedTotals = Dictionary(
            expected.map { ($0.name, [$0.flat, $0.cum]) },
            uniquingKeysWith: { first, _ in first }
        )
        #expect(tree.functionTotals(type: 0) == expectedTotals)
        #expect(expected.contains { $0.name.contains("openTestConnection") && $0.cum == 3 })
    }

    @Test func aDiffCarriesTheBaseOnTheSameTree() async throws {
        let profile = Self.diffProfile
        let adding = Task {
            try await Task.sleep(for: .milliseconds(300))
            for value in 0..<4 { profile.add(value) }
        }
        let response = await get("/debug/pprof/ui/data?profile=pprofhttp.test.viewer.diff&seconds=1&diff=1")
        try await adding.value
        #expect(response.status == 200, "\(response.text)")
        let tree = try ViewerTree(json: response.body)
        #expect(tree.isDiff)
        let totals = tree.functionTotals(type: 0)
        #expect(totals.values.contains { $0[1] == 4 }, "what was added after the base: \(totals)")
        #expect(tree.baseSelf?.joined().allSatisfy { $0 == 0 } == true, "the base was taken before anything was added")
    }

    static let diffProfile = Profile(name: "pprofhttp.test.viewer.diff")
}

/// The viewer's JSON read back, with the page's arithmetic: a node's total is its self value plus
/// its children's; a function's cum counts each stack once.
struct ViewerTree {
    var names: [String]
    var parent: [Int]
    var name: [Int]
    var selfValues: [[Int64]]
    var baseSelf: [[Int64]]?
    var totals: [Int64]
    var sampleTypes: [String]
    var labels: [String: [String]]
    var filters: [String]

    var isDiff: Bool { baseSelf != nil }

    init(json: [UInt8]) throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
        names = try #require(object["names"] as? [String])
        let offsets = try #require(object["parentOffset"] as? [Int])
        parent = offsets.enumerated().map { $0.offset == 0 ? -1 : $0.offset - $0.element }
        name = try #require(object["name"] as? [Int])
        selfValues = try #require(object["self"] as? [[NSNumber]]).map { $0.map(\.int64Value) }
        baseSelf = (object["baseSelf"] as? [[NSNumber]])?.map { $0.map(\.int64Value) }
        totals = try #require(object["totals"] as? [NSNumber]).map(\.int64Value)
        sampleTypes = try #require(object["sampleTypes"] as? [[String: String]]).compactMap { $0["type"] }
        labels = object["labels"] as? [String: [String]] ?? [:]
        filters = object["filters"] as? [String] ?? []
    }

    /// Function name → [flat, cum] of sample type `type` (new minus base in a diff).
    func functionTotals(type: Int) -> [String: [Int64]] {
        func nodeTotals(_ values: [Int64]) -> [Int64] {
            var totals = values
            for node in stride(from: parent.count - 1, to: 0, by: -1) { totals[parent[node]] += totals[node] }
            return totals
        }
        let now = nodeTotals(selfValues[type])
        let base = baseSelf.map { nodeTotals($0[type]) } ?? [Int64](repeating: 0, count: parent.count)
        let baseSelfValues = baseSelf?[type] ?? [Int64](repeating: 0, count: parent.count)
        var result: [String: [Int64]] = [:]
        for node in 1..<parent.count {
            let function = names[name[node]]
            var outer = false
            var ancestor = parent[node]
            while ancestor > 0 {
                if name[ancestor] == name[node] { outer = true }
                ancestor = parent[ancestor]
            }
            var entry = result[function] ?? [0, 0]
            entry[0] += selfValues[type][node] - baseSelfValues[node]
            if !outer { entry[1] += now[node] - base[node] }
            result[function] = entry
        }
        return result.filter { $0.value != [0, 0] }
    }
}
