import Foundation
import Pprof
import Testing

/// `/debug/pprof/wall` against a server in a child process.
@Suite(.serialized) struct WallEndpointTests {
    @Test func wallProfileOverHTTP() async throws {
        let child = try await CPUProfileEndpointTests.warmChild(["--burn"])
        defer { child.stopInBackground() }
        let response = try await RawHTTPClient.fetch(
            port: child.port,
            "/debug/pprof/wall?seconds=1&max_threads=64",
            timeout: .seconds(120)
        )
        #expect(response.status == 200, "\(response.text)")
        #expect(response.header("Content-Disposition") == "attachment; filename=\"wall\"")
        let data = try ProfileData(decoding: response.body)
        #expect(data.sampleTypes.map(\.description) == ["samples/count", "wall/nanoseconds"])
        #expect(data.period == 10_000_000)
        let samples = data.resolvedSamples()
        let burning = samples.filter { $0.functionNames.contains { $0.contains("burnCPUForProfiling") } }
        let burned = burning.map { $0.values[1] }.reduce(0, +)
        // The burning thread ran the whole second (on a CPU or runnable).
        #expect(burned >= 800_000_000, "burned \(burned) ns")
        #expect(burning.allSatisfy { $0.label("state") == "running" })
        // The event loops wait for work: idle, so left out.
        #expect(!samples.contains { $0.label("state")?.hasPrefix("idle:") == true })
        #expect(data.comments.contains { $0.hasPrefix("cost: sampler thread") })
    }

    @Test func parametersAreValidated() async throws {
        let child = try await ServerProcess.launch()
        defer { child.stopInBackground() }
        let badCap = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/wall?seconds=1&max_threads=0")
        #expect(badCap.status == 400, "\(badCap.text)")
        let badRate = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/wall?seconds=1&rate=5000")
        #expect(badRate.status == 400)
        #expect(badRate.text.hasPrefix("Could not enable wall profiling: wall profile rate 5000 Hz"), "\(badRate.text)")
        let idle = try await RawHTTPClient.fetch(
            port: child.port,
            "/debug/pprof/wall?seconds=1&include_idle=1",
            timeout: .seconds(120)
        )
        #expect(idle.status == 200)
        let samples = try ProfileData(decoding: idle.body).resolvedSamples()
        // With include_idle, the server's event loops waiting in epoll are there, as idle.
        #expect(
            samples.contains {
                $0.label("state") == "idle:io" && $0.functionNames.contains { $0.contains("SelectableEventLoop") }
            }
        )
    }
}
