import Foundation
import Pprof
import Testing

/// `pprof` (our command) against `go tool pprof` on the demo's profiles of every kind: the same
/// rows, flat and cum for every function, for `top`, filtered `top`, `diff`, `traces` and `tags`.
@Suite(.serialized) struct PprofCommandTests {
    static let pprofURL = ServerProcess.productURL("pprof")

    /// One demo run shared by the tests of this suite (and a second one for diffs).
    static let demoProfiles = Task<URL, any Error> { try await runDemo() }
    static let secondDemoProfiles = Task<URL, any Error> { try await runDemo() }

    static func runDemo() async throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-cmd-\(UUID().uuidString)")
        let run = try await DemoTests.runDemo(["--seconds", "2", "--output", directory.path])
        guard run.status == 0 else { throw CocoaError(.executableLoad, userInfo: ["stderr": run.stderr]) }
        return directory
    }

    struct TopRow: Hashable, CustomStringConvertible {
        var flat: String
        var cum: String
        var name: String
        var description: String { "\(flat) \(cum) \(name)" }
    }

    /// The rows below the `flat flat% sum% cum cum%` heading: values as printed, and the name.
    static func topRows(_ text: String) -> [TopRow] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let heading = lines.firstIndex(where: { $0.hasPrefix("      flat  flat%") }) else { return [] }
        return lines[(heading + 1)...].compactMap { line in
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6 else { return nil }
            return TopRow(flat: String(fields[0]), cum: String(fields[3]), name: String(fields[5]))
        }
    }

    func both(_ arguments: [String]) async throws -> (ours: String, go: String) {
        let ours = try await DemoTests.runToEnd(Self.pprofURL, arguments)
        #expect(ours.status == 0, "pprof \(arguments): \(ours.stderr)")
        let go = try await GoPprof.run(["-symbolize=none"] + arguments)
        #expect(go.status == 0, "go tool pprof \(arguments): \(go.stderr)")
        return (ours.stdout, go.stdout)
    }

    @Test func topMatchesGoToolPprofForEveryKind() async throws {
        guard GoPprof.isAvailable else {
            Issue.record("skipped: `go` is not installed (apt-get install -y golang-go); .ci/run installs it")
            return
        }
        let directory = try await Self.demoProfiles.value
        for file in DemoTests.profileFiles {
            let path = directory.appendingPathComponent(file).path
            let (ours, go) = try await both(["-top", path])
            let goRows = Self.topRows(go)
            #expect(!goRows.isEmpty, "\(file): go tool pprof printed no rows:\n\(go)")
            #expect(Self.topRows(ours) == goRows, "\(file):\nours:\n\(ours)\ngo:\n\(go)")
        }
        // Every value column of the heap, and filters on the CPU profile.
        let heap = directory.appendingPathComponent("heap.pb.gz").path
        let cpu = directory.appendingPathComponent("cpu.pb.gz").path
        for arguments in [
            ["-top", "-sample_index=alloc_objects", heap], ["-top", "-sample_index=inuse_objects", heap],
            ["-top", "-tagfocus=route=/search", cpu], ["-top", "-tagignore=route=/login", "-nodecount=8", cpu],
            ["-top", "-focus=SearchIndex", "-ignore=IndexingIterator", cpu], ["-top", "-nodefraction=0", cpu],
        ] {
            let (ours, go) = try await both(arguments)
            #expect(!Self.topRows(go).isEmpty)
            #expect(Self.topRows(ours) == Self.topRows(go), "\(arguments):\nours:\n\(ours)\ngo:\n\(go)")
        }
    }

    @Test func diffMatchesGoDiffBase() async throws {
        guard GoPprof.isAvailable else {
            Issue.record("skipped: `go` is not installed (apt-get install -y golang-go); .ci/run installs it")
            return
        }
        let directory = try await Self.demoProfiles.value
        let second = try await Self.secondDemoProfiles.value
        // Two runs' heaps (the demo's delta_heap equals its heap: all it holds in use came in the
        // run, the profiler's own tables are not in either), CPU profiles (as two CPU windows) and
        // allocations: growth, shrinkage and unchanged stacks.
        for (base, profile) in [
            (directory.appendingPathComponent("heap.pb.gz"), second.appendingPathComponent("heap.pb.gz")),
            (directory.appendingPathComponent("cpu.pb.gz"), second.appendingPathComponent("cpu.pb.gz")),
            (directory.appendingPathComponent("allocs.pb.gz"), second.appendingPathComponent("allocs.pb.gz")),
        ] {
            let basePath = base.path
            let path = profile.path
            let ours = try await DemoTests.runToEnd(Self.pprofURL, ["diff", basePath, path])
            #expect(ours.status == 0, "\(ours.stderr)")
            let go = try await GoPprof.run(["-symbolize=none", "-top", "-diff_base=" + basePath, path])
            #expect(!Self.topRows(go.stdout).isEmpty)
            #expect(
                Self.topRows(ours.stdout) == Self.topRows(go.stdout),
                "\(profile.lastPathComponent) − \(base.lastPathComponent):\nours:\n\(ours.stdout)\ngo:\n\(go.stdout)"
            )
        }
    }

    @Test func tracesAndTagsMatchGoToolPprof() async throws {
        guard GoPprof.isAvailable else {
            Issue.record("skipped: `go` is not installed (apt-get install -y golang-go); .ci/run installs it")
            return
        }
        let directory = try await Self.demoProfiles.value
        let cpu = directory.appendingPathComponent("cpu.pb.gz").path
        let heap = directory.appendingPathComponent("heap.pb.gz").path
        for arguments in [
            ["-traces", cpu], ["-traces", "-tagfocus=route=/render", cpu], ["-tags", cpu], ["-tags", heap],
        ] {
            let (ours, go) = try await both(arguments)
            // The report bodies; the header's time line is formatted alike but compared anyway.
            #expect(ours == go, "\(arguments): first difference at line \(Self.firstDifference(ours, go))")
        }
    }

    @Test func unreadableInputIsOneClearLine() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = directory.appendingPathComponent("notes.txt")
        try Data("goroutine profile: total 3\n".utf8).write(to: text)
        for (arguments, expected) in [
            (["top", text.path], "not a pprof profile"),
            (["top", directory.appendingPathComponent("missing.pb.gz").path], "No such file"),
            (["top", "-focus=(", text.path], "invalid focus regular expression"),
            (["frobnicate", text.path], "no command"),
            (["top", "-nodecount=x", text.path], "invalid -nodecount"),
        ] {
            let run = try await DemoTests.runToEnd(Self.pprofURL, arguments)
            #expect(run.status == 1, "\(arguments)")
            let lines = run.stderr.split(separator: "\n")
            #expect(lines.count == 1 && run.stderr.contains(expected), "\(arguments): \(run.stderr)")
        }
    }

    @Test func mergeAndFlameWriteFiles() async throws {
        let directory = try await Self.demoProfiles.value
        let cpu = directory.appendingPathComponent("cpu.pb.gz").path
        let merged = directory.appendingPathComponent("merged.pb.gz").path
        let run = try await DemoTests.runToEnd(Self.pprofURL, ["merge", "-o", merged, cpu, cpu])
        #expect(run.status == 0, "\(run.stderr)")
        let once = try ProfileData(decoding: [UInt8](Data(contentsOf: URL(fileURLWithPath: cpu))))
        let twice = try ProfileData(decoding: [UInt8](Data(contentsOf: URL(fileURLWithPath: merged))))
        let index = try #require(once.sampleTypeIndex(named: "cpu"))
        #expect(twice.total(at: index) == 2 * once.total(at: index))

        let page = directory.appendingPathComponent("flame.html").path
        let flame = try await DemoTests.runToEnd(Self.pprofURL, ["flame", "-o", page, "-tagfocus=route=/search", cpu])
        #expect(flame.status == 0, "\(flame.stderr)")
        let html = try String(contentsOfFile: page, encoding: .utf8)
        #expect(html.contains("SearchIndex.score"))
        #expect(!html.contains("PasswordHasher.mix"), "the tag filter kept /login's frames")
    }

    static func firstDifference(_ left: String, _ right: String) -> String {
        let a = left.split(separator: "\n", omittingEmptySubsequences: false)
        let b = right.split(separator: "\n", omittingEmptySubsequences: false)
        for index in 0..<max(a.count, b.count) where index >= a.count || index >= b.count || a[index] != b[index] {
            return
                "\(index + 1): ours \(index < a.count ? String(a[index]) : "<end>") | go \(index < b.count ? String(b[index]) : "<end>")"
        }
        return "none"
    }
}
