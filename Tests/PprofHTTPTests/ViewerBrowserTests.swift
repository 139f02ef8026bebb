import Foundation
@_spi(Benchmarks) import Pprof
import PprofReport
import Testing

/// The viewer page driven in a real headless Chromium against a server in a child process (with
/// the hooks, heap sampling of every allocation, and labelled parked threads: `--viewer`).
@Suite(.serialized) struct ViewerBrowserTests {
    /// The steps as the page's `#test=` hook takes them.
    static func url(port: Int, _ query: String, steps: [[String: Any]]) throws -> String {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: steps), as: UTF8.self)
        let hash = json.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        return "http://127.0.0.1:\(port)/debug/pprof/ui?\(query)#test=\(hash)"
    }

    /// The function of `profile` whose name contains `fragment`.
    static func function(_ rows: [FunctionTotals.Row], containing fragment: String) throws -> FunctionTotals.Row {
        try #require(rows.first { $0.name.contains(fragment) }, "no function with \(fragment) in \(rows.map(\.name))")
    }

    static func share(_ report: [String: Any], _ name: String) -> Double {
        ((report["shares"] as? [String: Any])?[name] as? NSNumber)?.doubleValue ?? -1
    }

    @Test(.enabled(if: Chromium.isAvailable, Chromium.absent)) func flameGraphSearchZoomSampleTypeAndDiffOfTheHeap()
        async throws
    {
        let child = try await ServerProcess.launch(["--viewer"])
        defer { child.stopInBackground() }
        // The heap grows a little all the time (growHeapForDiff): the page's shares must lie
        // between those of the profile taken just before and just after it loads.
        func heapShares() async throws -> HeapShares {
            try HeapShares(
                try ProfileData(decoding: try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/heap").body)
            )
        }
        let before = try await heapShares()
        let (search, home) = (before.search, before.home)
        let watch = [search.name, home.name]
        let steps: [[String: Any]] = [
            ["report": "initial", "watch": watch, "rows": 400],
            ["search": "retainBlocksFor", "report": "search", "watch": watch],
            ["search": "", "zoom": search.name, "report": "zoom", "watch": watch],
            ["reset": true, "sampleType": "inuse_objects", "report": "objects", "watch": watch],
            ["view": "flame", "report": "flame", "watch": watch],
            ["load": ["diff": "1", "seconds": "2"], "report": "diff", "rows": 400],
        ]
        let dom = try await Chromium.dumpDOM(try Self.url(port: child.port, "profile=heap", steps: steps))
        let after = try await heapShares()
        let reports = try Chromium.testResults(dom)
        try #require(reports.count == 6, "\(reports)")
        for report in reports { #expect((report["error"] as? String ?? "") == "", "\(report)") }
        func between(_ value: Double, _ first: Double, _ second: Double) -> Bool {
            value >= min(first, second) - 0.005 && value <= max(first, second) + 0.005
        }

        // The frames' widths are the profile's shares (±0.5 %).
        let initial = reports[0]
        #expect(initial["sampleType"] as? String == "inuse_space")
        let drawnSearch = Self.share(initial, search.name)
        let drawnHome = Self.share(initial, home.name)
        #expect(
            between(drawnSearch, before.searchShare, after.searchShare),
            "\(drawnSearch) vs \(before.searchShare)…\(after.searchShare)"
        )
        #expect(
            between(drawnHome, before.homeShare, after.homeShare),
            "\(drawnHome) vs \(before.homeShare)…\(after.homeShare)"
        )
        // 24 MiB of the heap in use (the rest: the service's and the profiler's own symbol tables).
        #expect(drawnSearch > 0.2, "\(drawnSearch)")
        // The top table's numbers for the stable allocations are go tool pprof -top's.
        let table = (initial["top"] as? [[Any]]) ?? []
        let row = table.first { $0.first as? String == search.name }
        #expect((row?[1] as? NSNumber)?.int64Value == search.flat && (row?[2] as? NSNumber)?.int64Value == search.cum)

        // Search highlights both functions' frames and reports their share.
        let searched = reports[1]
        #expect((searched["highlighted"] as? Int ?? 0) >= 2)
        let matchText = searched["match"] as? String ?? ""
        let matched = (Double(matchText.split(separator: "(").last?.dropLast(2) ?? "") ?? -100) / 100
        #expect(
            between(matched, before.searchShare + before.homeShare, after.searchShare + after.homeShare),
            "\(matchText)"
        )

        // Zoom: the function fills the width.
        let zoomed = reports[2]
        #expect(zoomed["zoom"] as? String == search.name)
        #expect(abs(Self.share(zoomed, search.name) - 1) <= 0.005)
        #expect(Self.share(zoomed, home.name) == 0)

        // Objects rank the two the other way round.
        let counted = reports[3]
        #expect(counted["sampleType"] as? String == "inuse_objects")
        let homeObjects = Self.share(counted, home.name)
        #expect(
            between(homeObjects, before.homeObjectShare, after.homeObjectShare),
            "\(homeObjects) vs \(before.homeObjectShare)"
        )
        #expect(homeObjects > Self.share(counted, search.name))
        #expect(abs(Self.share(reports[4], home.name) - homeObjects) <= 0.005, "the flame view draws the same")

        // Diff against the heap two seconds earlier: growHeapForDiff grew (red), and the table's
        // numbers are the difference.
        let diff = reports[5]
        #expect(diff["diff"] as? Bool == true)
        #expect((diff["grew"] as? Int ?? 0) > 0)
        let diffRows = (diff["top"] as? [[Any]]) ?? []
        let grow = diffRows.first { ($0.first as? String)?.contains("growHeapForDiff") == true }
        let grewBy = (grow?[2] as? NSNumber)?.int64Value ?? 0
        #expect(grewBy >= 4 * (16 << 10), "growHeapForDiff keeps 64 KiB more a second: \(diffRows.prefix(10))")
        let stable = diffRows.first { $0.first as? String == search.name }
        #expect(stable == nil || (stable?[2] as? NSNumber)?.int64Value == 0, "nothing changed in retainBlocksForSearch")

        let screenshot = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-ui-\(UUID()).png")
        defer { try? FileManager.default.removeItem(at: screenshot) }
        try await Chromium.screenshot("http://127.0.0.1:\(child.port)/debug/pprof/ui?profile=heap", to: screenshot)
        let size = (try? FileManager.default.attributesOfItem(atPath: screenshot.path)[.size] as? Int) ?? 0
        #expect(size > 10_000, "a screenshot of a drawn flame graph is more than a blank page")
    }

    @Test(.enabled(if: Chromium.isAvailable, Chromium.absent)) func theLabelFilterKeepsOnlyTheLabelledThreads()
        async throws
    {
        let child = try await ServerProcess.launch(["--viewer"])
        defer { child.stopInBackground() }
        let threads = try ProfileData(
            decoding: try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/goroutine").body
        )
        let totals = FunctionTotals(threads, valueIndex: 0)
        let search = try Self.function(totals.rows, containing: "parkForSearch")
        let home = try Self.function(totals.rows, containing: "parkForHome")
        #expect(search.cum == 6 && home.cum == 2)
        let watch = [search.name, home.name]
        let steps: [[String: Any]] = [
            ["report": "all", "watch": watch],
            ["load": ["tagfocus": "route=^/home$"], "report": "home", "watch": watch],
            ["load": ["tagfocus": NSNull(), "tagignore": "route=^/home$"], "report": "not home", "watch": watch],
        ]
        let dom = try await Chromium.dumpDOM(try Self.url(port: child.port, "profile=goroutine", steps: steps))
        let reports = try Chromium.testResults(dom)
        try #require(reports.count == 3, "\(reports)")
        #expect(abs(Self.share(reports[0], search.name) - 6 / Double(totals.total)) <= 0.005)
        #expect(abs(Self.share(reports[1], home.name) - 1) <= 0.005, "\(reports[1])")
        #expect(Self.share(reports[1], search.name) == 0)
        #expect((reports[1]["filters"] as? [String]) == ["tagfocus=route=^/home$"])
        #expect(Self.share(reports[2], home.name) == 0)
        #expect(Self.share(reports[2], search.name) > Self.share(reports[0], search.name))
    }

    /// The whole top table of a 100,000-sample profile over 10,000 stacks, offline (`pprof flame`'s
    /// page), against go tool pprof's arithmetic; and how long the page takes to draw it.
    @Test(.enabled(if: Chromium.isAvailable, Chromium.absent)) func aLargeProfileDrawsAndItsTopTableIsExact()
        async throws
    {
        let profile = SyntheticProfile.make(samples: 100_000, stacks: 10_000, functions: 3_000)
        let json = try FlameGraphData.json(profile)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-flame-\(UUID()).html")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(UIPage.standalone(data: json, title: "synthetic")).write(to: file)
        let steps: [[String: Any]] = [["report": "large", "rows": 5000, "watch": ["f7"]]]
        let json2 = String(decoding: try JSONSerialization.data(withJSONObject: steps), as: UTF8.self)
        let url =
            file.absoluteString + "#test=" + (json2.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
        let reports = try Chromium.testResults(try await Chromium.dumpDOM(url))
        let report = try #require(reports.first)
        let expected = FunctionTotals(profile, valueIndex: 1).rows
        let shown = (report["top"] as? [[Any]]) ?? []
        #expect(shown.count == expected.count)
        for (row, want) in zip(shown, expected) {
            #expect(row[0] as? String == want.name)
            #expect((row[1] as? NSNumber)?.int64Value == want.flat && (row[2] as? NSNumber)?.int64Value == want.cum)
        }
        let nodes = report["nodes"] as? Int ?? 0
        let build = (report["buildMs"] as? NSNumber)?.doubleValue ?? -1
        print(
            "viewer: \(nodes) nodes of 100,000 samples over 10,000 stacks drawn with the top table in \(Int(build)) ms"
        )
        #expect(nodes > 10_000)
    }
}

