import Foundation
import Testing

/// The soak's short CI version: `pprof-bench soak` for 30 s of load per service (debug build, so
/// throughput and latency ratios are reported, not judged; the full run is `Benchmarks/soak.sh`).
/// What must hold at any speed: no errors, no EINTR surfacing, every scrape decoded, both services
/// shut down cleanly, CPU samples labelled by route, memory flat after warm-up.
@Suite struct SoakTests {
    struct Summary: Decodable {
        struct Service: Decodable {
            var requestsPerSecond: Double
            var errors: Int
            var interruptedCalls: Int
            var databaseFailures: Int
            var exit: String
            var rssAfterWarmUpMiB: Double
            var rssMaxMiB: Double
        }

        struct Scrapes: Decodable {
            var cpuWindows: Int
            var cpuSamples: Int64
            var samplesByRoute: [String: Int64]
            var profiles: [String: Int]
            var failures: [String]
        }

        var plain: Service
        var profiled: Service
        var scrapes: Scrapes
    }

    static var wrkInstalled: Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
            access("\($0)/wrk", X_OK) == 0
        }
    }

    @Test(.enabled(if: wrkInstalled, "needs wrk (apt-get install -y wrk; .ci/run installs it)"))
    func hummingbirdServiceUnderLoadWithEverythingOn() throws {
        let bench = ChildProcess.helperURL.deletingLastPathComponent().appendingPathComponent("pprof-bench")
        let result = try ChildProcess.run(
            "soak",
            environment: ["SOAK_SECONDS": "30", "SOAK_SEGMENT": "10", "SOAK_CONNECTIONS": "16"],
            executable: bench
        )
        print(result.stdout)
        #expect(result.status == 0 && !result.crashed, "\(result.stderr.suffix(3_000))")
        let line = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("soak-json ") })
        let summary = try JSONDecoder().decode(Summary.self, from: Data(line.dropFirst("soak-json ".count).utf8))

        for (name, service) in [("plain", summary.plain), ("profiled", summary.profiled)] {
            #expect(service.exit == "exit 0", "\(name)")
            #expect(service.requestsPerSecond > 50, "\(name)")
            #expect(service.errors == 0, "\(name)")
            #expect(service.interruptedCalls == 0, "\(name)")
            #expect(service.databaseFailures == 0, "\(name)")
            // Flat after warm-up: a leak of even 1 KiB per request would grow it by tens of MiB.
            #expect(
                service.rssMaxMiB - service.rssAfterWarmUpMiB <= 8 + service.rssAfterWarmUpMiB * 0.1,
                "\(name): \(service.rssAfterWarmUpMiB) → \(service.rssMaxMiB) MiB"
            )
        }

        let scrapes = summary.scrapes
        #expect(scrapes.failures.isEmpty, "\(scrapes.failures)")
        // Three 10 s segments of the profiled service: three CPU windows and three of every other kind.
        #expect(scrapes.cpuWindows == 3)
        for kind in ["profile", "heap", "allocs", "block", "mutex", "goroutine", "threadcreate"] {
            #expect(scrapes.profiles[kind] == 3, "\(kind)")
        }
        #expect(scrapes.cpuSamples > 100)
        for route in ["/orders", "/prices", "/inventory", "/query"] {
            #expect((scrapes.samplesByRoute[route] ?? 0) > 0, "\(route): \(scrapes.samplesByRoute)")
        }
        // JSON round trips of 10–50 items are the heaviest route.
        let heaviest = scrapes.samplesByRoute.max { $0.value < $1.value }?.key
        #expect(heaviest == "/orders", "\(scrapes.samplesByRoute)")
    }
}
