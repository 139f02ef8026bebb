import Foundation
import Glibc
import Pprof
import PprofServer
import Synchronization

/// What the debug server costs: threads and memory when started, CPU while idle, request latency
/// over a keep-alive connection, and a 50-client burst (wall time, memory).
enum HTTPBenchmarks {
    static func run() throws {
        let threadsBefore = taskCount()
        let residentBefore = residentBytes()
        let cpuBefore = processCPUSeconds()
        let server = try PprofServer.start(configuration: PprofServer.Configuration(port: 0))
        let items = Profile(name: "bench.http.items")
        for item in 0..<1000 { items.add(item) }
        let startCost = processCPUSeconds() - cpuBefore
        print(
            "start: +\(taskCount() - threadsBefore) threads, +\((residentBytes() - residentBefore) >> 10) KiB RSS, \(String(format: "%.1f", startCost * 1000)) ms CPU"
        )

        let idleStart = processCPUSeconds()
        Thread.sleep(forTimeInterval: 2)
        print("idle 2 s: \(String(format: "%.3f", (processCPUSeconds() - idleStart) * 1000)) ms CPU")

        let connection = try KeepAliveConnection(port: server.port)
        // The first CPU profile of a process loads the symbol tables its stacks need; later ones
        // only encode. Reported beyond the 1 s of profiling.
        for attempt in ["first", "second"] {
            let start = DispatchTime.now().uptimeNanoseconds
            let bytes = try connection.get("/debug/pprof/profile?seconds=1")
            let beyond = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 - 1000
            print(
                "\(attempt) CPU profile (1 s): answered \(String(format: "%.0f", beyond)) ms after the second ended, \(bytes) bytes"
            )
        }
        for (label, target, rounds) in [
            ("cmdline", "/debug/pprof/cmdline", 2000),
            ("index", "/debug/pprof/", 500),
            ("custom profile (1000 values), debug=0", "/debug/pprof/bench.http.items", 200),
            ("custom profile, debug=1", "/debug/pprof/bench.http.items?debug=1", 200),
            ("symbol, 1 address", "/debug/pprof/symbol?0x1", 2000),
        ] {
            _ = try connection.get(target)  // warm (symbol tables, buffers)
            var samples: [Double] = []
            var bytes = 0
            for _ in 0..<rounds {
                let start = DispatchTime.now().uptimeNanoseconds
                bytes = try connection.get(target)
                samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
            }
            samples.sort()
            let median = samples[samples.count / 2]
            let p99 = samples[samples.count * 99 / 100]
            print(
                "\(label): median \(String(format: "%.0f", median)) µs, p99 \(String(format: "%.0f", p99)) µs, \(bytes) bytes"
            )
        }

        let residentBeforeBurst = residentBytes()
        let clients = 50
        let start = DispatchTime.now().uptimeNanoseconds
        let group = DispatchGroup()
        let failures = Mutex(0)
        for _ in 0..<clients {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let connection = try KeepAliveConnection(port: server.port)
                    _ = try connection.get("/debug/pprof/bench.http.items")
                } catch {
                    failures.withLock { $0 += 1 }
                }
            }.start()
        }
        group.wait()
        let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        print(
            "burst of \(clients) clients (one profile each): \(String(format: "%.0f", wall)) ms wall, RSS +\((residentBytes() - residentBeforeBurst) >> 10) KiB, \(failures.withLock { $0 }) failures"
        )
    }

    static func taskCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
    }

    static func residentBytes() -> Int { ProcessStatus.bytes("VmRSS") }

    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}