/// The two stable allocations of the `--viewer` helper's heap, and their shares of it.
struct HeapShares {
    var search: FunctionTotals.Row
    var home: FunctionTotals.Row
    var searchShare: Double
    var homeShare: Double
    var homeObjectShare: Double

    init(_ heap: ProfileData) throws {
        let bySpace = FunctionTotals(heap, valueIndex: try heap.reportValueIndex("inuse_space"))
        let byObjects = FunctionTotals(heap, valueIndex: try heap.reportValueIndex("inuse_objects"))
        search = try ViewerBrowserTests.function(bySpace.rows, containing: "retainBlocksForSearch")
        home = try ViewerBrowserTests.function(bySpace.rows, containing: "retainBlocksForHome")
        let homeObjects = try ViewerBrowserTests.function(byObjects.rows, containing: "retainBlocksForHome")
        searchShare = Double(search.cum) / Double(bySpace.total)
        homeShare = Double(home.cum) / Double(bySpace.total)
        homeObjectShare = Double(homeObjects.cum) / Double(byObjects.total)
    }
}

/// A profile of `samples` samples over `stacks` distinct stacks (depth 20–40) of `functions`
/// function names, values 1–5 and 10 ms per count, with route labels: the viewer's large case.
enum SyntheticProfile {
    static func make(samples: Int, stacks: Int, functions: Int) -> ProfileData {
        var rng = SplitMix64(seed: 7)
        var profile = ProfileData()
        profile.sampleTypes = [.init(type: "samples", unit: "count"), .init(type: "cpu", unit: "nanoseconds")]
        profile.mappings = []
        profile.functions = (0..<functions).map {
            .init(id: UInt64($0 + 1), name: "f\($0)", systemName: "", filename: "")
        }
        profile.locations = (0..<functions).map { index -> ProfileData.Location in
            let line = ProfileData.Line(functionID: UInt64(index + 1), line: 1)
            return ProfileData.Location(
                id: UInt64(index + 1),
                mappingID: 0,
                address: UInt64(0x1000 + index * 16),
                lines: [line]
            )
        }
        // Stacks share their outer frames, as real ones do: a few roots, then branching.
        var shapes: [[UInt64]] = []
        for _ in 0..<stacks {
            let depth = Int(rng.next() % 21 + 20)
            var rootFirst: [UInt64] = []
            for level in 0..<depth {
                let function = level < 4 ? level * 7 % functions : Int(rng.next() % UInt64(functions))
                rootFirst.append(UInt64(function + 1))
            }
            shapes.append(rootFirst.reversed())
        }
        for index in 0..<samples {
            let count = Int64(rng.next() % 5 + 1)
            profile.samples.append(
                .init(
                    locationIDs: shapes[index % stacks],
                    values: [count, count * 10_000_000],
                    labels: [.init(key: "route", string: "/r\(index % 5)")]
                )
            )
        }
        return profile
    }

}
