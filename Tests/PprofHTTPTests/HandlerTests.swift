import Pprof
import Testing

@testable import PprofHTTP

/// The handler called directly, without a server.
@Suite struct HandlerTests {
    let handler = PprofHandler()

    @Test func queryParametersFollowGoParseQuery() {
        let query = QueryParameters("seconds=5&debug=1&seconds=9&a+b=c%20d&bad=%zz&semi=1;x=2&flag&empty=")
        #expect(query["seconds"] == "5", "the first value wins")
        #expect(query["debug"] == "1")
        #expect(query["a b"] == "c d")
        #expect(query["bad"] == "", "a pair with a bad escape is dropped")
        #expect(query["semi"] == "", "a pair with a semicolon is dropped")
        #expect(query["flag"] == "")
        #expect(query["missing"] == "")
    }

    @Test func addressesParseLikeGoParseUintBaseZero() {
        #expect(QueryParameters.uint64AnyBase("0x1f") == 31)
        #expect(QueryParameters.uint64AnyBase("0X1F") == 31)
        #expect(QueryParameters.uint64AnyBase("31") == 31)
        #expect(QueryParameters.uint64AnyBase("017") == 15)
        #expect(QueryParameters.uint64AnyBase("0b101") == 5)
        #expect(QueryParameters.uint64AnyBase("0o17") == 15)
        #expect(QueryParameters.uint64AnyBase("0") == 0)
        #expect(QueryParameters.uint64AnyBase("0xffffffffffffffff") == UInt64.max)
        for bad in ["", "0x", "-1", "+1", "0x-1", "1e3", "0x10000000000000000", "08"] {
            #expect(QueryParameters.uint64AnyBase(Substring(bad)) == nil, "\(bad)")
        }
    }

    static let evilName = "pprofhttp.test.\"evil\"\r\nX-Injected: 1<script>"
    static let evilProfile: Profile = {
        let profile = Profile(name: evilName)
        profile.add(1)
        return profile
    }()

    @Test func profileNamesCannotForgeHeadersOrMarkup() async throws {
        let name = Self.evilName
        _ = Self.evilProfile
        let encodedName = QueryParameters.percentEncodedPath(name)
        let download = await handler.respond(to: .init(method: "GET", path: "/debug/pprof/" + encodedName))
        #expect(download.status == 200)
        let disposition = try #require(download.value(forHeader: "Content-Disposition"))
        #expect(disposition == #"attachment; filename="pprofhttp.test.\"evil\"__X-Injected: 1<script>""#)
        #expect(!disposition.contains("\r") && !disposition.contains("\n"))

        let index = await handler.respond(to: .init(method: "GET", path: "/debug/pprof/"))
        #expect(!index.text.contains("<script>"))
        #expect(index.text.contains("pprofhttp.test.&#34;evil&#34;"))
        #expect(index.text.contains("href='./pprofhttp.test.%22evil%22%0D%0AX-Injected%3A%201%3Cscript%3E?debug=1'"))
    }

    @Test func redirectLocationIsSanitized() async {
        let response = await handler.respond(
            to: .init(method: "GET", path: "/debug/pprof", query: "a=\r\nSet-Cookie:x")
        )
        #expect(response.status == 301)
        #expect(response.value(forHeader: "Location") == "pprof/?a=%0D%0ASet-Cookie:x")
    }

    @Test func customPrefixAndTrailingSlashes() async {
        let custom = PprofHandler(configuration: .init(pathPrefix: "/internal/prof/"))
        #expect(custom.configuration.pathPrefix == "/internal/prof")
        let index = await custom.respond(to: .init(method: "GET", path: "/internal/prof/"))
        #expect(index.status == 200)
        #expect(index.text.contains("<title>/internal/prof/</title>"))
        let moved = await custom.respond(to: .init(method: "GET", path: "/internal/prof"))
        #expect(moved.value(forHeader: "Location") == "prof/")
        let outside = await custom.respond(to: .init(method: "GET", path: "/debug/pprof/"))
        #expect(outside.status == 404)
    }

    /// Random targets, methods, headers and bodies: always a well-formed answer, never a trap.
    @Test func arbitraryRequestsAlwaysGetAnAnswer() async {
        var random = SystemRandomNumberGenerator()
        let pieces = [
            "/debug/pprof", "/debug/pprof/", "heap", "profile", "symbol", "cmdline", "goroutine", "%", "%2", "%zz",
            "?", "&", "=", "seconds", "debug", "rate", "-1", "0", "1.5", "99999999999999999999", "+", "0x", "\u{0}",
            "é", "//", "..", ";", "gc", "delta_heap", Fixtures.profileName,
        ]
        _ = Fixtures.profile
        for _ in 0..<2000 {
            var target = ""
            for _ in 0..<Int.random(in: 1...8, using: &random) { target += pieces.randomElement(using: &random)! }
            let method = ["GET", "HEAD", "POST", "PUT", "get", ""].randomElement(using: &random)!
            let body = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random)
            }
            let request = PprofHandler.Request(
                method: method,
                target: target,
                headers: [("Authorization", String(decoding: body.prefix(8), as: UTF8.self))],
                body: body
            )
            // CPU and delta requests would wait (or start a profile): answer them with seconds that fail fast.
            if request.query.contains("seconds") && !request.query.contains("seconds=-") { continue }
            if request.path.hasSuffix("profile") { continue }
            let response = await handler.respond(to: request)
            #expect((200...599).contains(response.status), "\(method) \(target)")
            #expect(response.value(forHeader: "Content-Type") != nil, "\(method) \(target)")
        }
    }
}
