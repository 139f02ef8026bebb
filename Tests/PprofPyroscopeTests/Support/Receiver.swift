import AsyncHTTPClient
import Foundation
import NIOCore
import Pprof

/// `Receiver/pyroscope_receiver.py` as a child process: Pyroscope's push and ingest endpoints on
/// loopback, decoding what arrives with protoc-generated classes and the standard multipart parser.
final class PyroscopeReceiver: @unchecked Sendable {
    private var process: Process?
    private(set) var port = 0

    static var scriptPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Receiver/pyroscope_receiver.py").path
    }

    /// Whether python3 with grpcio-tools and protobuf is here (`.ci/run` installs them).
    static let isAvailable: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import grpc_tools.protoc, google.protobuf"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    var url: String { "http://127.0.0.1:\(port)" }

    /// Starts on a free port (or `port`, to come back where it was).
    func start(port requested: Int = 0) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.scriptPath, String(requested)]
        let output = Pipe()
        process.standardOutput = output
        try launchWithDefaultSignalMask(process)
        var line = Data()
        let handle = output.fileHandleForReading
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("port "), let port = Int(text.dropFirst(5).prefix { $0.isNumber }) else {
            process.terminate()
            throw PprofError.unavailable("receiver did not start: \(text)")
        }
        self.port = port
        self.process = process
    }

    func stop() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    deinit { stop() }

    /// How the receiver answers from now on.
    func setMode(_ mode: String, status: Int = 500, delay: Double = 0, message: String = "test failure") async throws {
        let body = try JSONSerialization.data(withJSONObject: [
            "mode": mode, "status": status, "delay": delay, "message": message,
        ])
        var request = HTTPClientRequest(url: url + "/mode")
        request.method = .POST
        request.body = .bytes(ByteBuffer(bytes: body))
        _ = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
    }

    struct Request {
        var path: String
        var query: [String: String]
        var headers: [String: String]
        var time: Double
        /// Push: each series' labels and its profiles.
        var series: [(labels: [String: String], labelOrder: [String], profiles: [[UInt8]])]
        /// Ingest: the profile and the sample-type table.
        var profile: [UInt8]?
        var sampleTypeConfig: [String: Any]?
    }

    func received() async throws -> [Request] {
        let response = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: url + "/received"),
            timeout: .seconds(30)
        )
        let body = try await response.body.collect(upTo: 512 * 1024 * 1024)
        let records = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [[String: Any]] ?? []
        return records.map { record in
            let series = (record["series"] as? [[String: Any]] ?? []).map { series in
                let pairs = (series["labels"] as? [[String]] ?? []).map { ($0[0], $0[1]) }
                let profiles = (series["samples"] as? [[String: Any]] ?? []).map { sample in
                    [UInt8](Data(base64Encoded: sample["profile"] as? String ?? "") ?? Data())
                }
                return (
                    labels: Dictionary(pairs, uniquingKeysWith: { first, _ in first }),
                    labelOrder: pairs.map(\.0),
                    profiles: profiles
                )
            }
            return Request(
                path: record["path"] as? String ?? "",
                query: record["query"] as? [String: String] ?? [:],
                headers: record["headers"] as? [String: String] ?? [:],
                time: record["time"] as? Double ?? 0,
                series: series,
                profile: (record["profile"] as? String).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) },
                sampleTypeConfig: record["sample_type_config"] as? [String: Any]
            )
        }
    }
}

/// Runs `pprof-testhelper` (built next to the tests) and returns its last stdout line as JSON.
enum TestHelper {
    static var url: URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("pprof-testhelper").path),
            directory.path != "/"
        {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("pprof-testhelper")
    }

    /// Runs the helper on a thread of its own (never blocking the concurrency pool).
    static func run(_ arguments: [String]) async throws -> [String: Any] {
        let output: (status: Int32, stdout: String, stderr: String) = try await withCheckedThrowingContinuation {
            continuation in
            Thread {
                continuation.resume(
                    with: Result {
                        let process = Process()
                        process.executableURL = url
                        process.arguments = arguments
                        var environment = ProcessInfo.processInfo.environment
                        environment["SWIFT_BACKTRACE"] = "enable=no"
                        process.environment = environment
                        let out = Pipe()
                        let err = Pipe()
                        process.standardOutput = out
                        process.standardError = err
                        try launchWithDefaultSignalMask(process)
                        let errors = ErrorBox()
                        let reader = Thread { errors.data = (try? err.fileHandleForReading.readToEnd()) ?? Data() }
                        reader.start()
                        let data = try out.fileHandleForReading.readToEnd() ?? Data()
                        process.waitUntilExit()
                        while !reader.isFinished { usleep(1000) }
                        return (
                            process.terminationStatus, String(decoding: data, as: UTF8.self),
                            String(decoding: errors.data, as: UTF8.self)
                        )
                    }
                )
            }.start()
        }
        guard output.status == 0 else {
            throw PprofError.unavailable("pprof-testhelper \(arguments.first ?? "") failed: \(output.stderr)")
        }
        let line = output.stdout.split(separator: "\n").last.map(String.init) ?? "{}"
        return try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
    }

    private final class ErrorBox: @unchecked Sendable { var data = Data() }
}

/// Starts `process` from a thread with an empty signal mask. Swift Testing runs tests on
/// Concurrency threads, where libdispatch blocks most signals, and a child inherits the mask: it
/// would ignore SIGTERM, and a child that profiles itself would never see its profiling signal.
func launchWithDefaultSignalMask(_ process: Process) throws {
    nonisolated(unsafe) var failure: (any Error)?
    let done = DispatchSemaphore(value: 0)
    Thread {
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
        do { try process.run() } catch { failure = error }
        done.signal()
    }.start()
    done.wait()
    if let failure { throw failure }
}

/// `go tool pprof` on a file, or nil where `go` is missing.
enum GoTool {
    static let isAvailable: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["go", "version"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    static func pprof(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-push-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["go", "tool", "pprof"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["PPROF_TMPDIR"] = scratch.path
        if environment["HOME"] == nil { environment["HOME"] = scratch.path }
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = try out.fileHandleForReading.readToEnd() ?? Data()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

extension ProfileData {
    /// Sum of a sample type's values over the samples whose stack names `function`.
    func total(of type: String, where function: String) -> Int64 {
        guard let index = sampleTypeIndex(named: type) else { return 0 }
        return resolvedSamples().reduce(0) { sum, sample in
            sample.functionNames.contains { $0.contains(function) } ? sum + sample.values[index] : sum
        }
    }
}

/// Collects log messages, to check what was logged and how often.
final class LogCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(level: String, message: String)] = []

    func append(level: String, message: String) {
        lock.lock()
        entries.append((level, message))
        lock.unlock()
    }

    var messages: [(level: String, message: String)] {
        lock.lock()
        defer { lock.unlock() }
        return entries
    }
}
