import Foundation
import Pprof
import PprofServer
import ServiceLifecycle
import Testing

@testable import PprofHTTP

@Suite struct ServerOperationTests {
    init() {
        _ = Fixtures.profile
    }

    @Test func bearerTokenIsRequiredWhenConfigured() async throws {
        var configuration = PprofServer.Configuration()
        configuration.bearerToken = "s3cret-token"
        try await withServer(configuration) { server in
            let none = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/")
            #expect(none.status == 401)
            #expect(none.header("WWW-Authenticate") == "Bearer realm=\"pprof\"")
            #expect(none.text == "Unauthorized\n")
            for wrong in [
                "Bearer s3cret-tokeN", "Bearer s3cret-token2", "Bearer s3cret", "Basic s3cret-token", "Bearer", "",
            ] {
                let response = try await RawHTTPClient.fetch(
                    port: server.port,
                    "/debug/pprof/\(Fixtures.profileName)",
                    headers: [("Authorization", wrong)]
                )
                #expect(response.status == 401, "\(wrong)")
                #expect(response.body == Array("Unauthorized\n".utf8), "nothing else leaks")
            }
            for right in ["Bearer s3cret-token", "bearer s3cret-token", "Bearer   s3cret-token"] {
                let response = try await RawHTTPClient.fetch(
                    port: server.port,
                    "/debug/pprof/\(Fixtures.profileName)",
                    headers: [("Authorization", right)]
                )
                #expect(response.status == 200, "\(right)")
                #expect(try ProfileData(decoding: response.body).samples.count > 0)
            }
        }
    }

    @Test func tokenComparisonLooksAtEveryByte() {
        let token = Array("abcdef".utf8)
        #expect(PprofHandlerProbe.equal("abcdef", token))
        #expect(!PprofHandlerProbe.equal("abcdeg", token))
        #expect(!PprofHandlerProbe.equal("bbcdef", token))
        #expect(!PprofHandlerProbe.equal("abcdefabcdef", token), "a repetition of the token is not the token")
        #expect(!PprofHandlerProbe.equal("", token))
        #expect(!PprofHandlerProbe.equal("", []))
    }

    @Test func burstOf50ConcurrentClientsCompletesWithBoundedMemory() async throws {
        try await withServer { server in
            let targets = [
                "/debug/pprof/", "/debug/pprof/\(Fixtures.profileName)", "/debug/pprof/\(Fixtures.profileName)?debug=1",
                "/debug/pprof/cmdline", "/debug/pprof/goroutine", "/debug/pprof/heap", "/debug/pprof/symbol?0x1",
                "/debug/pprof/nonexistent", "/debug/pprof/heap?seconds=abc",
            ]
            // Warm up symbol tables and buffers so the measurement shows what a burst adds.
            for target in targets { _ = try await RawHTTPClient.fetch(port: server.port, target) }
            let before = Fixtures.residentBytes()
            var peak = before
            for round in 0..<3 {
                let statuses = try await withThrowingTaskGroup(of: (String, Int).self) { group in
                    for client in 0..<50 {
                        let target = targets[(client + round) % targets.count]
                        group.addTask { (target, try await RawHTTPClient.fetch(port: server.port, target).status) }
                    }
                    return try await group.reduce(into: [(String, Int)]()) { $0.append($1) }
                }
                #expect(statuses.count == 50)
                for (target, status) in statuses {
                    switch target {
                    case "/debug/pprof/nonexistent": #expect(status == 404)
                    case "/debug/pprof/heap?seconds=abc": #expect(status == 400)
                    case "/debug/pprof/goroutine", "/debug/pprof/heap": #expect(status == 200 || status == 500)
                    default: #expect(status == 200, "\(target)")
                    }
                }
                peak = max(peak, Fixtures.residentBytes())
            }
            let growth = peak - before
            print("burst: RSS before \(before >> 20) MiB, peak \(peak >> 20) MiB, growth \(growth >> 10) KiB")
            #expect(growth < 64 << 20, "150 requests in bursts of 50 grew RSS by \(growth >> 20) MiB")
            let index = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/")
            #expect(index.status == 200)
        }
    }

