import Foundation

/// `pprof-testhelper http-serve …` running as a child process: a server in a process that links
/// PprofHooks (and can have its concurrency pool blocked), stopped by closing its standard input.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private(set) var port = 0
    /// The `key=value` lines the helper printed before serving.
    private(set) var facts: [String: String] = [:]

    static var helperURL: URL {
        // `swift test` runs `<build>/debug/<package>PackageTests.xctest`; the helper is its sibling.
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("pprof-testhelper").path),
            directory.path != "/"
        {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("pprof-testhelper")
    }

    init(_ arguments: [String] = []) throws {
        process.executableURL = Self.helperURL
        process.arguments = ["http-serve"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = environment
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        // Read `key=value` lines until the port (the helper prints it last), at most 30 s.
        let deadline = Date().addingTimeInterval(30)
        var pending = Data()
        let handle = output.fileHandleForReading
        while port == 0 && Date() < deadline && process.isRunning {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            pending.append(chunk)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                pending.removeSubrange(pending.startIndex...newline)
                let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
                if parts.count == 2 { facts[parts[0]] = parts[1] }
                if parts.first == "port", let value = Int(parts[1]) { port = value }
            }
        }
        if port == 0 {
            process.terminate()
            throw RawHTTPClient.Failure(description: "helper did not report a port (facts: \(facts))")
        }
    }

    /// Closes the helper's input (it exits), killing it if it has not gone after 10 s.
    func stop() {
        try? input.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}
