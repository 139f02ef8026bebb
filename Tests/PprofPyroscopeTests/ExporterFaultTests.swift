import Foundation
import Logging
import Pprof
import PprofPyroscope
import ServiceLifecycle
import Synchronization
import Testing

/// The exporter against a receiver that is down, failing, rejecting, hanging or slow: nothing is
/// lost but what it counts as dropped, it retries what is worth retrying and nothing else, and it
/// shuts down within its deadline.
@Suite(.serialized, .enabled(if: PyroscopeReceiver.isAvailable, "needs python3 with grpcio-tools and protobuf"))
struct ExporterFaultTests {
    private func configuration(_ receiver: PyroscopeReceiver) -> PyroscopeConfiguration {
        var configuration = PyroscopeConfiguration(
            serverURL: receiver.url,
            applicationName: "faults",
            profiles: [.goroutine],
            uploadInterval: .seconds(1),
            requestTimeout: .seconds(2),
            queueCapacity: 8,
            retryBackoff: .milliseconds(200) ... .seconds(1)
        )
        configuration.shutdownDeadline = .seconds(10)
        return configuration
    }

    private func receivedProfiles(_ receiver: PyroscopeReceiver) async throws -> Int {
        try await receiver.received().reduce(0) { $0 + $1.series.reduce(0) { $0 + $1.profiles.count } }
    }

    /// Down for 30 s, then back on the same port: the queued cycles arrive; those pushed out of the
    /// full queue are counted; received + dropped = taken.
    @Test func receiverDownThirtySecondsThenBack() async throws {
        let receiver = PyroscopeReceiver()
        try receiver.start()
        defer { receiver.stop() }
        let exporter = try PyroscopeExporter(configuration: configuration(receiver))
        let port = receiver.port
        let firstLife = Mutex(0)
        let statistics = try await runExporter(exporter, for: 38) { _ in
            Thread.sleep(forTimeInterval: 3.5)
            firstLife.withLock { $0 = (try? blockingReceived(receiver)) ?? -1 }
            receiver.stop()
            Thread.sleep(forTimeInterval: 30)
            try? receiver.start(port: port)
        }
        let secondLife = try await receivedProfiles(receiver)
        let first = firstLife.withLock { $0 }
        print(
            "outage: taken \(statistics.profilesTaken), received \(first)+\(secondLife), dropped \(statistics.profilesDropped), failed requests \(statistics.failedRequests)"
        )
        #expect(first >= 1)
        #expect(secondLife >= 8, "the queued cycles arrive after the outage")
        #expect(statistics.profilesDropped > 0, "30 cycles do not fit a queue of 8")
        #expect(first + secondLife + statistics.profilesDropped == statistics.profilesTaken)
        #expect(statistics.profilesUploaded == first + secondLife)
        #expect(statistics.failedRequests > 0 && statistics.profilesRejected == 0)
    }

    /// 500, 503 and 429 are retried until the server takes the upload: nothing dropped.
    @Test func serverErrorsAndRateLimitsAreRetried() async throws {
        let receiver = PyroscopeReceiver()
        try receiver.start()
        defer { receiver.stop() }
        let exporter = try PyroscopeExporter(configuration: configuration(receiver))
        let statistics = try await runExporter(exporter, for: 10) { _ in
            for status in [500, 503, 429] {
                blockingSetMode(receiver, "status", status: status)
                Thread.sleep(forTimeInterval: 2)
                blockingSetMode(receiver, "ok")
                Thread.sleep(forTimeInterval: 1)
            }
        }
        let received = try await receivedProfiles(receiver)
        #expect(statistics.failedRequests >= 3 && statistics.retries == statistics.failedRequests)
        #expect(statistics.profilesDropped == 0)
        #expect(received == statistics.profilesTaken)
        #expect(statistics.lastError?.contains("HTTP") == true)
    }

    /// 401 is final: not retried, the profiles are dropped as rejected, logged once with the
    /// server's message however often it happens.
    @Test func unauthorizedIsLoggedOnceAndNotRetried() async throws {
        let receiver = PyroscopeReceiver()
        try receiver.start()
        defer { receiver.stop() }
        try await receiver.setMode("status", status: 401, message: "invalid token for tenant")
        let capture = LogCapture()
        let logger = Logger(label: "test") { _ in CapturingLogHandler(capture: capture) }
        let exporter = try PyroscopeExporter(configuration: configuration(receiver), logger: logger)
        let statistics = try await runExporter(exporter, for: 4.5)
        #expect(statistics.retries == 0)
        #expect(statistics.profilesRejected == statistics.profilesTaken && statistics.profilesTaken >= 4)
        #expect(statistics.profilesUploaded == 0)
        let rejections = capture.messages.filter { $0.level == "error" }
        #expect(rejections.count == 1, "\(rejections)")
        #expect(rejections.first?.message.contains("invalid token for tenant") == true)
    }

