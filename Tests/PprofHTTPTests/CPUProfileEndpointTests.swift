import Foundation
import Pprof
import Testing

/// `/debug/pprof/profile` against a server in a child process (a process of its own, so no other
/// test's CPU profile can be running in it). Serialized: only a few children burn CPU at a time.
@Suite(.serialized) struct CPUProfileEndpointTests {
    /// A child whose first CPU profile has been taken: the first one in a process loads the symbol
    /// tables of every image its stacks touch, which in a debug build takes seconds.
    static func warmChild(_ arguments: [String] = []) async throws -> ServerProcess {
        let child = try await ServerProcess.launch(arguments)
        let warmUp = try await RawHTTPClient.fetch(
            port: child.port,
            "/debug/pprof/profile?seconds=1",
            timeout: .seconds(120)
        )
        #expect(warmUp.status == 200, "\(warmUp.text)")
        return child
    }

    @Test func cpuProfileOverHTTP() async throws {
        let child = try await Self.warmChild(["--burn"])
        defer { child.stopInBackground() }
        let response = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/profile?seconds=1")
        #expect(response.status == 200, "\(response.text)")
        #expect(response.header("Content-Type") == "application/octet-stream")
        #expect(response.header("Content-Disposition") == "attachment; filename=\"profile\"")
        #expect(response.header("X-Content-Type-Options") == "nosniff")
        let data = try ProfileData(decoding: response.body)
        #expect(data.sampleTypes.map(\.description) == ["samples/count", "cpu/nanoseconds"])
        #expect(data.period == 10_000_000, "100 Hz by default")
        #expect(data.durationNanos >= 900_000_000 && data.durationNanos < 5_000_000_000)
        let stacks = Fixtures.stacks(data)
        var burned: Int64 = 0
        var total: Int64 = 0
        for (sample, stack) in zip(data.samples, stacks) {
            total += sample.values[1]
            if stack.contains(where: { $0.contains("burnCPUForProfiling") }) { burned += sample.values[1] }
        }
        // The burning thread is the only busy one in the child.
        #expect(burned > 0 && Double(burned) >= 0.5 * Double(total), "burned \(burned) of \(total) ns")
    }

    @Test func rateParameterIsValidatedByTheProfiler() async throws {
        let child = try await ServerProcess.launch()
        defer { child.stopInBackground() }
        let tooFast = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/profile?seconds=1&rate=10001")
        #expect(tooFast.status == 400)
        #expect(
            tooFast.text.hasPrefix("Could not enable CPU profiling: CPU profile rate 10001 Hz is outside"),
            "\(tooFast.text)"
        )
        #expect(tooFast.header("X-Go-Pprof") == "1")
        let fast = try await RawHTTPClient.fetch(
            port: child.port,
            "/debug/pprof/profile?seconds=1&rate=1000",
            timeout: .seconds(120)
        )
        #expect(fast.status == 200, "\(fast.text)")
        #expect(try ProfileData(decoding: fast.body).period == 1_000_000)
    }

    /// A second CPU profile gets Go's "already in use"; the first one (seconds=abc means Go's
    /// default 30 s) stops as soon as its client disconnects, so a third one can start at once.
    @Test func secondProfileIsRefusedAndADisconnectStopsTheFirst() async throws {
        let child = try await Self.warmChild()
        defer { child.stopInBackground() }
        let first = Task {
            try await RawHTTPClient.exchange(
                port: child.port,
                Array("GET /debug/pprof/profile?seconds=abc HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
                disconnectAfter: .seconds(2)
            )
        }
        try await Task.sleep(for: .milliseconds(800))
        let second = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/profile?seconds=1")
        #expect(second.status == 500)
        #expect(second.text == "Could not enable CPU profiling: cpu profiling already in use\n")
        #expect(second.header("X-Go-Pprof") == "1")
        _ = try await first.value
        let disconnected = ContinuousClock.now
        // The 30-second profile must be gone within moments of the disconnect.
        var third = second
        while ContinuousClock.now - disconnected < .seconds(15) {
            third = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/profile?seconds=1")
            if third.status == 200 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(third.status == 200, "\(third.text)")
        #expect(ContinuousClock.now - disconnected < .seconds(15))
    }

    /// Shutting the server down during a CPU profile answers it with what was recorded so far.
    @Test func shutdownDuringACPUProfileSendsWhatWasRecorded() async throws {
        let child = try await Self.warmChild(["--burn"])
        let request = Task { try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/profile?seconds=30") }
        try await Task.sleep(for: .milliseconds(1500))
        let stopped = await child.stop()
        #expect(!stopped.killed)
        #expect(stopped.seconds < 20, "shutdown took \(stopped.seconds) s")
        let response = try await request.value
        #expect(response.status == 200, "\(response.text)")
        #expect(response.header("Connection") == "close")
        let data = try ProfileData(decoding: response.body)
        #expect(data.durationNanos > 1_000_000_000 && data.durationNanos < 20_000_000_000, "\(data.durationNanos)")
        #expect(Fixtures.stacks(data).contains { $0.contains { $0.contains("burnCPUForProfiling") } })
    }

    @Test(.enabled(if: GoPprof.isAvailable, "go is not installed"))
    func goToolPprofTopOfATwoSecondCPUProfile() async throws {
        let child = try await Self.warmChild(["--burn"])
        defer { child.stopInBackground() }
        let top = try await GoPprof.run(["-top", "http://127.0.0.1:\(child.port)/debug/pprof/profile?seconds=2"])
        #expect(top.status == 0, "\(top.stderr)")
        #expect(top.stdout.contains("Type: cpu"), "\(top.stdout)")
        #expect(top.stdout.contains("Duration: 2"), "\(top.stdout)")
        #expect(top.stdout.contains("burnCPUForProfiling"), "\(top.stdout)")
    }
}
