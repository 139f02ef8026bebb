import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Sends the queue's batches one request at a time, in order. Network errors, timeouts, 408, 429
/// and 5xx are retried with exponential backoff (the batch stays at the head; newer batches wait
/// in the bounded queue); any other status is the server's final answer: the request's profiles
/// are dropped and the status is logged once with the server's message.
final class Uploader: Sendable {
    private let client: HTTPClient
    private let configuration: PyroscopeConfiguration
    private let counters: ExporterCounters
    private let logger: Logger
    private let baseURL: String
    private let headers: HTTPHeaders
    /// Statuses already logged, so a misconfigured service logs each once, not every cycle.
    private let reportedStatuses = Mutex<Set<UInt>>([])
    /// Whether the server is failing now: failures are logged when this starts and ends.
    private let failing = Atomic<Bool>(false)

    init(client: HTTPClient, configuration: PyroscopeConfiguration, counters: ExporterCounters, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.counters = counters
        self.logger = logger
        var base = configuration.serverURL
        while base.hasSuffix("/") { base.removeLast() }
        baseURL = base
        var headers = HTTPHeaders()
        headers.add(name: "User-Agent", value: "swift-pprof-pyroscope/1")
        switch configuration.authentication {
        case .none: break
        case .basic(let user, let password):
            headers.add(name: "Authorization", value: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
        case .bearer(let token):
            headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        if let tenant = configuration.tenantID { headers.add(name: "X-Scope-OrgID", value: tenant) }
        for (name, value) in configuration.headers.sorted(by: { $0.key < $1.key }) {
            headers.replaceOrAdd(name: name, value: value)
        }
        self.headers = headers
    }

    /// Delivers batches until the queue is closed and empty, or the task is cancelled (then what
    /// is left is counted as dropped).
    func run(_ queue: UploadQueue) async {
        while let batch = await queue.next() {
            var remaining = batch.requests[...]
            while let request = remaining.first {
                guard await deliver(request) else {
                    counters.dropped(profiles: remaining.reduce(0) { $0 + $1.profileCount })
                    counters.dropped(profiles: queue.discardAll())
                    return
                }
                remaining.removeFirst()
            }
        }
    }

    private enum Outcome {
        case accepted
        case rejected(status: UInt, message: String)
        case retryable(String)
    }

    /// Sends `request` until it is accepted or rejected; returns false if cancelled first.
    private func deliver(_ request: UploadRequest) async -> Bool {
        var backoff = configuration.retryBackoff.lowerBound
        while !Task.isCancelled {
            switch await send(request) {
            case .accepted:
                counters.uploaded(request)
                if failing.exchange(false, ordering: .relaxed) {
                    logger.info("Pyroscope uploads succeed again", metadata: ["server": "\(baseURL)"])
                }
                return true
            case .rejected(let status, let message):
                counters.failed("HTTP \(status): \(message)", retrying: false)
                counters.dropped(profiles: request.profileCount, rejected: true)
                let first = reportedStatuses.withLock { $0.insert(status).inserted }
                if first {
                    logger.error(
                        "Pyroscope rejected an upload; its profiles are dropped (logged once per status)",
                        metadata: ["server": "\(baseURL)", "status": "\(status)", "message": "\(message)"]
                    )
                }
                return true
            case .retryable(let reason):
                counters.failed(reason, retrying: true)
                if !failing.exchange(true, ordering: .relaxed) {
                    logger.warning(
                        "Pyroscope upload failed; retrying with backoff",
                        metadata: ["server": "\(baseURL)", "reason": "\(reason)"]
                    )
                }
                do {
                    try await Task.sleep(for: backoff)
                } catch {
                    return false
                }
                backoff = min(backoff * 2, configuration.retryBackoff.upperBound)
            }
        }
        return false
    }

    private func send(_ upload: UploadRequest) async -> Outcome {
        var request = HTTPClientRequest(url: baseURL + upload.target)
        request.method = .POST
        request.headers = headers
        request.headers.replaceOrAdd(name: "Content-Type", value: upload.contentType)
        request.body = .bytes(ByteBuffer(bytes: upload.body))
        do {
            let response = try await client.execute(
                request,
                timeout: .nanoseconds(configuration.requestTimeout.nanoseconds)
            )
            let body = try await response.body.collect(upTo: 64 * 1024)
            let status = response.status.code
            if (200..<300).contains(status) { return .accepted }
            let message = String(String(buffer: body).prefix(500)).trimmingSpaces
            if status == 408 || status == 429 || status >= 500 { return .retryable("HTTP \(status): \(message)") }
            return .rejected(status: status, message: message)
        } catch {
            return .retryable(String(describing: error))
        }
    }
}

extension Duration {
    /// The whole duration in nanoseconds (clamped).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds.multipliedReportingOverflow(by: 1_000_000_000).overflow
            ? .max : seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
