import Foundation
import Testing

/// Debian's headless Chromium (installed by `.ci/run`), driving the viewer page in tests.
enum Chromium {
    static let path: String? = {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            for name in ["chromium", "chromium-browser", "google-chrome"] {
                let candidate = "\(directory)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        return nil
    }()

    static var isAvailable: Bool { path != nil }
    /// Why a browser test was skipped.
    static let absent: Comment = "no chromium on PATH (apt-get install chromium; .ci/run installs it)"

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Loads `url` and returns the DOM once the page is idle (network fetches hold the page's
    /// virtual clock, so a CPU profile's seconds do not count against `budget`).
    static func dumpDOM(_ url: String, budget: Duration = .seconds(60)) async throws -> String {
        try await run(["--dump-dom", url], budget: budget)
    }

    /// Saves a PNG of `url` once the page is idle.
    static func screenshot(_ url: String, to file: URL, budget: Duration = .seconds(60)) async throws {
        _ = try await run(["--screenshot=\(file.path)", "--hide-scrollbars", url], budget: budget)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw Failure(description: "chromium wrote no screenshot to \(file.lastPathComponent)")
        }
    }

    /// What the page's `#test=` steps reported (the JSON in its `#pprof-test` element).
    static func testResults(_ dom: String) throws -> [[String: Any]] {
        guard let start = dom.range(of: "<pre id=\"pprof-test\" hidden=\"\">"),
            let end = dom.range(of: "</pre>", range: start.upperBound..<dom.endIndex)
        else { throw Failure(description: "the page reported no test results; its DOM: \(dom.prefix(2000))") }
        let text = String(dom[start.upperBound..<end.lowerBound])
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
        guard let results = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else {
            throw Failure(description: "the page's test results are not a JSON array: \(text.prefix(500))")
        }
        return results
    }

    private static func run(_ arguments: [String], budget: Duration) async throws -> String {
        let chromium = try #require(path)
        let profileDirectory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pprof-chromium-\(UUID().uuidString)"
        )
        defer { try? FileManager.default.removeItem(at: profileDirectory) }
        let flags = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--user-data-dir=\(profileDirectory.path)",
            "--window-size=1400,1000", "--virtual-time-budget=\(budget.components.seconds * 1000)",
        ]
        return try await ServerProcess.onOwnThread {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: chromium)
            process.arguments = flags + arguments
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            // A hung browser must not hang the suite.
            let watchdog = DispatchWorkItem { if process.isRunning { process.terminate() } }
            DispatchQueue.global().asyncAfter(deadline: .now() + 240, execute: watchdog)
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            watchdog.cancel()
            guard process.terminationReason == .exit, process.terminationStatus == 0 else {
                throw Failure(description: "chromium exited with \(process.terminationStatus)")
            }
            return String(decoding: data, as: UTF8.self)
        }
    }
}
