import Foundation
import Hummingbird
import Logging
import Pprof
import PprofHTTP
import PprofHummingbird
import ServiceLifecycle
import Testing

/// Runs `body` against a Hummingbird application on a free loopback port.
func withHummingbird(
    _ configure: (Router<BasicRequestContext>) -> Void,
    _ body: (Int) async throws -> Void
) async throws {
    let router = Router()
    configure(router)
    let ports = AsyncStream.makeStream(of: Int.self)
    let app = Application(
        router: router,
        configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in ports.continuation.yield(channel.localAddress?.port ?? 0) }
    )
    let group = ServiceGroup(services: [app], logger: Logger(label: "pprof-http-tests"))
    let running = Task { try await group.run() }
    var iterator = ports.stream.makeAsyncIterator()
    let port = try #require(await iterator.next())
    do {
        try await body(port)
    } catch {
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        throw error
    }
    await group.triggerGracefulShutdown()
    try await running.value
}

@Suite struct HummingbirdRouteTests {
    init() {
        _ = Fixtures.profile
    }

    @Test func routeGroupServesTheSameEndpoints() async throws {
        try await withHummingbird({ $0.addPprofRoutes() }) { port in
            let index = try await RawHTTPClient.fetch(port: port, "/debug/pprof/")
            #expect(index.status == 200)
            #expect(index.header("Content-Type") == "text/html; charset=utf-8")
            #expect(index.text.contains("<a href='./\(Fixtures.profileName)?debug=1'>"))

            let redirect = try await RawHTTPClient.fetch(port: port, "/debug/pprof")
            #expect(redirect.status == 301)
            #expect(redirect.header("Location") == "pprof/")

            let profile = try await RawHTTPClient.fetch(port: port, "/debug/pprof/\(Fixtures.profileName)")
            #expect(profile.status == 200)
            #expect(profile.header("Content-Type") == "application/octet-stream")
            #expect(profile.header("Content-Disposition") == "attachment; filename=\"\(Fixtures.profileName)\"")
            let data = try ProfileData(decoding: profile.body)
            #expect(data.samples.map { $0.values[0] }.reduce(0, +) == 3)

            let text = try await RawHTTPClient.fetch(port: port, "/debug/pprof/\(Fixtures.profileName)?debug=1")
            #expect(text.text.hasPrefix("\(Fixtures.profileName) profile: total 3\n"))

            let cmdline = try await RawHTTPClient.fetch(port: port, "/debug/pprof/cmdline")
            #expect(cmdline.text == CommandLine.arguments.joined(separator: "\u{0}"))

            let symbol = try await RawHTTPClient.fetch(
                port: port,
                "/debug/pprof/symbol",
                method: "POST",
                body: Array("0x1".utf8)
            )
            #expect(symbol.status == 200)
            #expect(symbol.text == "num_symbols: 1\n")

            let unknown = try await RawHTTPClient.fetch(port: port, "/debug/pprof/nonexistent")
            #expect(unknown.status == 404)
            #expect(unknown.text == "Unknown profile\n")
            #expect(unknown.header("X-Go-Pprof") == "1")

            let bad = try await RawHTTPClient.fetch(port: port, "/debug/pprof/heap?seconds=0")
            #expect(bad.status == 400)
            #expect(bad.text == "invalid value for \"seconds\" - must be a positive integer\n")

            let tooLarge = try await RawHTTPClient.fetch(
                port: port,
                "/debug/pprof/symbol",
                method: "POST",
                body: [UInt8](repeating: 0x31, count: (1 << 20) + 10)
            )
            #expect(tooLarge.status == 413)

            let head = try RawHTTPClient.parse(
                try await RawHTTPClient.exchange(
                    port: port,
                    Array("HEAD /debug/pprof/cmdline HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
                ),
                headOnly: true
            )
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
        }
    }

    @Test func routesCanBeMountedElsewhereAndRequireAToken() async throws {
        let handler = PprofHandler(configuration: .init(bearerToken: "hb-token"))
        try await withHummingbird({ $0.group("admin").addPprofRoutes(handler: handler) }) { port in
            let denied = try await RawHTTPClient.fetch(port: port, "/admin/debug/pprof/cmdline")
            #expect(denied.status == 401)
            let allowed = try await RawHTTPClient.fetch(
                port: port,
                "/admin/debug/pprof/\(Fixtures.profileName)?debug=1",
                headers: [("Authorization", "Bearer hb-token")]
            )
            #expect(allowed.status == 200)
            #expect(allowed.text.hasPrefix("\(Fixtures.profileName) profile: total 3\n"))
            let redirect = try await RawHTTPClient.fetch(
                port: port,
                "/admin/debug/pprof",
                headers: [("Authorization", "Bearer hb-token")]
            )
            #expect(redirect.header("Location") == "pprof/")
            let index = try await RawHTTPClient.fetch(
                port: port,
                "/admin/debug/pprof/",
                headers: [("Authorization", "Bearer hb-token")]
            )
            #expect(index.status == 200)
            #expect(index.text.contains("full goroutine stack dump"))
        }
    }

    /// `go tool pprof` symbolizes a profile without function names through `/debug/pprof/symbol`:
    /// a route serves the custom profile stripped of its names, pprof POSTs the addresses to the
    /// symbol endpoint next to it and shows the names that endpoint returns.
    @Test(.enabled(if: GoPprof.isAvailable, "go is not installed"))
    func goToolPprofSymbolizesRemotelyThroughTheSymbolEndpoint() async throws {
        try await withHummingbird({ router in
            router.get("/stripped/debug/pprof/connections") { _, _ -> Response in
                let buffer = ProfileBuffer()
                try Fixtures.profile.write(to: buffer, debug: 0)
                var data = try ProfileData(decoding: buffer.bytes)
                for index in data.locations.indices { data.locations[index].lines = [] }
                data.functions = []
                for index in data.mappings.indices {
                    data.mappings[index].hasFunctions = false
                    data.mappings[index].hasFilenames = false
                    data.mappings[index].hasLineNumbers = false
                    data.mappings[index].hasInlineFrames = false
                }
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: try data.encoded())))
            }
            // pprof asks `<profile path>/../symbol`, which the mounted routes answer.
            router.addPprofRoutes(atPath: "/stripped/debug/pprof")
        }) { port in
            let url = "http://127.0.0.1:\(port)/stripped/debug/pprof/connections"
            let result = try await GoPprof.run(["-symbolize=remote", "-raw", url])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("openTestConnection"), "\(result.stdout)\n\(result.stderr)")
        }
    }
}
