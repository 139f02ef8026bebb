import Foundation
import Pprof
import Testing

/// The server inside another process: one that links PprofHooks (so heap, allocs, block and mutex
/// have data) and, for the stuck-pool test, has every thread of its concurrency pool blocked.
@Suite struct ChildProcessServerTests {
    @Test func answersWhileEveryConcurrencyPoolThreadIsStuck() async throws {
        let child = try await ServerProcess.launch(["--stuck-pool"])
        defer { child.stopInBackground() }
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

        // The thread dump shows the pool threads where they are stuck.
        let dump = try await RawHTTPClient.fetch(
            port: child.port,
            "/debug/pprof/goroutine?debug=2",
            timeout: .seconds(60)
        )
        #expect(dump.status == 200)
        #expect(dump.text.contains("blockConcurrencyPool"), "\(dump.text.prefix(3000))")

        // Every predefined profile answers (with data, or a clear error while its kind is missing).
        for name in ["goroutine", "threadcreate", "heap", "allocs", "block", "mutex"] {
            let response = try await RawHTTPClient.fetch(
                port: child.port,
                "/debug/pprof/\(name)",
                timeout: .seconds(20)
            )
            #expect(response.status == 200 || response.status == 500, "\(name): \(response.status)")
        }
        // A CPU profile: the wait is timed by the server's event loop, not the pool.
        let cpu = try await RawHTTPClient.fetch(
            port: child.port,
            "/debug/pprof/profile?seconds=1",
            timeout: .seconds(120)
        )
        #expect(cpu.status == 200, "\(cpu.text)")
        let profile = try ProfileData(decoding: cpu.body)
        #expect(profile.durationNanos > 900_000_000)
        #expect(profile.durationNanos < 5_000_000_000)
    }

    @Test func tokenProtectsTheChildsServer() async throws {
        let child = try await ServerProcess.launch(["--token", "child-token"])
        defer { child.stopInBackground() }
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

    @Test func blockAndMutexProfilesOfAContendedProcess() async throws {
        let child = try await ServerProcess.launch(["--contend"])
        defer { child.stopInBackground() }
        try await Task.sleep(for: .milliseconds(500))
        for name in ["block", "mutex"] {
            let response = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/\(name)")
            #expect(response.status == 200, "\(name): \(response.text)")
            #expect(response.header("Content-Disposition") == "attachment; filename=\"\(name)\"")
            let data = try ProfileData(decoding: response.body)
            #expect(data.sampleTypes.map(\.description) == ["contentions/count", "delay/nanoseconds"])
            let contentions = data.samples.map { $0.values[0] }.reduce(0, +)
            #expect(contentions > 0, "\(name)")
            let text = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/\(name)?debug=1")
            #expect(text.header("Content-Type") == "text/plain; charset=utf-8")
            let header = name == "block" ? "--- contention:\n" : "--- mutex:\n"
            #expect(text.text.hasPrefix(header), "\(text.text.prefix(200))")
        }
        let block = try ProfileData(
            decoding: try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/block").body
        )
        #expect(Fixtures.stacks(block).contains { $0.contains { $0.contains("contendedWaitSite") } })

        let index = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/")
        let blockRow = try #require(index.text.split(separator: "\n").first { $0.contains("./block?debug=1") })
        #expect(!blockRow.hasPrefix("<tr><td>0</td>"), "the index counts the block records: \(blockRow)")

        if GoPprof.isAvailable {
            let top = try await GoPprof.run(["-top", "http://127.0.0.1:\(child.port)/debug/pprof/block"])
            #expect(top.status == 0, "\(top.stderr)")
            #expect(top.stdout.contains("contendedWaitSite"), "\(top.stdout)")
        }
    }

    /// godeltaprof's endpoints: each request gets what changed since the previous one.
    @Test func deltaEndpointsServeWhatChangedSinceTheirPreviousRequest() async throws {
        let child = try await ServerProcess.launch(["--contend", "--allocate"])
        defer { child.stopInBackground() }
        try await Task.sleep(for: .milliseconds(500))
        func contentions(_ data: ProfileData) -> Int64 { data.samples.map { $0.values[0] }.reduce(0, +) }

        let first = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/delta_block")
        #expect(first.status == 200, "\(first.text)")
        #expect(first.header("Content-Disposition") == "attachment; filename=\"block.pprof.gz\"")
        let firstBlock = try ProfileData(decoding: first.body)
        try await Task.sleep(for: .milliseconds(500))
        let secondBlock = try ProfileData(
            decoding: try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/delta_block").body
        )
        let cumulative = try ProfileData(
            decoding: try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/block").body
        )
        #expect(contentions(firstBlock) > 0 && contentions(secondBlock) > 0)
        // The two deltas add up to no more than the cumulative profile taken after them.
        #expect(contentions(firstBlock) + contentions(secondBlock) <= contentions(cumulative))
        #expect(contentions(secondBlock) < contentions(cumulative))

        let mutex = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/delta_mutex")
        #expect(mutex.status == 200 && mutex.header("Content-Disposition") == "attachment; filename=\"mutex.pprof.gz\"")
        #expect(contentions(try ProfileData(decoding: mutex.body)) > 0)

        let heap = try ProfileData(
            decoding: try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/delta_heap").body
        )
        #expect(heap.sampleTypes.map(\.type) == ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"])
        #expect((heap.total(of: "inuse_space") ?? 0) >= 24 << 20, "32 MiB stay in use (retainHeapForProfiling)")

        let index = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/")
        #expect(index.text.contains("./delta_heap?debug=1"))

        if GoPprof.isAvailable {
            // Block events are where the waiter waited; mutex events where the holder unlocked.
            for (name, site) in [("delta_block", "contendedWaitSite"), ("delta_mutex", "startContention")] {
                let top = try await GoPprof.run(["-top", "http://127.0.0.1:\(child.port)/debug/pprof/\(name)"])
                #expect(top.status == 0, "\(name): \(top.stderr)")
                #expect(top.stdout.contains(site), "\(name): \(top.stdout)")
            }
            let heapTop = try await GoPprof.run([
                "-top", "-sample_index=inuse_space", "http://127.0.0.1:\(child.port)/debug/pprof/delta_heap",
            ])
            #expect(heapTop.status == 0, "\(heapTop.stderr)")
            #expect(heapTop.stdout.contains("retainHeapForProfiling"), "\(heapTop.stdout)")
        }
    }
}
