import Foundation
import Glibc
import Pprof
import Synchronization

/// `pprof-bench soak`: the Hummingbird service of Examples/Soak under `wrk` load on loopback, run
/// bare (`pprof-soak-plain`) and with everything on (`pprof-soak-server`: hooks, heap sampling,
/// block and mutex profiles, labels, the debug server), side by side in one run: the two processes
/// live through the whole run and take the load in turns, in segments ordered ABBA so that drift
/// of the machine falls on both. While the profiled service has the load, its `/debug/pprof` is
/// scraped as Alloy would: CPU in back-to-back 10 s windows, the other kinds every 10 s, each
/// response decoded. Reports requests/s, latency percentiles, CPU per request, RSS over time,
/// errors and `EINTR` that surfaced to the service.
///
/// Environment: `SOAK_SECONDS` (load per service, default 600), `SOAK_SEGMENT` (seconds, a
/// multiple of 10, default 30), `SOAK_CONNECTIONS` (default 32), `SOAK_OUTPUT` (a directory for
/// the raw figures and a plot). The last line, `soak-json {…}`, is the summary for programs.
enum SoakBenchmarks {
    struct Settings {
        var seconds: Int
        var segment: Int
        var connections: Int
        var output: URL?

        static func fromEnvironment() throws -> Settings {
            let environment = ProcessInfo.processInfo.environment
            func number(_ name: String, _ fallback: Int, _ valid: (Int) -> Bool) throws -> Int {
                guard let text = environment[name] else { return fallback }
                guard let value = Int(text), valid(value) else {
                    throw PprofError.invalidArgument("\(name)=\(text) is out of range")
                }
                return value
            }
            let segment = try number("SOAK_SEGMENT", 30) { $0 >= 10 && $0 % 10 == 0 }
            let seconds = try number("SOAK_SECONDS", 600) { $0 >= segment }
            let connections = try number("SOAK_CONNECTIONS", 32) { (1...1_000).contains($0) }
            let output = environment["SOAK_OUTPUT"].map { URL(fileURLWithPath: $0, isDirectory: true) }
            return Settings(seconds: seconds, segment: segment, connections: connections, output: output)
        }
    }

    static func run() throws {
        let settings = try Settings.fromEnvironment()
        guard let wrk = findExecutable("wrk") else {
            print("soak: skipped, wrk is not installed (apt-get install -y wrk)")
            return
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-soak-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let script = work.appendingPathComponent("mix.lua")
        try WrkScript.text.write(to: script, atomically: true, encoding: .utf8)

        let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent()
        let plain = try ServiceProcess(
            name: "plain",
            executable: binaries.appendingPathComponent("pprof-soak-plain"),
            work: work
        )
        defer { plain.kill() }
        let profiled = try ServiceProcess(
            name: "profiled",
            executable: binaries.appendingPathComponent("pprof-soak-server"),
            work: work
        )
        defer { profiled.kill() }
        guard let debugPort = profiled.debugPort else { throw PprofError.invalidArgument("no debug port") }

        let pairs = max(1, settings.seconds / settings.segment)
        print(
            "soak: \(pairs * settings.segment) s of load per service in \(settings.segment) s segments (ABBA), wrk -t1 -c\(settings.connections), mixed routes; the profiled service scraped as Alloy would"
        )
        let started = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
        let memory = MemorySampler(services: [plain, profiled], clock: elapsed)
        memory.start()

        let scrapes = ScrapeTally()
        var segments: [Segment] = []
        for index in 0..<(2 * pairs) {
            // ABBA: plain, profiled, profiled, plain, plain, profiled, …
            let service = (index + 1) / 2 % 2 == 0 ? plain : profiled
            for process in [plain, profiled] where !process.isRunning {
                throw PprofError.invalidArgument("the \(process.name) service exited: \(process.exitDescription)")
            }
            let windows = settings.segment / 10
            let scraping = DispatchGroup()
            if service === profiled {
                Scraper.run(port: debugPort, windows: windows, tally: scrapes, group: scraping)
            }
            let start = elapsed()
            let cpuBefore = ProcessStatus.cpuSeconds(of: service.pid)
            let result = try WrkRun.run(
                wrk,
                port: service.port,
                seconds: settings.segment,
                connections: settings.connections,
                script: script.path
            )
            let cpu = ProcessStatus.cpuSeconds(of: service.pid) - cpuBefore
            scraping.wait()
            segments.append(Segment(service: service.name, start: start, wrk: result, cpuSeconds: cpu))
            print(
                String(
                    format: "  %3.0f s %-8@ %7.0f req/s  p50 %6.2f ms  p99 %6.2f ms  p999 %6.2f ms  errors %d",
                    start,
                    service.name,
                    result.requestsPerSecond,
                    result.p50 / 1000,
                    result.p99 / 1000,
                    result.p999 / 1000,
                    result.errors
                )
            )
        }
        memory.stop()

        let report = SoakReport(
            settings: settings,
            pairs: pairs,
            segments: segments,
            memory: memory.samples(),
            plainStats: try plain.stats(),
            profiledStats: try profiled.stats(),
            scrapes: scrapes.summary(),
            plainExit: plain.stop(),
            profiledExit: profiled.stop()
        )
        print(report.text)
        if let output = settings.output { try report.write(to: output) }
        print("soak-json " + String(decoding: try JSONEncoder().encode(report.summary), as: UTF8.self))
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
    }
}

/// One of the two services, started on free ports, its output in files (a full pipe would stall it).
final class ServiceProcess: @unchecked Sendable {
    let name: String
    let port: Int
    let debugPort: Int?
    private let process = Process()
    private let log: URL

