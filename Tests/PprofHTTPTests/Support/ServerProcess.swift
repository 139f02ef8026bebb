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

    static var helperURL: URL { productURL("pprof-testhelper") }

    /// An executable of the package, built next to the tests.
    static func productURL(_ name: String) -> URL {
        // `swift test` runs `<build>/debug/<package>PackageTests.xctest`; executables are its siblings.
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path),
            directory.path != "/"
        {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent(name)
    }

    /// Starts the helper (`http-serve arguments`), or `executable` with `arguments`, and waits (on
    /// a thread of its own) until it prints `port=N`.
    static func launch(_ arguments: [String] = [], executable: URL? = nil) async throws -> ServerProcess {
        try await onOwnThread { try ServerProcess(arguments, executable: executable) }
    }

    private init(_ arguments: [String], executable: URL?) throws {
        process.executableURL = executable ?? Self.helperURL
        process.arguments = executable == nil ? ["http-serve"] + arguments : arguments
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

    /// Closes the helper's input (it shuts its server down and exits), killing it if it has not
    /// gone after `patience`. Returns how long it took to exit, and whether it had to be killed.
    @discardableResult
    func stop(patience: TimeInterval = 30) async -> (seconds: Double, killed: Bool) {
        (try? await Self.onOwnThread { self.blockingStop(patience: patience) }) ?? (0, false)
    }

    /// `stop()` without waiting, for `defer`.
    func stopInBackground() {
        Thread { _ = self.blockingStop(patience: 30) }.start()
    }

    private func blockingStop(patience: TimeInterval) -> (seconds: Double, killed: Bool) {
        let start = Date()
        try? input.fileHandleForWriting.close()
        let deadline = start.addingTimeInterval(patience)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        let killed = process.isRunning
        if killed { process.terminate() }
        process.waitUntilExit()
        return (Date().timeIntervalSince(start), killed)
    }

    /// Runs blocking work on a thread of its own, never on the shared concurrency pool (which
    /// in-process servers of other tests need).
    static func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}
