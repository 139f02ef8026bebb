import Foundation
import Pprof
import Testing

/// The server inside another process: one that links PprofHooks (so heap, allocs, block and mutex
/// have data) and, for the stuck-pool test, has every thread of its concurrency pool blocked.
@Suite struct ChildProcessServerTests {
    @Test func answersWhileEveryConcurrencyPoolThreadIsStuck() async throws {
        let child = try ServerProcess(["--stuck-pool"])
        defer { child.stop() }
        #expect(child.facts["pool-stuck"] == "true", "the helper could not block its pool: \(child.facts)")

        let index = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/", timeout: .seconds(20))
        #expect(index.status == 200)
        #expect(index.text.contains("helper.http.items"))

        let items = try await RawHTTPClient.fetch(
            port: child.port,
            "/debug/pprof/helper.http.items",
            timeout: .seconds(20)
        )
        #expect(items.status == 200)
        let data = try ProfileData(decoding: items.body)
        #expect(data.samples.map { $0.values[0] }.reduce(0, +) == 5)
        #expect(Fixtures.stacks(data).allSatisfy { $0.contains { $0.contains("addItem") } })

        let symbol = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/symbol?0x1", timeout: .seconds(20))
        #expect(symbol.text == "num_symbols: 1\n")

        // Every predefined profile answers (with data, or a clear error while its kind is missing).
        for name in ["goroutine", "threadcreate", "heap", "allocs", "block", "mutex"] {
            let response = try await RawHTTPClient.fetch(
                port: child.port,
                "/debug/pprof/\(name)",
                timeout: .seconds(20)
            )
            #expect(response.status == 200 || response.status == 500, "\(name): \(response.status)")
        }
        if Fixtures.cpuProfilingAvailable {
            let cpu = try await RawHTTPClient.fetch(
                port: child.port,
                "/debug/pprof/profile?seconds=1",
                timeout: .seconds(20)
            )
            #expect(cpu.status == 200, "\(cpu.text)")
            let profile = try ProfileData(decoding: cpu.body)
            #expect(profile.durationNanos > 900_000_000)
        }
    }

    @Test func tokenProtectsTheChildsServer() async throws {
        let child = try ServerProcess(["--token", "child-token"])
        defer { child.stop() }
        let denied = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/helper.http.items")
        #expect(denied.status == 401)
        let allowed = try await RawHTTPClient.fetch(
            port: child.port,
            "/debug/pprof/helper.http.items?debug=1",
            headers: [("Authorization", "Bearer child-token")]
        )
        #expect(allowed.status == 200)
        #expect(allowed.text.hasPrefix("helper.http.items profile: total 5\n"))
    }
}
