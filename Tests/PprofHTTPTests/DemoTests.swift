import Foundation
import Pprof
import Synchronization
import Testing

/// `pprof-demo`, run as users run it: as a child process (it links PprofHooks, which the test
/// process does not), its files decoded, its summary read, and `go tool pprof` pointed at its files
/// and at `pprof-demo serve`.
@Suite struct DemoTests {
    static let demoURL = ServerProcess.productURL("pprof-demo")

    static let profileFiles = [
        "cpu.pb.gz", "goroutine.pb.gz", "heap.pb.gz", "allocs.pb.gz", "threadcreate.pb.gz", "block.pb.gz",
        "mutex.pb.gz", "demo.connections.pb.gz", "delta_heap.pb.gz", "delta_block.pb.gz", "delta_mutex.pb.gz",
    ]

    @Test func writesEveryProfileAndSummarizesThem() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-demo-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try await Self.runDemo(["--seconds", "3", "--output", directory.path])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let summary = run.stdout

        var profiles: [String: ProfileData] = [:]
        for file in Self.profileFiles {
            let bytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent(file)))
            profiles[file] = try ProfileData(decoding: bytes)
        }
        let dump1 = try String(contentsOf: directory.appendingPathComponent("goroutine-debug1.txt"), encoding: .utf8)
        let dump2 = try String(contentsOf: directory.appendingPathComponent("goroutine-debug2.txt"), encoding: .utf8)
        #expect(dump1.hasPrefix("goroutine profile: total "))
        #expect(dump2.contains("\"standby-1\""), "\(dump2.prefix(2000))")

        // CPU: the routes' hot functions, under their route labels.
        let cpu = try #require(profiles["cpu.pb.gz"])
        let cpuSamples = cpu.resolvedSamples()
        for (route, function) in [
            ("/search", "SearchIndex.score"), ("/render", "Renderer."), ("/login", "PasswordHasher.mix"),
        ] {
            #expect(
                cpuSamples.contains {
                    $0.label("route") == route && $0.functionNames.contains { $0.contains(function) }
                },
                "no \(function) sample labelled route=\(route)"
            )
        }
        // Heap: the cache's bodies are in use, allocated at ResponseCache.store's caller.
        let heap = try #require(profiles["heap.pb.gz"])
        let inUse = try #require(heap.sampleTypeIndex(named: "inuse_space"))
        #expect(
            heap.resolvedSamples().contains {
                $0.values[inUse] > 0 && $0.functionNames.contains { $0.contains("DemoService.search") }
            }
        )
        // Contention: requests wait for the session lock the sweeper holds.
        #expect(Self.stacks(profiles["block.pb.gz"]).contains { $0.contains { $0.contains("SessionStore.touch") } })
        #expect(
            Self.stacks(profiles["mutex.pb.gz"]).contains { $0.contains { $0.contains("SessionStore.sweepExpired") } }
        )
        // Threads: the parked standby threads, and the rotator's short-lived threads.
        let threads = try #require(profiles["goroutine.pb.gz"])
        let standby = threads.resolvedSamples().filter {
            $0.functionNames.contains { $0.contains("parkUntilShutdown") }
        }
        #expect(standby.map { $0.values[0] }.reduce(0, +) == 3)
        #expect(
            Self.stacks(profiles["threadcreate.pb.gz"]).contains { $0.contains { $0.contains("LogRotator.rotate") } }
        )
        // The custom profile: one open connection per client, opened by the pool.
        let connections = try #require(profiles["demo.connections.pb.gz"])
        #expect(connections.total(at: 0) == 4)
        #expect(Self.stacks(connections).allSatisfy { $0.contains { $0.contains("ConnectionPool.open") } })
        // The deltas cover the run: allocations, blocking and lock waits happened during it.
        #expect((profiles["delta_heap.pb.gz"]?.total(of: "alloc_space") ?? 0) > 0)
        #expect((profiles["delta_block.pb.gz"]?.total(of: "delay") ?? 0) > 0)
        #expect((profiles["delta_mutex.pb.gz"]?.total(of: "delay") ?? 0) > 0)

        // The summary names what the profiles say.
        for expected in [
            "SearchIndex.score", "PasswordHasher.mix", "/search", "/render", "/login", "MiB in use", "SessionStore",
            "standby-N", "demo.connections: 4 open connections", "go tool pprof -top",
        ] {
            #expect(summary.contains(expected), "summary lacks \(expected):\n\(summary)")
        }
        #expect(!summary.contains("FAILED"), "\(summary)")

        guard GoPprof.isAvailable else { return }
        // Plain `-top`: go tool pprof keeps the profile's Swift names (it would re-symbolize the
        // executable, and show `[pprof-demo]`, if a frame there had no name).
        let goCPU = try await GoPprof.run(["-top", directory.appendingPathComponent("cpu.pb.gz").path])
        #expect(goCPU.status == 0, "\(goCPU.stderr)")
        #expect(goCPU.stdout.contains("pprof_demo.SearchIndex.score"), "\(goCPU.stdout.prefix(3000))")
        #expect(!goCPU.stdout.contains("[pprof-demo]"), "names lost: \(goCPU.stdout.prefix(3000))")
        let goHeap = try await GoPprof.run(["-top", directory.appendingPathComponent("heap.pb.gz").path])
        #expect(goHeap.status == 0, "\(goHeap.stderr)")
        #expect(goHeap.stdout.contains("inuse_space"), "\(goHeap.stdout.prefix(3000))")
    }

    @Test(.enabled(if: GoPprof.isAvailable, "needs go tool pprof"))
    func serveAnswersGoToolPprof() async throws {
        let demo = try await ServerProcess.launch(["serve", "--port", "0"], executable: Self.demoURL)
        let base = "http://127.0.0.1:\(demo.port)/debug/pprof"

        // The heap first: it loads the symbol tables, which a debug build on a busy machine may take
        // longer to do than the 1 s grace `go tool pprof` gives `profile?seconds=2` (its timeout is
        // 1.5 × seconds); `-timeout` widens that grace too.
        let heap = try await GoPprof.run(["-top", "\(base)/heap"])
        #expect(heap.status == 0, "\(heap.stderr)")
        #expect(heap.stdout.contains("inuse_space"), "\(heap.stdout.prefix(3000))")
        let cpu = try await GoPprof.run(["-timeout", "30", "-top", "\(base)/profile?seconds=2"])
        #expect(cpu.status == 0, "\(cpu.stderr)")
        #expect(cpu.stdout.contains("Duration: 2"), "\(cpu.stdout.prefix(3000))")
        #expect(cpu.stdout.contains("pprof_demo."), "\(cpu.stdout.prefix(3000))")
        #expect(!cpu.stdout.contains("[pprof-demo]"), "names lost: \(cpu.stdout.prefix(3000))")

        // SIGTERM stops the service and the server cleanly.
        demo.process.terminate()
        let stopped = await demo.stop(patience: 20)
        #expect(!stopped.killed)
        #expect(demo.process.terminationStatus == 0)
    }

    static func stacks(_ profile: ProfileData?) -> [[String]] {
        profile?.resolvedSamples().map(\.functionNames) ?? []
    }

    struct Run: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the demo to its end, on a thread of its own.
    static func runDemo(_ arguments: [String]) async throws -> Run {
        try await runToEnd(demoURL, arguments)
    }

    /// Runs `executable` to its end, on a thread of its own, collecting its output.
    static func runToEnd(_ executable: URL, _ arguments: [String]) async throws -> Run {
        try await ServerProcess.onOwnThread {
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            var environment = ProcessInfo.processInfo.environment
            environment["SWIFT_BACKTRACE"] = "enable=no"
            process.environment = environment
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let errHandle = err.fileHandleForReading
            let stderr = Mutex<Data>(Data())
            let drained = DispatchSemaphore(value: 0)
            Thread {
                let data = errHandle.readDataToEndOfFile()
                stderr.withLock { $0 = data }
                drained.signal()
            }.start()
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            drained.wait()
            process.waitUntilExit()
            return Run(
                status: process.terminationStatus,
                stdout: String(decoding: stdout, as: UTF8.self),
                stderr: String(decoding: stderr.withLock { $0 }, as: UTF8.self)
            )
        }
    }
}
