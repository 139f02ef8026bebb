import Foundation
import Pprof
import PprofServer
import Synchronization
import Testing

/// `/debug/pprof/<name>?seconds=N`: the profile now, again after N seconds, served as the
/// difference (net/http/pprof's decode-and-subtract).
@Suite struct DeltaProfileTests {
    /// Threads parked in a known function while they exist.
    final class ParkedThreads: Sendable {
        let release = Atomic<Bool>(false)

        func start(_ count: Int) {
            for _ in 0..<count {
                Thread { [self] in Self.parkedDuringDelta(self) }.start()
            }
        }

        @inline(never)
        static func parkedDuringDelta(_ threads: ParkedThreads) {
            while !threads.release.load(ordering: .acquiring) { usleep(20_000) }
        }
    }

    @Test func goroutineDeltaShowsTheThreadsStartedDuringTheWait() async throws {
        try await withServer { server in
            let parked = ParkedThreads()
            defer { parked.release.store(true, ordering: .releasing) }
            let request = Task { try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/goroutine?seconds=2") }
            try await Task.sleep(for: .milliseconds(700))
            parked.start(3)
            let response = try await request.value
            #expect(response.status == 200, "\(response.text)")
            #expect(response.header("Content-Type") == "application/octet-stream")
            #expect(response.header("Content-Disposition") == "attachment; filename=\"goroutine-delta\"")
            let data = try ProfileData(decoding: response.body)
            #expect(data.durationNanos >= 1_900_000_000 && data.durationNanos < 10_000_000_000, "\(data.durationNanos)")
            #expect(data.timeNanos > 0)
            let added = data.resolvedSamples()
                .filter { $0.functionNames.contains { $0.contains("parkedDuringDelta") } }
                .map { $0.values[0] }
                .reduce(0, +)
            #expect(added == 3, "the three new threads, and nothing of the threads that did not change")
            // Threads that existed throughout and kept their stacks are gone from the difference.
            let total = data.resolvedSamples().map { $0.values[0] }.reduce(0, +)
            let cumulative = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/goroutine")
            let now = try ProfileData(decoding: cumulative.body).resolvedSamples().map { $0.values[0] }.reduce(0, +)
            #expect(total < now, "delta \(total) vs \(now) threads")
        }
    }

    @Test func concurrentDeltaRequestsAreCapped() async throws {
        var configuration = PprofServer.Configuration()
        configuration.handler.maximumConcurrentDeltaRequests = 1
        try await withServer(configuration) { server in
            let first = Task { try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/goroutine?seconds=2") }
            try await Task.sleep(for: .milliseconds(700))
            let second = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/goroutine?seconds=1")
            #expect(second.status == 503)
            #expect(second.text == "too many concurrent delta profile requests\n")
            #expect(try await first.value.status == 200)
            let third = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/goroutine?seconds=1")
            #expect(third.status == 200, "the slot is free again")
        }
    }

    /// In a process with lock contention: the mutex and block deltas over one second hold that
    /// second's events — some, and fewer than the cumulative profile taken afterwards.
    @Test func contentionDeltasOfAContendedProcess() async throws {
        let child = try await ServerProcess.launch(["--contend"])
        defer { child.stopInBackground() }
        try await Task.sleep(for: .seconds(1))
        for name in ["mutex", "block"] {
            let delta = try await RawHTTPClient.fetch(
                port: child.port,
                "/debug/pprof/\(name)?seconds=1",
                timeout: .seconds(60)
            )
            #expect(delta.status == 200, "\(name): \(delta.text)")
            #expect(delta.header("Content-Disposition") == "attachment; filename=\"\(name)-delta\"")
            let cumulative = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/\(name)")
            let deltaData = try ProfileData(decoding: delta.body)
            let cumulativeData = try ProfileData(decoding: cumulative.body)
            #expect(deltaData.sampleTypes == cumulativeData.sampleTypes)
            let inDelta = deltaData.total(at: 0)
            let overall = cumulativeData.total(at: 0)
            #expect(inDelta > 0 && inDelta < overall, "\(name): \(inDelta) contentions in the delta, \(overall) in all")
            #expect(deltaData.durationNanos >= 900_000_000)
        }
        if GoPprof.isAvailable {
            // go tool pprof's -seconds asks the server for the delta.
            let top = try await GoPprof.run([
                "-seconds", "1", "-top", "http://127.0.0.1:\(child.port)/debug/pprof/block",
            ])
            #expect(top.status == 0, "\(top.stderr)")
            #expect(top.stdout.contains("contendedWaitSite"), "\(top.stdout)")
        }
    }
}