    @Test func symbolRequestOfAMegabyteOfAddressesAnswersAndTheServerKeepsServing() async throws {
        try await withServer { server in
            let buffer = ProfileBuffer()
            try Fixtures.profile.write(to: buffer, debug: 0)
            let known = try ProfileData(decoding: buffer.bytes).locations.map(\.address)
            var generator = SystemRandomNumberGenerator()
            var words: [String] = []
            var size = 0
            while size < (1 << 20) - 40 {
                // Mostly arbitrary, some inside this test binary's code.
                let address =
                    words.count % 10 == 0
                    ? known.randomElement(using: &generator)! : UInt64.random(in: 1...UInt64.max, using: &generator)
                let word = "0x" + String(address, radix: 16)
                words.append(word)
                size += word.utf8.count + 1
            }
            let response = try await RawHTTPClient.fetch(
                port: server.port,
                "/debug/pprof/symbol",
                method: "POST",
                body: Array(words.joined(separator: "+").utf8),
                timeout: .seconds(120)
            )
            #expect(response.status == 200)
            let lines = response.text.split(separator: "\n")
            #expect(lines.first == "num_symbols: 1")
            #expect(lines.count > 1, "addresses inside this binary resolve")
            let index = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/")
            #expect(index.status == 200)
        }
    }

    @Test func serverListensOnLoopbackByDefault() async throws {
        let defaults = PprofServer.Configuration()
        #expect(defaults.host == "127.0.0.1")
        #expect(defaults.port == 6060)
        try await withServer { server in
            #expect(server.host == "127.0.0.1")
            #expect(server.port > 0)
        }
    }

    @Test(arguments: [
        ("127.0.0.1:6061", "127.0.0.1", 6061),
        (":6062", "127.0.0.1", 6062),
        ("6063", "127.0.0.1", 6063),
        ("0.0.0.0:6064", "0.0.0.0", 6064),
        ("[::1]:6065", "::1", 6065),
        ("localhost:0", "localhost", 0),
    ])
    func listenAddressFromTheEnvironment(_ value: String, _ host: String, _ port: Int) throws {
        let configuration = try #require(
            try PprofServer.Configuration.fromEnvironment(["PPROF_LISTEN": value, "PPROF_BEARER_TOKEN": "t"])
        )
        #expect(configuration.host == host)
        #expect(configuration.port == port)
        #expect(configuration.bearerToken == "t")
    }

    @Test func environmentWithoutListenStartsNothingAndBadValuesThrow() async throws {
        #expect(try PprofServer.Configuration.fromEnvironment([:]) == nil)
        #expect(try await PprofServer.startFromEnvironment(["PPROF_LISTEN": ""]) == nil)
        for bad in ["127.0.0.1", "host:", "host:99999", "::1:80", "[::1]", "a:b:c", "127.0.0.1:http"] {
            #expect(throws: PprofServerError.invalidListenAddress(bad)) {
                try PprofServer.Configuration.fromEnvironment(["PPROF_LISTEN": bad])
            }
        }
    }

    @Test func startFromEnvironmentServes() async throws {
        let server = try #require(try await PprofServer.startFromEnvironment(["PPROF_LISTEN": "127.0.0.1:0"]))
        let response = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/cmdline")
        #expect(response.status == 200)
        await server.shutdown()
        await server.shutdown()  // a second call is harmless
        await #expect(throws: (any Error).self) {
            try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/cmdline", timeout: .seconds(5))
        }
    }

    @Test func bindingAnAddressInUseThrows() async throws {
        try await withServer { server in
            var configuration = PprofServer.Configuration()
            configuration.port = server.port
            await #expect(throws: (any Error).self) {
                try await PprofServer.start(configuration: configuration)
            }
        }
    }

    @Test func serviceRunsInAServiceGroupAndStopsOnGracefulShutdown() async throws {
        let started = AsyncStream.makeStream(of: Int.self)
        var configuration = PprofServer.Configuration()
        configuration.port = 0
        let service = PprofService(configuration: configuration) { server in
            started.continuation.yield(server.port)
        }
        let group = ServiceGroup(services: [service], logger: .init(label: "test"))
        let running = Task { try await group.run() }
        var ports = started.stream.makeAsyncIterator()
        let port = try #require(await ports.next())
        let response = try await RawHTTPClient.fetch(port: port, "/debug/pprof/cmdline")
        #expect(response.status == 200)
        await group.triggerGracefulShutdown()
        try await running.value
        await #expect(throws: (any Error).self) {
            try await RawHTTPClient.fetch(port: port, "/debug/pprof/cmdline", timeout: .seconds(5))
        }
    }
}

/// Reaches the handler's internal token comparison.
enum PprofHandlerProbe {
    static func equal(_ presented: String, _ expected: [UInt8]) -> Bool {
        PprofHandler.constantTimeEquals(Array(presented.utf8), expected)
    }
}
