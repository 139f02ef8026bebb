import Foundation
import Pprof
import Testing

/// `heap` and `allocs` over HTTP, from a child process that links PprofHooks (the test process
/// does not, so there they must fail with a clear message).
@Suite struct HeapProfileEndpointTests {
    static let heapTypes = ["alloc_objects/count", "alloc_space/bytes", "inuse_objects/count", "inuse_space/bytes"]

    @Test func heapAndAllocsOfAProcessWithTheHooks() async throws {
        let child = try await ServerProcess.launch(["--allocate"])
        defer { child.stopInBackground() }
        let heap = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/heap?gc=1", timeout: .seconds(60))
        #expect(heap.status == 200, "\(heap.text)")
        #expect(heap.header("Content-Disposition") == "attachment; filename=\"heap\"")
        let data = try ProfileData(decoding: heap.body)
        #expect(data.sampleTypes.map(\.description) == Self.heapTypes)
        #expect(data.defaultSampleType == "", "tools pick inuse_space")
        let inUse = try #require(data.sampleTypeIndex(named: "inuse_space"))
        let retained = data.resolvedSamples()
            .filter { $0.functionNames.contains { $0.contains("retainHeapForProfiling") } }
            .map { $0.values[inUse] }
            .reduce(0, +)
        // 32 MiB retained; sampled at 512 KiB, the estimate is close (the heap tests check accuracy).
        #expect(retained > 16 << 20 && retained < 64 << 20, "\(retained) bytes in use at the retaining site")

        let allocs = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/allocs")
        #expect(allocs.status == 200)
        #expect(try ProfileData(decoding: allocs.body).defaultSampleType == "alloc_space")

        let text = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/heap?debug=1")
        #expect(text.header("Content-Type") == "text/plain; charset=utf-8")
        #expect(text.text.hasPrefix("heap profile: "), "\(text.text.prefix(100))")

        let index = try await RawHTTPClient.fetch(port: child.port, "/debug/pprof/")
        let heapRow = try #require(index.text.split(separator: "\n").first { $0.contains("./heap?debug=1") })
        #expect(!heapRow.hasPrefix("<tr><td>0</td>"), "the index counts heap records: \(heapRow)")

        // What was allocated during one second: the churning site, and not the retained blocks.
        let delta = try await RawHTTPClient.fetch(
            port: child.port,
            "/debug/pprof/allocs?seconds=1",
            timeout: .seconds(60)
        )
        #expect(delta.status == 200, "\(delta.text)")
        let deltaData = try ProfileData(decoding: delta.body)
        let allocSpace = try #require(deltaData.sampleTypeIndex(named: "alloc_space"))
        var churned: Int64 = 0
        var retainedAgain: Int64 = 0
        for sample in deltaData.resolvedSamples() {
            if sample.functionNames.contains(where: { $0.contains("churnAllocations") }) {
                churned += sample.values[allocSpace]
            }
            if sample.functionNames.contains(where: { $0.contains("retainHeapForProfiling") }) {
                retainedAgain += sample.values[allocSpace]
            }
        }
        #expect(churned > 10 << 20, "about 100 MiB a second churned: \(churned) bytes in the delta")
        #expect(retainedAgain == 0)

        if GoPprof.isAvailable {
            let top = try await GoPprof.run(["-top", "http://127.0.0.1:\(child.port)/debug/pprof/heap"])
            #expect(top.status == 0, "\(top.stderr)")
            #expect(top.stdout.contains("inuse_space"), "\(top.stdout)")
            #expect(top.stdout.contains("retainHeapForProfiling"), "\(top.stdout)")
        }
    }

    @Test func withoutTheHooksHeapSaysWhy() async throws {
        try await withServer { server in
            for name in ["heap", "allocs"] {
                let response = try await RawHTTPClient.fetch(port: server.port, "/debug/pprof/\(name)")
                #expect(response.status == 500)
                #expect(response.header("X-Go-Pprof") == "1")
                #expect(
                    response.text.hasPrefix("Could not write profile \(name): \(name) profile: "),
                    "\(response.text)"
                )
                #expect(
                    response.text.contains("PprofHooks") || response.text.contains("LD_PRELOAD"),
                    "\(response.text)"
                )
            }
        }
    }
}
