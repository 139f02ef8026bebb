import Foundation
import Pprof
import PprofServer
import Testing

/// The real `go tool pprof` against the running server.
@Suite(.enabled(if: GoPprof.isAvailable, "go is not installed"))
struct GoToolPprofTests {
    init() {
        _ = Fixtures.profile
    }

    @Test func rawAndTopOfACustomProfile() async throws {
        try await withServer { server in
            let url = "http://127.0.0.1:\(server.port)/debug/pprof/\(Fixtures.profileName)"
            let raw = try await GoPprof.run(["-raw", url])
            #expect(raw.status == 0, "\(raw.stderr)")
            #expect(raw.stdout.contains("openTestConnection"), "\(raw.stdout)")
            #expect(raw.stdout.contains("\(Fixtures.profileName)/count"))

            let top = try await GoPprof.run(["-top", url])
            #expect(top.status == 0, "\(top.stderr)")
            #expect(top.stdout.contains("of 3 total"), "\(top.stdout)")
            #expect(top.stdout.contains("openTestConnection"))
        }
    }

    @Test func errorsReachThePprofUser() async throws {
        try await withServer { server in
            let result = try await GoPprof.run(["-raw", "http://127.0.0.1:\(server.port)/debug/pprof/heap?seconds=-1"])
            #expect(result.status != 0)
            // pprof prints the body of an X-Go-Pprof text error.
            #expect(
                result.stderr.contains(#"invalid value for "seconds" - must be a positive integer"#),
                "\(result.stderr)"
            )
        }
    }
}
