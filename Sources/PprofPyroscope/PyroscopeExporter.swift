import AsyncHTTPClient
import Logging
@_spi(Integration) import Pprof
import ServiceLifecycle
import Synchronization

/// Continuous profiling: every `uploadInterval` the exporter takes the CPU profile of the interval
/// and the delta heap, allocs, block and mutex profiles and a goroutine snapshot, and pushes them
/// to Grafana Pyroscope (or Alloy, or Grafana Cloud) — what pyroscope-go does for Go services.
///
/// Run it as a swift-service-lifecycle `Service` beside the application:
///
/// ```swift
/// if let configuration = try PyroscopeConfiguration(environment: ProcessInfo.processInfo.environment) {
///     services.append(try PyroscopeExporter(configuration: configuration, logger: logger))
/// }
/// let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// It never blocks the service: profiles are taken on a thread of its own, uploads wait in a
/// bounded queue (the oldest dropped and counted when the server is down for long), failed requests
/// are retried with backoff (network errors, timeouts, 408, 429, 5xx) or dropped and logged once
/// (other statuses). On graceful shutdown it takes the last profiles and uploads what is queued
/// within `shutdownDeadline`. While it runs it owns the process's CPU profile, so
/// `/debug/pprof/profile` answers that one is in use.
public final class PyroscopeExporter: Service, Sendable {
    public let configuration: PyroscopeConfiguration
    private let logger: Logger
    private let counters = ExporterCounters()
    private let running = Atomic<Bool>(false)

    /// - Throws: `PprofError.invalidArgument` if the configuration is invalid.
    public init(configuration: PyroscopeConfiguration, logger: Logger = Logger(label: "pprof.pyroscope")) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
    }

    /// What the exporter has done so far.
    public var statistics: PyroscopeExporterStatistics { counters.snapshot }

    /// Profiles and uploads until graceful shutdown or cancellation, then uploads the last profiles
    /// within the shutdown deadline.
    ///
    /// - Throws: `PprofError.invalidArgument` if this exporter is already running.
    public func run() async throws {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else {
            throw PprofError.invalidArgument("this PyroscopeExporter is already running")
        }
        defer { running.store(false, ordering: .releasing) }

        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: HTTPClient.Configuration(redirectConfiguration: .disallow)
        )
        let queue = UploadQueue(capacity: configuration.queueCapacity, counters: counters)
        let uploader = Uploader(client: client, configuration: configuration, counters: counters, logger: logger)
        let collector = ProfileCollector(configuration: configuration, logger: logger)
        let encoding = UploadEncoding(configuration: configuration)
        let uploads = Task { await uploader.run(queue) }

        await collector.start()
        counters.markStarted()
        logger.info(
            "Pyroscope exporter started",
            metadata: [
                "server": "\(configuration.serverURL)", "api": "\(configuration.api)",
                "interval": "\(configuration.uploadInterval)",
            ]
        )
        do {
            try await cancelWhenGracefulShutdown {
                let clock = ContinuousClock()
                var next = clock.now + self.configuration.uploadInterval
                while true {
                    try await Task.sleep(until: next, clock: clock)
                    next += self.configuration.uploadInterval
                    if next < clock.now { next = clock.now + self.configuration.uploadInterval }  // fell behind
                    await self.cycle(collector: collector, encoding: encoding, queue: queue, final: false)
                }
            }
        } catch {
            // Cancelled, or graceful shutdown: the last cycle follows.
        }
        await cycle(collector: collector, encoding: encoding, queue: queue, final: true)
        queue.close()

        // The deadline runs in a task of its own, so it holds when run() itself was cancelled.
        let deadline = configuration.shutdownDeadline
        let timer = Task {
            try? await Task.sleep(for: deadline)
            uploads.cancel()
        }
        await uploads.value
        timer.cancel()
        try? await client.shutdown()
        let statistics = counters.snapshot
        logger.info(
            "Pyroscope exporter stopped",
            metadata: [
                "uploads": "\(statistics.uploads)", "profilesDropped": "\(statistics.profilesDropped)",
                "bytes": "\(statistics.bytesUploaded)",
            ]
        )
    }

    private func cycle(collector: ProfileCollector, encoding: UploadEncoding, queue: UploadQueue, final: Bool) async {
        let (profiles, cpuNanos) = await collector.collect(final: final)
        counters.cycle(profiles: profiles.count, cpuNanos: cpuNanos)
        let requests = ProfilerWork.run { encoding.requests(for: profiles, api: configuration.api) }
        queue.push(UploadBatch(requests: requests))
    }
}