    init(name: String, executable: URL, work: URL) throws {
        self.name = name
        log = work.appendingPathComponent("\(name).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.executableURL = executable
        process.arguments = ["0", "0"]
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        // A debug build on a busy machine can take a while to come up.
        let deadline = Date().addingTimeInterval(60)
        var ports: [String: Int] = [:]
        while Date() < deadline, process.isRunning, ports["listening on"] == nil {
            usleep(50_000)
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                for prefix in ["listening on", "debug server on"] where line.hasPrefix(prefix + " ") {
                    ports[prefix] = Int(line.dropFirst(prefix.count + 1))
                }
            }
        }
        guard let port = ports["listening on"] else {
            process.terminate()
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw PprofError.invalidArgument("\(executable.lastPathComponent) did not start: \(text)")
        }
        self.port = port
        debugPort = ports["debug server on"]
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    var exitDescription: String {
        if process.isRunning { return "running" }
        let how = process.terminationReason == .uncaughtSignal ? "signal" : "status"
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return "\(how) \(process.terminationStatus); output: \(output.suffix(2_000))"
    }

    /// What the service counted (`/stats`).
    func stats() throws -> [String: Int] {
        let response = try KeepAliveConnection(port: port).fetch("/stats")
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Int]
        guard response.status == 200, let object else { throw PprofError.invalidArgument("\(name): bad /stats") }
        return object
    }

    /// SIGTERM, then the exit status of the graceful shutdown ("exit 0", "signal 11", "hung").
    func stop() -> String {
        process.terminate()
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning, Date() < deadline { usleep(50_000) }
        if process.isRunning {
            kill()
            return "hung at shutdown"
        }
        return process.terminationReason == .uncaughtSignal
            ? "signal \(process.terminationStatus)" : "exit \(process.terminationStatus)"
    }

    func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }
}

/// Requests spread over the service's routes; `done` prints the figures on one line.
enum WrkScript {
    static let text = """
        local counter = 0
        request = function()
          counter = counter + 1
          local pick = counter % 10
          local path
          if pick < 3 then path = "/orders?items=" .. (10 + counter % 40)
          elseif pick < 5 then path = "/inventory/" .. (counter % 500)
          elseif pick < 8 then path = "/prices/" .. (counter % 4096)
          else path = "/query/" .. counter end
          return wrk.format("GET", path)
        end
        done = function(summary, latency, requests)
          local e = summary.errors
          io.write(string.format("SOAK %d %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
            latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
            e.status, e.connect, e.read, e.write, e.timeout))
        end
        """
}

struct WrkRun: Codable {
    var requests: Int
    var seconds: Double
    /// Latency percentiles in µs.
    var p50: Double
    var p99: Double
    var p999: Double
    /// Non-2xx/3xx answers, connect, read and write errors and timeouts.
    var errors: Int

    var requestsPerSecond: Double { Double(requests) / seconds }

    static func run(_ wrk: String, port: Int, seconds: Int, connections: Int, script: String) throws -> WrkRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: wrk)
        process.arguments = [
            "-t1", "-c\(connections)", "-d\(seconds)s", "--timeout", "5s", "-s", script, "http://127.0.0.1:\(port)",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("SOAK ") }) else {
            throw PprofError.invalidArgument("wrk gave no figures: \(text)")
        }
        let numbers = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard numbers.count == 10 else { throw PprofError.invalidArgument("wrk: \(line)") }
        return WrkRun(
            requests: Int(numbers[0]),
            seconds: numbers[1] / 1e6,
            p50: numbers[2],
            p99: numbers[3],
            p999: numbers[4],
            errors: Int(numbers[5...].reduce(0, +))
        )
    }
}

struct Segment {
    var service: String
    var start: Double
    var wrk: WrkRun
    var cpuSeconds: Double
}

/// Resident memory of both services once a second.
final class MemorySampler: @unchecked Sendable {
    struct Sample {
        var time: Double
        var bytes: [Int]
    }

    private let services: [ServiceProcess]
    private let clock: () -> Double
    private let collected = Mutex<[Sample]>([])
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(services: [ServiceProcess], clock: @escaping () -> Double) {
        self.services = services
        self.clock = clock
    }

    func start() {
        Thread.detachNewThread { [self] in
            while !stopping.load(ordering: .relaxed) {
                let sample = Sample(time: clock(), bytes: services.map { ProcessStatus.bytes("VmRSS", of: $0.pid) })
                collected.withLock { $0.append(sample) }
                usleep(1_000_000)
            }
            finished.signal()
        }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        finished.wait()
    }

    func samples() -> [Sample] { collected.withLock { $0 } }
}
