import Foundation

/// Runs `pprof-testhelper` (built next to the test bundle) as a child process.
struct ChildProcess {
    struct Result {
        var status: Int32
        /// True when the child was killed by a signal (a trap ends in SIGILL or SIGTRAP).
        var crashed: Bool
        var stdout: String
        var stderr: String
    }

    static var helperURL: URL {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = bundle.deletingLastPathComponent()
        // `swift test` runs `<build>/debug/<package>PackageTests.xctest`; the helper is its sibling.
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("pprof-testhelper").path),
            directory.path != "/"
        {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("pprof-testhelper")
    }

    static func run(
        _ scenario: String,
        _ arguments: [String] = [],
        environment: [String: String] = [:],
        executable: URL? = nil
    ) throws -> Result {
        let process = Process()
        process.executableURL = executable ?? helperURL
        process.arguments = [scenario] + arguments
        var env = ProcessInfo.processInfo.environment
        // Keep crash reports short and fast in children that are meant to trap.
        env["SWIFT_BACKTRACE"] = "enable=no"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try withDefaultSignalMask { try process.run() }
        // Read both pipes fully before waiting, so a chatty child cannot block on a full pipe.
        let stderrBox = DataBox()
        let done = DispatchSemaphore(value: 0)
        let errHandle = err.fileHandleForReading
        DispatchQueue.global().async {
            stderrBox.data = (try? errHandle.readToEnd()) ?? Data()
            done.signal()
        }
        let stdout = try out.fileHandleForReading.readToEnd() ?? Data()
        done.wait()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus,
            crashed: process.terminationReason == .uncaughtSignal,
            stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderrBox.data, as: UTF8.self)
        )
    }
}

private final class DataBox: @unchecked Sendable {
    var data = Data()
}