    /// A server that accepts and never answers: requests time out and are retried; shutdown still
    /// ends within its deadline and counts what it could not send.
    @Test func hangingServerDoesNotHoldUpShutdown() async throws {
        let receiver = PyroscopeReceiver()
        try receiver.start()
        defer { receiver.stop() }
        try await receiver.setMode("hang")
        var configuration = configuration(receiver)
        configuration.requestTimeout = .seconds(1)
        configuration.shutdownDeadline = .seconds(2)
        let exporter = try PyroscopeExporter(configuration: configuration)
        let group = ServiceGroup(services: [exporter], logger: Logger(label: "test"))
        async let running: Void = group.run()
        try await Task.sleep(for: .seconds(4))
        let clock = ContinuousClock()
        let start = clock.now
        await group.triggerGracefulShutdown()
        try await running
        let shutdown = clock.now - start
        let statistics = exporter.statistics
        print(
            "hang: shutdown took \(shutdown), failed \(statistics.failedRequests), dropped \(statistics.profilesDropped)"
        )
        #expect(shutdown < .seconds(4))
        #expect(statistics.failedRequests >= 2)
        #expect(statistics.profilesUploaded == 0)
        #expect(statistics.profilesDropped == statistics.profilesTaken)
    }

    /// A receiver that takes 2.5 s per request while cycles come every second: collection keeps its
    /// pace, and every profile is uploaded or counted as dropped.
    @Test func slowServerDoesNotSlowCollection() async throws {
        let receiver = PyroscopeReceiver()
        try receiver.start()
        defer { receiver.stop() }
        try await receiver.setMode("slow", delay: 2.5)
        var configuration = configuration(receiver)
        configuration.requestTimeout = .seconds(5)
        configuration.queueCapacity = 2
        let exporter = try PyroscopeExporter(configuration: configuration)
        let statistics = try await runExporter(exporter, for: 8.5)
        let received = try await receivedProfiles(receiver)
        print("slow: cycles \(statistics.cycles), received \(received), dropped \(statistics.profilesDropped)")
        #expect(statistics.cycles >= 8)
        #expect(received >= 3)
        #expect(statistics.profilesDropped > 0)
        #expect(received + statistics.profilesDropped == statistics.profilesTaken)
    }

    @Test func refusesToRunTwiceAtOnce() async throws {
        let receiver = PyroscopeReceiver()
        try receiver.start()
        defer { receiver.stop() }
        let exporter = try PyroscopeExporter(configuration: configuration(receiver))
        let group = ServiceGroup(services: [exporter], logger: Logger(label: "test"))
        async let running: Void = group.run()
        try await Task.sleep(for: .milliseconds(500))
        await #expect(throws: PprofError.self) { try await exporter.run() }
        await group.triggerGracefulShutdown()
        try await running
    }
}

/// The receiver's calls from a plain thread (the fault scripts run on one).
private func blockingSetMode(_ receiver: PyroscopeReceiver, _ mode: String, status: Int = 500) {
    let done = DispatchSemaphore(value: 0)
    Task {
        try? await receiver.setMode(mode, status: status)
        done.signal()
    }
    done.wait()
}

private func blockingReceived(_ receiver: PyroscopeReceiver) throws -> Int {
    let result = Mutex<Result<Int, any Error>>(.success(0))
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            let count = try await receiver.received().reduce(0) { $0 + $1.series.reduce(0) { $0 + $1.profiles.count } }
            result.withLock { $0 = .success(count) }
        } catch {
            result.withLock { $0 = .failure(error) }
        }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0 }.get()
}

struct CapturingLogHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(
        level: Logger.Level,
        message: Logger.Message,
        metadata: Logger.Metadata?,
        source: String,
        file: String,
        function: String,
        line: UInt
    ) {
        let details = (metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        capture.append(level: "\(level)", message: "\(message) \(details)")
    }
}
