import Pprof

/// Where and what a `PyroscopeExporter` pushes.
///
/// Build one in code, or from the environment variables the Pyroscope SDKs read
/// (`PyroscopeConfiguration(environment:)`), so that a deployment switches continuous profiling on
/// without a code change.
public struct PyroscopeConfiguration: Sendable {
    /// Which of Pyroscope's ingestion APIs to use.
    public enum API: String, Sendable, CaseIterable {
        /// `POST /push.v1.PusherService/Push` (Connect unary, `application/proto`): one request per
        /// cycle carrying every profile. Pyroscope 1.x/2.x and Alloy's `pyroscope.receive_http`.
        case push
        /// The legacy `POST /ingest` (multipart pprof): one request per profile, for older servers.
        case ingest
    }

    public enum Authentication: Sendable, Equatable {
        case none
        /// HTTP basic auth (Grafana Cloud: the stack's user id and an access token).
        case basic(user: String, password: String)
        /// `Authorization: Bearer <token>`.
        case bearer(token: String)
    }

    /// The profiles taken each cycle.
    public struct Profiles: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        /// The CPU profile of the cycle (a window of one continuous CPU profile).
        public static let cpu = Profiles(rawValue: 1 << 0)
        /// In-use heap (`inuse_objects`, `inuse_space`) now. Needs `PprofHooks`.
        public static let heap = Profiles(rawValue: 1 << 1)
        /// Allocations since the previous cycle (`alloc_objects`, `alloc_space`). Needs `PprofHooks`.
        public static let allocs = Profiles(rawValue: 1 << 2)
        /// Blocking since the previous cycle (set `BlockProfile.rate`). Needs `PprofHooks`.
        public static let block = Profiles(rawValue: 1 << 3)
        /// Lock contention since the previous cycle (set `MutexProfile.fraction`). Needs `PprofHooks`.
        public static let mutex = Profiles(rawValue: 1 << 4)
        /// Every thread's stack at the end of the cycle (a snapshot, not a delta).
        public static let goroutine = Profiles(rawValue: 1 << 5)

        public static let all: Profiles = [.cpu, .heap, .allocs, .block, .mutex, .goroutine]

