import Pprof
import Synchronization

/// The `/debug/pprof` endpoints of Go's `net/http/pprof` (plus godeltaprof's `delta_*`), independent
/// of any HTTP framework: a request (method, path, query, headers, body) goes in, a complete response
/// (status, headers, body) comes out.
///
/// Paths, query parameters, content types, headers, status codes and error bodies are Go's, so
/// `go tool pprof`, Parca, Grafana Alloy and Pyroscope scrape it unchanged:
///
/// | path | answer |
/// | --- | --- |
/// | `/debug/pprof/` | HTML index of the profiles with their counts |
/// | `/debug/pprof/profile?seconds=N` | CPU profile over N seconds (default 30) |
/// | `/debug/pprof/<name>?debug=N` | a named profile (`heap`, `allocs`, `goroutine`, `threadcreate`, `block`, `mutex`, custom) |
/// | `/debug/pprof/<name>?seconds=N` | what a cumulative profile gained in N seconds |
/// | `/debug/pprof/delta_heap`, `delta_block`, `delta_mutex` | godeltaprof: what changed since the previous call |
/// | `/debug/pprof/symbol` | function names of addresses (GET query or POST body, `0x…+0x…`) |
/// | `/debug/pprof/cmdline` | the program's arguments, NUL-separated |
/// | `/debug/pprof/tasks?longest=N` | the N Swift tasks suspended longest (default 20), as text |
/// | `/debug/pprof/ui` | the profile viewer: flame graph, top table, label filter, diff (`ui/data?profile=…` its JSON) |
///
/// `respond(to:)` is async and cancellable: cancelling it (a client that went away) ends a running
/// `seconds=N` wait at once and stops the CPU profile. It never throws and never traps on any
/// input; bad requests get a 4xx with a one-line message, like Go's.
public final class PprofHandler: Sendable {
    /// What the handler accepts.
    public struct Configuration: Sendable {
        /// Where the endpoints live, without a trailing slash; Go's is `/debug/pprof`.
        public var pathPrefix: String
        /// The longest `seconds=N` accepted, for CPU and delta profiles. Longer requests get a 400,
        /// as Go rejects durations beyond its server's write timeout.
        public var maximumDuration: Duration
        /// Sampling rate of CPU profiles in Hz, unless a request asks for another with `rate=`.
        public var cpuProfileRate: Int
        /// When set, every request must carry `Authorization: Bearer <token>`, else it gets a 401.
        /// The comparison takes the same time wherever the first difference is.
        public var bearerToken: String?
        /// Largest request body (a `symbol` POST) accepted; larger ones get a 413.
        public var maximumRequestBodySize: Int
        /// `<name>?seconds=N` requests that may wait at once (each holds two decoded profiles);
        /// more get a 503. Only one CPU profile can run at a time anyway.
        public var maximumConcurrentDeltaRequests: Int

        public init(
            pathPrefix: String = "/debug/pprof",
            maximumDuration: Duration = .seconds(600),
            cpuProfileRate: Int = 100,
            bearerToken: String? = nil,
            maximumRequestBodySize: Int = 1 << 20,
            maximumConcurrentDeltaRequests: Int = 8
        ) {
            self.pathPrefix = pathPrefix
            self.maximumDuration = maximumDuration
            self.cpuProfileRate = cpuProfileRate
            self.bearerToken = bearerToken
            self.maximumRequestBodySize = maximumRequestBodySize
            self.maximumConcurrentDeltaRequests = maximumConcurrentDeltaRequests
        }
    }

    /// An HTTP request as any server framework can describe it.
    public struct Request: Sendable {
        /// `GET`, `HEAD` or `POST`; others get a 405.
        public var method: String
        /// The request path, percent-encoded as it appeared on the request line, e.g. `/debug/pprof/heap`.
        public var path: String
        /// The raw query string without the `?`, e.g. `seconds=5&debug=0`.
        public var query: String
        /// Header fields; only `Authorization` is read (when a bearer token is configured).
        public var headers: [(name: String, value: String)]
        /// The request body (read for `POST /debug/pprof/symbol`).
        public var body: [UInt8]

        public init(
            method: String,
            path: String,
            query: String = "",
            headers: [(name: String, value: String)] = [],
            body: [UInt8] = []
        ) {
            self.method = method
            self.path = path
            self.query = query
            self.headers = headers
            self.body = body
        }

        /// A request from its target as on the request line (`/debug/pprof/heap?debug=1`).
        public init(
            method: String,
            target: String,
            headers: [(name: String, value: String)] = [],
            body: [UInt8] = []
        ) {
            if let mark = target.firstIndex(of: "?") {
                self.init(
                    method: method,
                    path: String(target[..<mark]),
                    query: String(target[target.index(after: mark)...]),
                    headers: headers,
                    body: body
                )
            } else {
                self.init(method: method, path: target, headers: headers, body: body)
            }
        }

