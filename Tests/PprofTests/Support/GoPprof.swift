import Foundation

/// Runs the real `go tool pprof` on a profile file, when Go is installed (CI installs it).
enum GoPprof {
    static let goURL: URL? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("go")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }()

    static var isAvailable: Bool { goURL != nil }

    /// `go tool pprof <arguments>`; returns the exit status and the combined output.
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        guard let goURL else { return (-1, "go not installed") }
        let process = Process()
        process.executableURL = goURL
        process.arguments = ["tool", "pprof"] + arguments
        var environment = ProcessInfo.processInfo.environment
        // No symbolization servers, no browser: read the file as it is.
        environment["PPROF_TOOLS"] = ""
        environment["PPROF_BINARY_PATH"] = "/nonexistent"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = try pipe.fileHandleForReading.readToEnd() ?? Data()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
