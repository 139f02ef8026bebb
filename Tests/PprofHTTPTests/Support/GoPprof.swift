import Foundation

/// Runs `go tool pprof` (skipped by callers when `go` is absent), on a thread of its own.
enum GoPprof {
    static let goPath: String? = {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/go"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    static var isAvailable: Bool { goPath != nil }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ arguments: [String]) async throws -> Output {
        let go = try require_(goPath)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-http-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Result {
                        let process = Process()
                        process.executableURL = URL(fileURLWithPath: go)
                        process.arguments = ["tool", "pprof"] + arguments
                        var environment = ProcessInfo.processInfo.environment
                        // pprof saves what it fetches under $PPROF_TMPDIR; keep it out of $HOME.
                        environment["PPROF_TMPDIR"] = scratch.path
                        if environment["HOME"] == nil { environment["HOME"] = scratch.path }
                        process.environment = environment
                        let out = Pipe()
                        let err = Pipe()
                        process.standardOutput = out
                        process.standardError = err
                        try process.run()
                        let errData = DataReader(err.fileHandleForReading)
                        let stdout = out.fileHandleForReading.readDataToEndOfFile()
                        process.waitUntilExit()
                        return Output(
                            status: process.terminationStatus,
                            stdout: String(decoding: stdout, as: UTF8.self),
                            stderr: String(decoding: errData.finish(), as: UTF8.self)
                        )
                    }
                )
            }.start()
        }
    }

    private static func require_<T>(_ value: T?) throws -> T {
        guard let value else { throw CocoaError(.executableNotLoadable) }
        return value
    }
}

/// Drains a pipe on another thread so a chatty child never blocks on a full pipe.
private final class DataReader: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread {
            self.data = handle.readDataToEndOfFile()
            self.done.signal()
        }.start()
    }

    func finish() -> Data {
        done.wait()
        return data
    }
}