        /// The first value of a header field, matched case-insensitively.
        public func value(forHeader name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    /// A complete HTTP response. The adapter adds `Content-Length` and, for `HEAD`, drops the body.
    public struct Response: Sendable {
        public var status: Int
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        /// The first value of a header field, matched case-insensitively.
        public func value(forHeader name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        /// The body as UTF-8 text.
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public let configuration: Configuration
    /// Measures the `seconds=N` waits; a server whose tasks run on its own threads passes a clock
    /// whose `sleep` needs no thread of the shared concurrency pool.
    let clock: any Clock<Duration>
    /// `seconds=N` delta requests now waiting.
    let deltaRequestsInFlight = Atomic<Int>(0)
    /// The baselines of `delta_heap`, `delta_block` and `delta_mutex`.
    let deltaProfilers = DeltaProfilers()

    /// - Parameters:
    ///   - configuration: Paths and limits.
    ///   - clock: The clock whose `sleep` times `seconds=N` requests.
    public init(configuration: Configuration = Configuration(), clock: any Clock<Duration> = ContinuousClock()) {
        var configuration = configuration
        while configuration.pathPrefix.hasSuffix("/") { configuration.pathPrefix.removeLast() }
        self.configuration = configuration
        self.clock = clock
    }

    /// Answers one request. Never throws; cancelling the calling task ends a running wait early.
    public func respond(to request: Request) async -> Response {
        if let token = configuration.bearerToken, !Self.isAuthorized(request, token: token) {
            var response = Self.error(401, "Unauthorized")
            response.headers.append(("WWW-Authenticate", "Bearer realm=\"pprof\""))
            return response
        }
        if request.body.count > configuration.maximumRequestBodySize {
            return Self.error(413, "request body too large (limit \(configuration.maximumRequestBodySize) bytes)")
        }

        let prefix = configuration.pathPrefix
        if request.path == prefix {
            // The index links relatively, so it must be served under the trailing slash. The
            // redirect is relative too: it stays right wherever a framework mounts the handler.
            let lastSegment = prefix.split(separator: "/").last.map(String.init) ?? ""
            let location = lastSegment + "/" + (request.query.isEmpty ? "" : "?" + request.query)
            return Response(
                status: 301,
                headers: [
                    ("Location", QueryParameters.sanitizedHeaderValue(location)),
                    ("Content-Type", "text/html; charset=utf-8"),
                ],
                body: Array("<a href=\"\(HTML.escape(location))\">Moved Permanently</a>.\n\n".utf8)
            )
        }
        guard request.path.hasPrefix(prefix + "/") else {
            return Response(
                status: 404,
                headers: [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")],
                body: Array("404 page not found\n".utf8)
            )
        }
        guard let name = QueryParameters.percentDecoded(String(request.path.dropFirst(prefix.count + 1))) else {
            return Self.error(400, "invalid URL escape in path")
        }

        let method = request.method.uppercased()
        let allowsPost = name == "symbol"
        guard method == "GET" || method == "HEAD" || (allowsPost && method == "POST") else {
            var response = Self.error(405, "Method Not Allowed")
            response.headers.append(("Allow", allowsPost ? "GET, HEAD, POST" : "GET, HEAD"))
            return response
        }

        let query = QueryParameters(request.query)
        switch name {
        case "": return indexPage()
        case "cmdline": return commandLine()
        case "profile": return await cpuProfile(query)
        case "wall": return await wallProfile(query)
        case "symbol": return symbols(method == "POST" ? request.body : Array(request.query.utf8))
        case "tasks": return longestSuspendedTasks(query)
        case "ui": return viewerPage()
        case "ui/data": return await viewerData(query)
        default:
            if let delta = await godeltaprofProfile(named: name, query) { return delta }
            return await namedProfile(name, query)
        }
    }

    // MARK: Responses shared by the endpoints

    /// An error response, as the failure of a `Result` (a step that either gives a value or
    /// answers the request).
    struct ErrorResponse: Error {
        var response: Response
    }

    /// Go's `serveError`: plain text, `X-Go-Pprof: 1` (so `go tool pprof` shows the message), the
    /// message and a newline.
    static func error(_ status: Int, _ message: String) -> Response {
        Response(
            status: status,
            headers: [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("X-Go-Pprof", "1"),
                ("X-Content-Type-Options", "nosniff"),
            ],
            body: Array((message + "\n").utf8)
        )
    }

    /// A binary profile download, as Go serves one.
    static func profileDownload(_ body: [UInt8], filename: String) -> Response {
        Response(
            status: 200,
            headers: [
                ("Content-Type", "application/octet-stream"),
                ("Content-Disposition", "attachment; filename=\"\(QueryParameters.quotedStringContent(filename))\""),
                ("X-Content-Type-Options", "nosniff"),
            ],
            body: body
        )
    }

    static func text(_ text: String, contentType: String = "text/plain; charset=utf-8") -> Response {
        Response(
            status: 200,
            headers: [("Content-Type", contentType), ("X-Content-Type-Options", "nosniff")],
            body: Array(text.utf8)
        )
    }

    // MARK: Bearer token

    static func isAuthorized(_ request: Request, token: String) -> Bool {
        guard let header = request.value(forHeader: "Authorization") else { return false }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return false }
        let presented = Array(parts[1].drop { $0 == " " }.utf8)
        return constantTimeEquals(presented, Array(token.utf8))
    }

    /// Compares in time that depends only on the length of `presented` (which the client knows),
    /// never on where the first differing byte is or on the expected token's length.
    static func constantTimeEquals(_ presented: [UInt8], _ expected: [UInt8]) -> Bool {
        guard !expected.isEmpty else { return false }
        var difference = UInt8(presented.count == expected.count ? 0 : 1)
        for index in presented.indices {
            difference |= presented[index] ^ expected[index % expected.count]
        }
        return difference == 0 && !presented.isEmpty
    }
}