        static let names: [(String, Profiles)] = [
            ("cpu", .cpu), ("heap", .heap), ("allocs", .allocs), ("block", .block), ("mutex", .mutex),
            ("goroutine", .goroutine),
        ]
    }

    /// The server's base URL, e.g. `http://pyroscope:4040` or Grafana Cloud's profiles URL.
    public var serverURL: String
    /// The service's name (`service_name`); may carry labels: `checkout{env=prod}`.
    public var applicationName: String
    /// Labels added to every profile's series.
    public var tags: [String: String]
    public var authentication: Authentication
    /// Sent as `X-Scope-OrgID` (multi-tenant Pyroscope).
    public var tenantID: String?
    /// Sent with every request.
    public var headers: [String: String]
    public var api: API
    public var profiles: Profiles
    /// How often profiles are taken and uploaded.
    public var uploadInterval: Duration
    /// How long one request may take before it counts as failed (and is retried).
    public var requestTimeout: Duration
    /// The CPU profile's sampling rate (Hz).
    public var cpuRate: Int
    /// How many cycles' uploads wait at most while the server is slow or down; beyond it the
    /// oldest are dropped (and counted).
    public var queueCapacity: Int
    /// Waits between retries of a failed upload: from the first, doubling up to the second.
    public var retryBackoff: ClosedRange<Duration>
    /// How long a graceful shutdown waits for the last uploads.
    public var shutdownDeadline: Duration

    public init(
        serverURL: String,
        applicationName: String,
        tags: [String: String] = [:],
        authentication: Authentication = .none,
        tenantID: String? = nil,
        headers: [String: String] = [:],
        api: API = .push,
        profiles: Profiles = .all,
        uploadInterval: Duration = .seconds(10),
        requestTimeout: Duration = .seconds(10),
        cpuRate: Int = 100,
        queueCapacity: Int = 12,
        retryBackoff: ClosedRange<Duration> = .milliseconds(500) ... .seconds(15),
        shutdownDeadline: Duration = .seconds(5)
    ) {
        self.serverURL = serverURL
        self.applicationName = applicationName
        self.tags = tags
        self.authentication = authentication
        self.tenantID = tenantID
        self.headers = headers
        self.api = api
        self.profiles = profiles
        self.uploadInterval = uploadInterval
        self.requestTimeout = requestTimeout
        self.cpuRate = cpuRate
        self.queueCapacity = queueCapacity
        self.retryBackoff = retryBackoff
        self.shutdownDeadline = shutdownDeadline
    }

    /// The configuration the environment gives, or `nil` when `PYROSCOPE_SERVER_ADDRESS` is unset
    /// or empty (continuous profiling off).
    ///
    /// | variable | meaning |
    /// | --- | --- |
    /// | `PYROSCOPE_SERVER_ADDRESS` | server URL (required) |
    /// | `PYROSCOPE_APPLICATION_NAME` | service name, may carry `{k=v,…}`; default `defaultApplicationName` |
    /// | `PYROSCOPE_BASIC_AUTH_USER`, `PYROSCOPE_BASIC_AUTH_PASSWORD` | basic auth |
    /// | `PYROSCOPE_AUTH_TOKEN` | bearer token |
    /// | `PYROSCOPE_TENANT_ID` | `X-Scope-OrgID` |
    /// | `PYROSCOPE_TAGS` (or `PYROSCOPE_LABELS`) | `k=v,k2=v2` |
    /// | `PYROSCOPE_HTTP_HEADERS` | `Name: value` pairs separated by newlines or `;` |
    /// | `PYROSCOPE_UPLOAD_INTERVAL` | `10s`, `500ms`, `1m` (or seconds) |
    /// | `PYROSCOPE_PROFILES` | `cpu,heap,allocs,block,mutex,goroutine` |
    /// | `PYROSCOPE_API` | `push` or `ingest` |
    /// | `PYROSCOPE_SAMPLING_RATE` | CPU sampling rate in Hz |
    ///
    /// - Throws: `PprofError.invalidArgument` naming the variable whose value is invalid.
    public init?(
        environment: [String: String],
        defaultApplicationName: String = "swift-service"
    ) throws {
        func value(_ name: String) -> String? {
            guard let raw = environment[name]?.trimmingSpaces, !raw.isEmpty else { return nil }
            return raw
        }
        guard let server = value("PYROSCOPE_SERVER_ADDRESS") else { return nil }
        self.init(serverURL: server, applicationName: value("PYROSCOPE_APPLICATION_NAME") ?? defaultApplicationName)
        if let user = value("PYROSCOPE_BASIC_AUTH_USER") {
            authentication = .basic(user: user, password: environment["PYROSCOPE_BASIC_AUTH_PASSWORD"] ?? "")
        } else if let token = value("PYROSCOPE_AUTH_TOKEN") {
            authentication = .bearer(token: token)
        }
        tenantID = value("PYROSCOPE_TENANT_ID")
        if let text = value("PYROSCOPE_TAGS") ?? value("PYROSCOPE_LABELS") {
            tags = try Self.parsePairs(text, separator: "=", variable: "PYROSCOPE_TAGS")
        }
        if let text = value("PYROSCOPE_HTTP_HEADERS") {
            headers = try Self.parsePairs(
                text.replacingNewlines(with: ";"),
                separator: ":",
                listSeparator: ";",
                variable: "PYROSCOPE_HTTP_HEADERS"
            )
        }
        if let text = value("PYROSCOPE_UPLOAD_INTERVAL") {
            guard let interval = Self.parseDuration(text) else {
                throw PprofError.invalidArgument(
                    "PYROSCOPE_UPLOAD_INTERVAL: '\(text)' is not a duration (10s, 500ms, 1m)"
                )
            }
            uploadInterval = interval
        }
        if let text = value("PYROSCOPE_PROFILES") {
            var profiles: Profiles = []
            for name in text.split(separator: ",").map({ String($0).trimmingSpaces.lowercased() }) where !name.isEmpty {
                guard let kind = Profiles.names.first(where: { $0.0 == name })?.1 else {
                    let known = Profiles.names.map(\.0).joined(separator: ", ")
                    throw PprofError.invalidArgument("PYROSCOPE_PROFILES: unknown profile '\(name)' (known: \(known))")
                }
                profiles.insert(kind)
            }
            self.profiles = profiles
        }
        if let text = value("PYROSCOPE_API") {
            guard let api = API(rawValue: text.lowercased()) else {
                throw PprofError.invalidArgument("PYROSCOPE_API: '\(text)' is neither push nor ingest")
            }
            self.api = api
        }
        if let text = value("PYROSCOPE_SAMPLING_RATE") {
            guard let rate = Int(text) else {
                throw PprofError.invalidArgument("PYROSCOPE_SAMPLING_RATE: '\(text)' is not a whole number of Hz")
            }
            cpuRate = rate
        }
        try validate()
    }

    /// Checks every setting; the exporter calls it before it starts.
    /// - Throws: `PprofError.invalidArgument` with the reason.
    public func validate() throws {
        guard let scheme = serverURL.split(separator: ":", maxSplits: 1).first?.lowercased(),
            scheme == "http" || scheme == "https", serverURL.contains("://"),
            serverURL.count > scheme.count + 3
        else {
            throw PprofError.invalidArgument("Pyroscope server URL '\(serverURL)' is not an http:// or https:// URL")
        }
        guard !ApplicationName(applicationName).service.isEmpty else {
            throw PprofError.invalidArgument("Pyroscope application name '\(applicationName)' has no service name")
        }
        guard uploadInterval >= .seconds(1), uploadInterval <= .seconds(3600) else {
            throw PprofError.invalidArgument("Pyroscope upload interval \(uploadInterval) is outside 1 s…1 h")
        }
        guard requestTimeout > .zero else {
            throw PprofError.invalidArgument("Pyroscope request timeout \(requestTimeout) is not positive")
        }
        guard CPUProfile.rateRange.contains(cpuRate) else {
            throw PprofError.invalidArgument(
                "CPU sampling rate \(cpuRate) Hz is outside \(CPUProfile.rateRange.lowerBound)…\(CPUProfile.rateRange.upperBound)"
            )
        }
        guard queueCapacity >= 1 else {
            throw PprofError.invalidArgument("Pyroscope queue capacity \(queueCapacity) is below 1")
        }
        guard retryBackoff.lowerBound > .zero else {
            throw PprofError.invalidArgument("Pyroscope retry backoff must start above zero")
        }
        guard !profiles.isEmpty else { throw PprofError.invalidArgument("no profiles selected for Pyroscope") }
        for (name, _) in tags where !Self.isValidLabelName(name) {
            throw PprofError.invalidArgument("Pyroscope tag name '\(name)' is not a valid label name")
        }
    }

    /// Pyroscope's label names: an ASCII letter or `_`, then letters, digits, `_` or `.`.
    static func isValidLabelName(_ name: String) -> Bool {
        func isLetter(_ byte: UInt8) -> Bool { (65...90).contains(byte) || (97...122).contains(byte) || byte == 95 }
        guard let first = name.utf8.first, isLetter(first) else { return false }
        return name.utf8.allSatisfy { isLetter($0) || (48...57).contains($0) || $0 == 46 }
    }

    static func parsePairs(
        _ text: String,
        separator: Character,
        listSeparator: Character = ",",
        variable: String
    ) throws -> [String: String] {
        var pairs: [String: String] = [:]
        for item in text.split(separator: listSeparator) {
            let item = String(item).trimmingSpaces
            if item.isEmpty { continue }
            guard let cut = item.firstIndex(of: separator) else {
                throw PprofError.invalidArgument("\(variable): '\(item)' is not name\(separator)value")
            }
            let name = String(item[..<cut]).trimmingSpaces
            guard !name.isEmpty else { throw PprofError.invalidArgument("\(variable): '\(item)' has no name") }
            pairs[name] = String(item[item.index(after: cut)...]).trimmingSpaces
        }
        return pairs
    }

    /// `10s`, `250ms`, `2m`, `1h`, or a bare number of seconds.
    static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let number = Double(text.dropLast(suffix.count)), number >= 0 else { return nil }
            return .milliseconds(Int64((number * scale * 1000).rounded()))
        }
        guard let seconds = Double(text), seconds >= 0 else { return nil }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }
}

/// An application name as Pyroscope reads it: `service{k=v,k2=v2}`.
struct ApplicationName {
    var service: String
    var labels: [(String, String)]

    init(_ text: String) {
        guard let open = text.firstIndex(of: "{"), text.hasSuffix("}") else {
            service = text.trimmingSpaces
            labels = []
            return
        }
        service = String(text[..<open]).trimmingSpaces
        let inner = text[text.index(after: open)..<text.index(before: text.endIndex)]
        labels = inner.split(separator: ",").compactMap { item in
            let parts = item.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces }
            return parts.count == 2 && !parts[0].isEmpty ? (parts[0], parts[1]) : nil
        }
    }
}

extension String {
    var trimmingSpaces: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }

    func replacingNewlines(with separator: String) -> String {
        split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).joined(separator: separator)
    }
}
