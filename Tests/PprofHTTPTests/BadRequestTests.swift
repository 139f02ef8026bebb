import Foundation
import Pprof
import PprofServer
import Testing

@Suite struct BadRequestTests {
    init() {
        _ = Fixtures.profile
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var method = "GET"
        var target: String
        var body: [UInt8] = []
        var status: Int
        var message: String
        var testDescription: String { "\(method) \(target) → \(status)" }
    }

    static let cases: [Case] = [
        Case(target: "/debug/pprof/nonexistent", status: 404, message: "Unknown profile"),
        Case(target: "/debug/pprof/nonexistent?seconds=1", status: 404, message: "Unknown profile"),
        Case(
            target: "/debug/pprof/tasks?longest=0",
            status: 400,
            message: #"invalid value for "longest" - must be a positive integer"#
        ),
        Case(
            target: "/debug/pprof/tasks?longest=many",
            status: 400,
            message: #"invalid value for "longest" - must be a positive integer"#
        ),
        Case(
            target: "/debug/pprof/heap?seconds=abc",
            status: 400,
            message: #"invalid value for "seconds" - must be a positive integer"#
        ),
        Case(
            target: "/debug/pprof/heap?seconds=-5",
            status: 400,
            message: #"invalid value for "seconds" - must be a positive integer"#
        ),
        Case(
            target: "/debug/pprof/heap?seconds=0",
            status: 400,
            message: #"invalid value for "seconds" - must be a positive integer"#
        ),
        Case(
            target: "/debug/pprof/heap?seconds=1.5",
            status: 400,
            message: #"invalid value for "seconds" - must be a positive integer"#
        ),
        Case(
            target: "/debug/pprof/heap?seconds=99999999999999999999999",
            status: 400,
            message: #"invalid value for "seconds" - must be a positive integer"#
        ),
        Case(
            target: "/debug/pprof/mutex?seconds=9223372036854775807",
            status: 400,
            message: "profile duration exceeds server's limit of 600 seconds"
        ),
        Case(
            target: "/debug/pprof/block?seconds=601",
            status: 400,
            message: "profile duration exceeds server's limit of 600 seconds"
        ),
        Case(
            target: "/debug/pprof/\(Fixtures.profileName)?seconds=1",
            status: 400,
            message: #""seconds" parameter is not supported for this profile type"#
        ),
        Case(
            target: "/debug/pprof/goroutine?seconds=1&debug=1",
            status: 400,
            message: "seconds and debug params are incompatible"
        ),
        Case(
            target: "/debug/pprof/profile?seconds=9223372036854775807",
            status: 400,
            message: "profile duration exceeds server's limit of 600 seconds"
        ),
        Case(
            target: "/debug/pprof/profile?seconds=1&rate=0",
            status: 400,
            message: #"invalid value for "rate" - must be a positive integer"#
        ),
        Case(
            target: "/debug/pprof/profile?seconds=1&rate=-3",
            status: 400,
            message: #"invalid value for "rate" - must be a positive integer"#
        ),
        Case(
            target: "/debug/pprof/profile?seconds=1&rate=fast",
            status: 400,
            message: #"invalid value for "rate" - must be a positive integer"#
        ),
        Case(target: "/debug/pprof/%zz", status: 400, message: "invalid URL escape in path"),
        Case(target: "/debug/pprof/%ff", status: 400, message: "invalid URL escape in path"),
        Case(method: "PUT", target: "/debug/pprof/heap", status: 405, message: "Method Not Allowed"),
        Case(method: "POST", target: "/debug/pprof/heap", status: 405, message: "Method Not Allowed"),
        Case(method: "DELETE", target: "/debug/pprof/", status: 405, message: "Method Not Allowed"),
        Case(
            method: "POST",
            target: "/debug/pprof/symbol",
            body: Array(repeating: UInt8(ascii: "1"), count: (1 << 20) + 1),
            status: 413,
            message: "request body too large (limit 1048576 bytes)"
        ),
    ]

    @Test(arguments: cases)
    func badRequestGetsItsErrorAndTheServerKeepsServing(_ badCase: Case) async throws {
        try await withServer { server in
            let response = try await RawHTTPClient.fetch(
                port: server.port,
                badCase.target,
                method: badCase.method,
                body: badCase.body
            )
            #expect(response.status == badCase.status)
            #expect(response.text == badCase.message + "\n")
            #expect(response.header("Content-Type") == "text/plain; charset=utf-8")
            #expect(response.header("X-Go-Pprof") == "1")
            #expect(response.header("Content-Disposition") == nil)
            let index = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/")
            #expect(index.status == 200)
        }
    }

    @Test func methodNotAllowedNamesTheAllowedMethods() async throws {
        try await withServer { server in
            let put = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/heap", method: "PUT")
            #expect(put.header("Allow") == "GET, HEAD")
            let symbol = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/symbol", method: "PUT")
            #expect(symbol.header("Allow") == "GET, HEAD, POST")
        }
    }

    @Test(arguments: [
        "NOT HTTP AT ALL\r\n\r\n",
        "GET /debug/pprof/ HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\n",
        "GET /debug/pprof/ HTTP/1.1\r\n" + String(repeating: "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaa\r\n", count: 200)
            + "\r\n",
        "GET /debug/pprof/ HTTP/1.1\r\nHost: x\r\nX-Long: " + String(repeating: "a", count: 20_000) + "\r\n\r\n",
    ])
    func malformedHTTPGetsA400AndTheConnectionCloses(_ raw: String) async throws {
        try await withServer { server in
            let bytes = try await RawHTTPClient.exchange(port: server.port, Array(raw.utf8), timeout: .seconds(10))
            let response = try RawHTTPClient.parse(bytes)
            #expect(response.status == 400)
            let index = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/")
            #expect(index.status == 200)
        }
    }

    /// A connection that never completes a request, and a keep-alive one after its response, are
    /// closed once idle for the timeout.
    @Test(
        arguments: [
            ("GET /debug/pprof/ HTTP/1.1\r\nHost", nil),
            ("GET /debug/pprof/cmdline HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        ] as [(String, Int?)]
    )
    func idleConnectionsAreClosed(_ request: String, _ status: Int?) async throws {
        var configuration = PprofServer.Configuration()
        configuration.idleTimeout = .milliseconds(300)
        try await withServer(configuration) { server in
            let start = ContinuousClock.now
            let bytes = try await RawHTTPClient.exchange(port: server.port, Array(request.utf8), timeout: .seconds(10))
            if let status {
                #expect(try RawHTTPClient.parse(bytes).status == status)
            } else {
                #expect(bytes.isEmpty)
            }
            #expect(ContinuousClock.now - start < .seconds(5))
            let index = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/")
            #expect(index.status == 200)
        }
    }

    @Test func connectionsBeyondTheLimitGetA503() async throws {
        var configuration = PprofServer.Configuration()
        configuration.maximumConnections = 2
        try await withServer(configuration) { server in
            // Two idle connections hold both slots.
            let holders = (0..<2).map { _ in
                Task {
                    try await RawHTTPClient.exchange(
                        port: server.port,
                        Array("GET /debug/pprof/ HTTP/1.1\r\nHo".utf8),
                        timeout: .seconds(10),
                        disconnectAfter: .seconds(2)
                    )
                }
            }
            try await Task.sleep(for: .milliseconds(500))
            let refused = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/")
            #expect(refused.status == 503)
            #expect(refused.text == "too many connections\n")
            for holder in holders { _ = try await holder.value }
            try await Task.sleep(for: .milliseconds(200))
            let index = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/")
            #expect(index.status == 200)
        }
    }
}
