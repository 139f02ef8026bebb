import Foundation
import Logging
import Pprof
import PprofPyroscope
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The Pyroscope exporter in a process that links PprofHooks, pushing to the tests' receiver.
///
/// `pyroscope-push <dir> server=URL [api=push|ingest] [interval=S] [seconds=S] [workload=cpu|memory]`:
/// runs the exporter while the workload runs, shuts it down gracefully, and prints its statistics
/// and the workload's measurements as JSON. The memory workload (allocations, block and mutex
/// events at full rate) then writes the cumulative heap, block and mutex profiles to `<dir>`, for
/// the deltas to be summed against.
///
/// `pyroscope-cpu-reference <path> [seconds=S]`: the cpu workload under one CPU profile for the
/// same time, written to `<path>`.
enum PyroscopeScenarios {
    static func push(_ arguments: [String]) throws {
        guard let directory = arguments.first else { throw ScenarioError.usage("missing directory") }
        let options = keyValues(arguments.dropFirst())
        guard let server = options["server"] else { throw ScenarioError.usage("missing server=") }
        let seconds = Double(options["seconds"] ?? "5") ?? 5
        var configuration = PyroscopeConfiguration(
            serverURL: server,
            applicationName: "pushtest{env=test}",
            tags: ["region": "local"],
            api: PyroscopeConfiguration.API(rawValue: options["api"] ?? "push") ?? .push,
            uploadInterval: .milliseconds(Int64((Double(options["interval"] ?? "1") ?? 1) * 1000))
        )
        configuration.shutdownDeadline = .seconds(10)
        let workload = options["workload"] ?? "cpu"
        if workload == "memory" {
            BlockProfile.rate = 1
            MutexProfile.fraction = 1
            configuration.profiles = [.heap, .allocs, .block, .mutex, .goroutine]
        } else {
            configuration.profiles = [.cpu]
        }
        let exporter = try PyroscopeExporter(configuration: configuration, logger: Logger(label: "pyroscope-test"))
        let group = ServiceGroup(services: [exporter], logger: Logger(label: "pyroscope-test-group"))
        let finished = DispatchSemaphore(value: 0)
        let failure = Mutex<String?>(nil)
        Task {
            do { try await group.run() } catch { failure.withLock { $0 = "\(error)" } }
            finished.signal()
        }
        while !exporter.statistics.started { usleep(20_000) }

        var results: [String: Any] = [:]
        if workload == "memory" {
            runMemoryWorkload(seconds: seconds)
        } else {
            let (split, _) = runCPUWorkload(seconds: seconds)
            results["threadCPUNanos"] = split
        }
        usleep(200_000)
        Task { await group.triggerGracefulShutdown() }
        finished.wait()
        if let failure = failure.withLock({ $0 }) { throw ScenarioError.usage("exporter failed: \(failure)") }
        if workload == "memory" {
            for kind in ["heap", "block", "mutex"] {
                let buffer = ProfileBuffer()
                try Profile.lookup(kind)!.write(to: buffer, debug: 0)
                try Data(buffer.bytes).write(to: URL(fileURLWithPath: "\(directory)/\(kind).pb.gz"))
            }
        }
        let statistics = exporter.statistics
        results["statistics"] = [
            "cycles": statistics.cycles, "profilesTaken": statistics.profilesTaken,
            "profilesUploaded": statistics.profilesUploaded, "profilesDropped": statistics.profilesDropped,
            "uploads": statistics.uploads, "failedRequests": statistics.failedRequests,
        ]
        CPUScenarios.printJSON(results)
    }

    static func cpuReference(_ arguments: [String]) throws {
        guard let path = arguments.first else { throw ScenarioError.usage("missing path") }
        let seconds = Double(keyValues(arguments.dropFirst())["seconds"] ?? "5") ?? 5
        let file = try CPUScenarios.createFile(path)
        try CPUProfile.start(writingTo: file, rate: 100)
        let (split, _) = runCPUWorkload(seconds: seconds)
        try CPUProfile.stop()
        try file.close()
        CPUScenarios.printJSON(["threadCPUNanos": split])
    }

    private static func keyValues(_ arguments: ArraySlice<String>) -> [String: String] {
        var values: [String: String] = [:]
        for argument in arguments {
            let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        return values
    }

    // MARK: - CPU: one thread spends about 70 % of its CPU in pushHotSpot and 30 % in pushWarmSpot.

    /// Returns the thread CPU time spent in each function (hot, warm).
    static func runCPUWorkload(seconds: Double) -> (split: [String: Int64], total: Int64) {
        let split = Mutex<[String: Int64]>([:])
        let deadline = monotonicSeconds() + seconds
        _ = CPUScenarios.runThreads(1) { _ in
            var hot: Int64 = 0
            var warm: Int64 = 0
            var seed: UInt64 = 7
            while monotonicSeconds() < deadline {
                var start = threadCPUNanos()
                seed = pushHotSpot(seed, rounds: 70_000)
                hot += threadCPUNanos() - start
                start = threadCPUNanos()
                seed = pushWarmSpot(seed, rounds: 30_000)
                warm += threadCPUNanos() - start
            }
            blackHole(seed)
            split.withLock { $0 = ["pushHotSpot": hot, "pushWarmSpot": warm] }
        }
        let result = split.withLock { $0 }
        return (result, result.values.reduce(0, +))
    }

    @inline(never) static func pushHotSpot(_ seed: UInt64, rounds: Int) -> UInt64 {
        var x = seed
        for i in 0..<rounds { x = (x ^ UInt64(i)) &* 0x9E37_79B9_7F4A_7C15 }
        return x
    }

    @inline(never) static func pushWarmSpot(_ seed: UInt64, rounds: Int) -> UInt64 {
        var x = seed
        for i in 0..<rounds { x = x &+ (x << 7) ^ UInt64(i &* 31) }
        return x
    }

    // MARK: - Memory: allocations kept and freed, and contended locks, for `seconds`.

    static func runMemoryWorkload(seconds: Double) {
        let deadline = monotonicSeconds() + seconds
        let kept = UnsafeMutableBufferPointer<UnsafeMutableRawPointer?>.allocate(capacity: 200)
        let churn = UnsafeMutableBufferPointer<UnsafeMutableRawPointer?>.allocate(capacity: 50)
        let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var round = 0
        while monotonicSeconds() < deadline {
            if round < 4 {
                DeltaScenarios.deltaHeapSiteA(
                    UnsafeMutableBufferPointer(rebasing: kept[(round * 50)..<(round * 50 + 50)]),
                    size: 64 * 1024
                )
            }
            DeltaScenarios.deltaHeapSiteB(churn, size: 96 * 1024)
            DeltaScenarios.deltaHeapFree(churn)
            DeltaScenarios.contend(
                mutex,
                rounds: 5,
                wait: DeltaScenarios.waitSiteB,
                release: DeltaScenarios.releaseSiteB
            )
            round += 1
            usleep(100_000)
        }
    }
}
