import Foundation
@_spi(Integration) import Pprof

/// A profile taken in one cycle, gzip-compressed pprof, with the time range it covers.
struct CollectedProfile: Sendable {
    enum Kind: String, Sendable, CaseIterable {
        case cpu, memory, block, mutex, goroutine

        /// Pyroscope's `__name__` for the profile's series.
        var seriesName: String {
            switch self {
            case .cpu: return "process_cpu"
            case .memory: return "memory"
            case .block: return "block"
            case .mutex: return "mutex"
            case .goroutine: return "goroutines"
            }
        }

        /// Whether the values are a change since the previous cycle computed here (the server must
        /// not take deltas again): `__delta__="false"`, as Alloy sends.
        var isClientDelta: Bool { self == .memory || self == .block || self == .mutex }

        /// For `/ingest`: how the server should read the sample types (pyroscope-go's table), which
        /// is what maps mutex and block profiles to their own series.
        var sampleTypeConfig: String? {
            switch self {
            case .cpu: return nil
            case .memory:
                return #"{"alloc_objects":{"units":"objects"},"alloc_space":{"units":"bytes"},"#
                    + #""inuse_objects":{"units":"objects","aggregation":"average"},"#
                    + #""inuse_space":{"units":"bytes","aggregation":"average"}}"#
            case .block, .mutex:
                return #"{"contentions":{"display-name":"\#(rawValue)_count","units":"lock_samples"},"#
                    + #""delay":{"display-name":"\#(rawValue)_duration","units":"lock_nanoseconds"}}"#
            case .goroutine:
                return #"{"goroutine":{"display-name":"goroutines","units":"goroutines","aggregation":"average"}}"#
            }
        }
    }

    var kind: Kind
    var bytes: [UInt8]
    /// Unix nanoseconds.
    var startNanos: Int64
    var endNanos: Int64
}

/// One HTTP request of an upload.
struct UploadRequest: Sendable {
    /// Path and query, appended to the server URL.
    var target: String
    var contentType: String
    var body: [UInt8]
    /// The profiles it carries.
    var profileCount: Int
}

/// The series labels and request bodies of Pyroscope's two APIs.
struct UploadEncoding: Sendable {
    let service: String
    /// Labels of every series: those in the application name, then the configured tags (which win).
    let labels: [(String, String)]
    let cpuRate: Int

    init(configuration: PyroscopeConfiguration) {
        let name = ApplicationName(configuration.applicationName)
        service = name.service
        var labels = name.labels.filter { key, _ in configuration.tags[key] == nil }
        labels += configuration.tags.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        self.labels = labels.filter { $0.0 != "service_name" && $0.0 != "__name__" }
        cpuRate = configuration.cpuRate
    }

    func requests(for profiles: [CollectedProfile], api: PyroscopeConfiguration.API) -> [UploadRequest] {
        guard !profiles.isEmpty else { return [] }
        switch api {
        case .push: return [pushRequest(profiles)]
        case .ingest: return profiles.map(ingestRequest)
        }
    }

    /// The labels of a profile's series in the push API.
    func seriesLabels(_ profile: CollectedProfile) -> [(String, String)] {
        var series = [("__name__", profile.kind.seriesName), ("service_name", service)] + labels
        if profile.kind.isClientDelta { series.append(("__delta__", "false")) }
        return series
    }

    /// `push.v1.PushRequest`: one `RawProfileSeries` per profile, each with one `RawSample`.
    func pushRequest(_ profiles: [CollectedProfile]) -> UploadRequest {
        var out = ProtobufEncoder(capacity: profiles.reduce(4096) { $0 + $1.bytes.count + 1024 })
        for profile in profiles {
            out.reserve(16)
            let series = out.beginMessage(1)  // PushRequest.series
            for (name, value) in seriesLabels(profile) {
                out.reserve(16)
                let pair = out.beginMessage(1)  // RawProfileSeries.labels: LabelPair
                out.string(1, name)
                out.string(2, value)
                out.reserve(8)  // endMessage may widen the length prefix
                out.endMessage(pair)
            }
            out.reserve(16)
            let sample = out.beginMessage(2)  // RawProfileSeries.samples: RawSample
            profile.bytes.withUnsafeBytes { out.bytes(1, $0) }  // raw_profile
            out.string(2, UUID().uuidString.lowercased())  // ID
            out.reserve(8)
            out.endMessage(sample)
            out.reserve(8)
            out.endMessage(series)
        }
        let body = out.withBytes { [UInt8]($0) }
        return UploadRequest(
            target: "/push.v1.PusherService/Push",
            contentType: "application/proto",
            body: body,
            profileCount: profiles.count
        )
    }

    /// The application name with labels, as `/ingest` reads it: `service{k=v,…}`.
    var ingestName: String {
        guard !labels.isEmpty else { return service }
        return service + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    /// `POST /ingest`: the pprof bytes in a multipart form, with the sample-type table where the
    /// server needs it; the time range in the query (nanoseconds).
    func ingestRequest(_ profile: CollectedProfile) -> UploadRequest {
        var query = [
            ("name", ingestName), ("from", String(profile.startNanos)), ("until", String(profile.endNanos)),
            ("spyName", "swiftspy"),
        ]
        if profile.kind == .cpu { query.append(("sampleRate", String(cpuRate))) }
        let boundary = "swift-pprof-" + UUID().uuidString.lowercased()
        var body: [UInt8] = []
        func part(_ field: String, file: String, contentType: String, _ content: [UInt8]) {
            body += Array("--\(boundary)\r\n".utf8)
            body += Array("Content-Disposition: form-data; name=\"\(field)\"; filename=\"\(file)\"\r\n".utf8)
            body += Array("Content-Type: \(contentType)\r\n\r\n".utf8)
            body += content
            body += Array("\r\n".utf8)
        }
        part("profile", file: "profile.pprof", contentType: "application/octet-stream", profile.bytes)
        if let config = profile.kind.sampleTypeConfig {
            part(
                "sample_type_config",
                file: "sample_type_config.json",
                contentType: "application/json",
                Array(config.utf8)
            )
        }
        body += Array("--\(boundary)--\r\n".utf8)
        let encodedQuery = query.map { "\($0.0)=\(Self.percentEncoded($0.1))" }.joined(separator: "&")
        return UploadRequest(
            target: "/ingest?" + encodedQuery,
            contentType: "multipart/form-data; boundary=\(boundary)",
            body: body,
            profileCount: 1
        )
    }

    /// RFC 3986 unreserved characters stay; everything else is %XX.
    static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                result += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return result
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
