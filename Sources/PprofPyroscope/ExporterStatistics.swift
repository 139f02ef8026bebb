import Metrics
import Synchronization

/// What a `PyroscopeExporter` has done since it started. Also reported through swift-metrics as
/// the counters `pyroscope_exporter_*_total` (whatever metrics backend the service bootstrapped).
public struct PyroscopeExporterStatistics: Sendable, Equatable {
    /// Whether the exporter has started profiling (the first start prepares unwind tables and
    /// symbols, which takes a moment).
    public var started = false
    /// Collection cycles completed (the last, at shutdown, included).
    public var cycles = 0
    /// Profiles taken.
    public var profilesTaken = 0
    /// Requests the server accepted, and the profiles and body bytes they carried.
    public var uploads = 0
    public var profilesUploaded = 0
    public var bytesUploaded = 0
    /// Requests that failed: network errors, timeouts, and error statuses.
    public var failedRequests = 0
    /// Failed requests that were tried again.
    public var retries = 0
    /// Profiles lost: pushed out of a full queue, rejected by the server (4xx other than 408 and
    /// 429), or still waiting when the shutdown deadline passed. Every profile taken is either
    /// uploaded, dropped, or still queued.
    public var profilesDropped = 0
    /// Of the dropped profiles, those the server rejected.
    public var profilesRejected = 0
    /// The last failure, for humans.
    public var lastError: String?
    /// CPU time the exporter's collector thread spent taking and encoding profiles.
    public var collectionCPUNanos: Int64 = 0

    public init() {}
}

/// The statistics plus their swift-metrics counters, updated together.
final class ExporterCounters: Sendable {
    private let state = Mutex(PyroscopeExporterStatistics())
    private let uploads = Counter(label: "pyroscope_exporter_uploads_total")
    private let bytes = Counter(label: "pyroscope_exporter_upload_bytes_total")
    private let failures = Counter(label: "pyroscope_exporter_upload_failures_total")
    private let dropped = Counter(label: "pyroscope_exporter_dropped_profiles_total")

    var snapshot: PyroscopeExporterStatistics { state.withLock { $0 } }

    func markStarted() { state.withLock { $0.started = true } }

    func cycle(profiles: Int, cpuNanos: Int64) {
        state.withLock {
            $0.cycles += 1
            $0.profilesTaken += profiles
            $0.collectionCPUNanos += cpuNanos
        }
    }

    func uploaded(_ request: UploadRequest) {
        state.withLock {
            $0.uploads += 1
            $0.profilesUploaded += request.profileCount
            $0.bytesUploaded += request.body.count
        }
        uploads.increment()
        bytes.increment(by: request.body.count)
    }

    func failed(_ reason: String, retrying: Bool) {
        state.withLock {
            $0.failedRequests += 1
            if retrying { $0.retries += 1 }
            $0.lastError = reason
        }
        failures.increment()
    }

    func dropped(profiles: Int, rejected: Bool = false) {
        guard profiles > 0 else { return }
        state.withLock {
            $0.profilesDropped += profiles
            if rejected { $0.profilesRejected += profiles }
        }
        dropped.increment(by: profiles)
    }
}
