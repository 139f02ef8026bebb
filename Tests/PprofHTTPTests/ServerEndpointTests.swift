import Foundation
import Pprof
import PprofHTTP
import PprofServer
import Testing

@Suite struct ServerEndpointTests {
    init() {
        _ = Fixtures.profile
    }

    @Test func indexListsEveryProfileWithCountsAndLinks() async throws {
        try await withServer { server in
            let response = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/")
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "text/html; charset=utf-8")
            #expect(response.header("X-Content-Type-Options") == "nosniff")
            let html = response.text
            for name in [
                "allocs", "block", "goroutine", "heap", "mutex", "threadcreate", "cmdline", "profile", "symbol", "wall",
            ] {
                #expect(html.contains("<a href='./\(name)?debug=1'>\(name)</a>"), "index lacks \(name)")
            }
            #expect(html.contains("<tr><td>3</td><td><a href='./\(Fixtures.profileName)?debug=1'>"))
            #expect(html.contains("<a href=\"goroutine?debug=2\">full goroutine stack dump</a>"))
            #expect(html.contains("CPU profile. You can specify the duration in the seconds GET parameter."))
            // Sorted by name, like Go.
            let allocs = try #require(html.range(of: "./allocs?"))
            let threadcreate = try #require(html.range(of: "./threadcreate?"))
            #expect(allocs.lowerBound < threadcreate.lowerBound)
        }
    }

    @Test func barePrefixRedirectsToTheIndex() async throws {
        try await withServer { server in
            let response = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof?x=1")
            #expect(response.status == 301)
            #expect(response.header("Location") == "pprof/?x=1")
            let root = try await RawHTTPClient.fetch(port: server.port, "/")
            #expect(root.status == 404)
            #expect(root.text == "404 page not found\n")
        }
    }

    @Test func commandLineIsNULSeparated() async throws {
        try await withServer { server in
            let response = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/cmdline")
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "text/plain; charset=utf-8")
            #expect(response.text == CommandLine.arguments.joined(separator: "\u{0}"))
        }
    }

    @Test func customProfileAsProtobufAndText() async throws {
        try await withServer { server in
            let response = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/\(Fixtures.profileName)")
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "application/octet-stream")
            #expect(response.header("Content-Disposition") == "attachment; filename=\"\(Fixtures.profileName)\"")
            #expect(response.header("X-Content-Type-Options") == "nosniff")
            #expect(response.body.starts(with: [0x1f, 0x8b]), "gzip")
            let data = try ProfileData(decoding: response.body)
            #expect(data.sampleTypes.map(\.description) == ["\(Fixtures.profileName)/count"])
            #expect(data.samples.map { $0.values[0] }.reduce(0, +) == 3)
            #expect(Fixtures.stacks(data).allSatisfy { $0.contains { $0.contains("openTestConnection") } })

            // gc is accepted and ignored; a non-numeric debug counts as 0, like Go's Atoi.
            let same = try await RawHTTPClient.fetch(
                port: server.port,
                "/debug/pprof/\(Fixtures.profileName)?gc=1&debug=x"
            )
            #expect(same.status == 200)
            #expect(try ProfileData(decoding: same.body).samples.count == data.samples.count)

            let text = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/\(Fixtures.profileName)?debug=1")
            #expect(text.status == 200)
            #expect(text.header("Content-Type") == "text/plain; charset=utf-8")
            #expect(text.header("Content-Disposition") == nil)
            #expect(text.text.hasPrefix("\(Fixtures.profileName) profile: total 3\n"))
            #expect(text.text.contains("openTestConnection"))
        }
    }

    @Test func symbolResolvesAddressesByGetAndPost() async throws {
        try await withServer { server in
            let profile = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/\(Fixtures.profileName)")
            let data = try ProfileData(decoding: profile.body)
            let names = Dictionary(uniqueKeysWithValues: data.functions.map { ($0.id, $0.name) })
            let location = try #require(
                data.locations.first { location in
                    location.lines.contains { names[$0.functionID]?.contains("openTestConnection") == true }
                }
            )
            let expectedName = try #require(location.lines.first.flatMap { names[$0.functionID] })
            let hex = "0x" + String(location.address, radix: 16)

            // POST, as go tool pprof sends it: unknown and malformed words are left out.
            let post = try await RawHTTPClient.fetch(
                port: server.port,
                "/debug/pprof/symbol",
                method: "POST",
                body: Array("\(hex)+0x1+garbage++\(location.address)".utf8)
            )
            #expect(post.status == 200)
            #expect(post.header("Content-Type") == "text/plain; charset=utf-8")
            #expect(post.text == "num_symbols: 1\n\(hex) \(expectedName)\n\(hex) \(expectedName)\n")

            let get = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/symbol?\(hex)")
            #expect(get.text == "num_symbols: 1\n\(hex) \(expectedName)\n")
            let empty = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/symbol")
            #expect(empty.text == "num_symbols: 1\n")
        }
    }

    @Test func expectContinueIsAnsweredBeforeTheBody() async throws {
        try await withServer { server in
            let body = "0x1+0x2"
            let request =
                "POST /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + "Expect: 100-continue\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let bytes = try await RawHTTPClient.exchange(port: server.port, Array(request.utf8))
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), "\(text)")
            #expect(text.hasSuffix("\r\n\r\nnum_symbols: 1\n"))
        }
    }

    @Test func headAnswersWithoutABody() async throws {
        try await withServer { server in
            let bytes = try await RawHTTPClient.exchange(
                port: server.port,
                Array("HEAD /debug/pprof/cmdline HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
            )
            let response = try RawHTTPClient.parse(bytes, headOnly: true)
            #expect(response.status == 200)
            #expect(response.body.isEmpty)
            #expect(
                response.header("Content-Length") == String(CommandLine.arguments.joined(separator: "\u{0}").utf8.count)
            )
        }
    }

    @Test func keepAliveServesSeveralRequestsOnOneConnection() async throws {
        try await withServer { server in
            let request = "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: x\r\n\r\n"
            let last = "GET /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let bytes = try await RawHTTPClient.exchange(port: server.port, Array((request + request + last).utf8))
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 4)
            #expect(text.hasSuffix("num_symbols: 1\n"))
        }
    }

    @Test func goroutineProfileInEveryFormat() async throws {
        try await withServer { server in
            let proto = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/goroutine")
            #expect(proto.status == 200, "\(proto.text)")
            #expect(proto.header("Content-Disposition") == "attachment; filename=\"goroutine\"")
            let data = try ProfileData(decoding: proto.body)
            #expect(data.sampleTypes.map(\.description) == ["goroutine/count"])
            let threads = data.samples.map { $0.values[0] }.reduce(0, +)
            // Other tests start and end threads meanwhile: the server's own three at least.
            #expect(threads >= 3, "\(threads) threads profiled")

            let text = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/goroutine?debug=1")
            #expect(text.header("Content-Type") == "text/plain; charset=utf-8")
            #expect(text.text.hasPrefix("goroutine profile: total "), "\(text.text.prefix(100))")

            // The crash-style dump names each thread: the server's own are there.
            let dump = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/goroutine?debug=2")
            #expect(dump.status == 200)
            #expect(dump.text.contains("\"pprof-http\" ["), "\(dump.text.prefix(2000))")
            #expect(dump.text.contains("\"pprof-http-w#"))
        }
    }

    @Test func predefinedProfilesAnswerWithAProfileOrAClearError() async throws {
        try await withServer { server in
            for name in ["goroutine", "threadcreate", "heap", "allocs", "block", "mutex"] {
                let response = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/\(name)")
                if response.status == 200 {
                    #expect(response.header("Content-Disposition") == "attachment; filename=\"\(name)\"")
                    let data = try ProfileData(decoding: response.body)
                    #expect(!data.sampleTypes.isEmpty, "\(name)")
                } else {
                    // Not available in this process (e.g. heap without PprofHooks): a 500 that says why.
                    #expect(response.status == 500, "\(name)")
                    #expect(response.header("X-Go-Pprof") == "1")
                    #expect(response.text.hasPrefix("Could not write profile \(name): "), "\(response.text)")
                    #expect(response.text.count > "Could not write profile \(name): \n".count)
                }
            }
        }
    }
}
