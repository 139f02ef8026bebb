import CPprof
import Foundation
import Logging
@_spi(Testing) import Pprof
import PprofPyroscope
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `pprof-bench push`: the Pyroscope exporter with every profile on, pushing every 10 s to a
/// loopback sink, beside a demo-sized service (two threads that compute, allocate and share a
/// lock). Rounds without and with the exporter alternate (ABBA); per round: the service's throughput,
/// and the CPU time of every thread that is not the service's or the sink's (the exporter's
/// collector, the CPU profile's reader, the HTTP client's event loops), from each thread's
/// schedstat. Also the heap the process holds before, after and between cycles.
enum PushBenchmarks {
    static let roundSeconds = 40.0
    static let rounds = 3

    static func run() throws {
        let sink = try Sink()
        HeapProfile.sampleRate = 512 * 1024
        BlockProfile.rate = 10_000
        MutexProfile.fraction = 10
        var configuration = PyroscopeConfiguration(
            serverURL: "http://127.0.0.1:\(sink.port)",
            applicationName: "bench{env=local}",
            uploadInterval: .seconds(10)
        )
        configuration.shutdownDeadline = .seconds(5)
        // `PYROSCOPE_PROFILES=heap,block` (the exporter's own variable) measures a subset.
        if ProcessInfo.processInfo.environment["PYROSCOPE_PROFILES"] != nil,
            let profiles = try PyroscopeConfiguration(
                environment: ProcessInfo.processInfo.environment.merging(["PYROSCOPE_SERVER_ADDRESS": "http://unused"])
                {
                    $1
                }
            )?.profiles
        {
            configuration.profiles = profiles
        }

        var without: [Round] = []
        var with: [Round] = []
        var cycles: [PyroscopeExporterStatistics] = []
        var heapGrowth: [Int] = []
        for round in 0..<(2 * rounds) {
            // Without, with, with, without, …: a drift of the machine's speed over the run
            // cancels out of the pairs instead of always favouring the rounds that come first.
            if round % 4 == 0 || round % 4 == 3 {
                without.append(measure(sink: sink) {})
            } else {
                let (result, statistics, growth) = try exporterRound(configuration, sink: sink)
                with.append(result)
                cycles.append(statistics)
                heapGrowth.append(growth)
            }
        }
        // The same with nothing listening at the server's address: every upload fails and is
        // retried, which must cost the service no more than a healthy backend does.
        var down = configuration
        down.serverURL = "http://127.0.0.1:\(try closedPort())"
        // Three pairs, alternating as above: one pair is as noisy as a single round (0.96–1.03).
        var downRatios: [Double] = []
        var downStatistics: [PyroscopeExporterStatistics] = []
        for pair in 0..<3 {
            var downWithout = pair % 2 == 0 ? nil : measure(sink: sink) {}
            let downWith = try exporterRound(down, sink: sink)
            downStatistics.append(downWith.1)
            if downWithout == nil { downWithout = measure(sink: sink) {} }
            downRatios.append(downWith.0.iterationsPerSecond / downWithout!.iterationsPerSecond)
        }

        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let downRatio = median(downRatios)
        let throughput = median(zip(with, without).map { $0.iterationsPerSecond / $1.iterationsPerSecond })
        let perServiceCPU = median(
            zip(with, without).map { $0.iterationsPerServiceCPUSecond / $1.iterationsPerServiceCPUSecond }
        )
        let cyclesPerRound = cycles.map { Double($0.cycles) }
        let collection = zip(cycles, cyclesPerRound).map { Double($0.collectionCPUNanos) / max($1, 1) }
        // Per 10 s in steady state: one collection (its own thread's CPU time, measured by the
        // exporter: the queue it runs on may be a pool thread the service also uses, which the
        // per-thread sums leave out) plus 10 s of what runs all the time: the CPU profile's
        // reader (`pprof-cpu`) and the uploader's event loop (`NIO-…`).
        let periodsPerRound = roundSeconds / 10
        let continuous = with.map { round in
            let nanos = round.cpuByThreadName.filter { $0.key == "pprof-cpu" || $0.key.hasPrefix("NIO-") }.values
            return Double(nanos.reduce(0, +)) / periodsPerRound
        }
        let perCycle = zip(collection, continuous).map { $0 + $1 }
        let uploadBytes = cycles.map { Double($0.bytesUploaded) / Double(max($0.uploads, 1)) }
        print(
            "rounds of \(Int(roundSeconds)) s, without and with the exporter in turn, ABBA (\(rounds) each), upload every 10 s"
        )
        for (index, (a, b)) in zip(without, with).enumerated() {
            print(
                String(
                    format:
                        "  round %d: throughput without vs with %.0f vs %.0f it/s (%.4f; per service CPU second %.4f); threads other than the service's %.1f vs %.1f ms; exporter cycles %d",
                    index + 1,
                    a.iterationsPerSecond,
                    b.iterationsPerSecond,
                    b.iterationsPerSecond / a.iterationsPerSecond,
                    b.iterationsPerServiceCPUSecond / a.iterationsPerServiceCPUSecond,
                    Double(a.otherThreadsCPUNanos) / 1e6,
                    Double(b.otherThreadsCPUNanos) / 1e6,
                    cycles[index].cycles
                )
            )
            for (name, nanos) in b.cpuByThreadName.sorted(by: { $0.value > $1.value }).prefix(6) {
                print(String(format: "      %-20@ %8.1f ms", name as NSString, Double(nanos) / 1e6))
            }
        }
        print(
            String(
                format:
                    "service throughput with exporter / without: %.4f per wall second, %.4f per second of the service threads' CPU (medians; budget >= 0.99)",
                throughput,
                perServiceCPU
            )
        )
        print(
            String(
                format:
                    "exporter CPU per 10 s cycle: %.1f ms = %.3f%% of one core (median; budget 0.2%%); taking profiles %.1f ms, reader and uploader threads %.1f ms",
                median(perCycle) / 1e6,
                median(perCycle) / 1e8,
                median(collection) / 1e6,
                median(continuous) / 1e6
            )
        )
        print(
            String(
                format:
                    "heap held by the exporter after its first cycles: %.2f MiB (median; budget 4 MiB); upload %.0f KB per request",
                median(heapGrowth.map(Double.init)) / 1_048_576,
                median(uploadBytes) / 1000
            )
        )
        print(
            "uploads \(cycles.map(\.uploads)), dropped \(cycles.map(\.profilesDropped)), failed \(cycles.map(\.failedRequests))"
        )
        print(
            String(
                format:
                    "receiver down (nothing listening): throughput with exporter / without %.4f (median of 3 pairs: %.4f, %.4f, %.4f; budget >= 0.99); uploads %d, failed requests %d, profiles dropped %d",
                downRatio,
                downRatios[0],
                downRatios[1],
                downRatios[2],
                downStatistics.reduce(0) { $0 + $1.uploads },
                downStatistics.reduce(0) { $0 + $1.failedRequests },
                downStatistics.reduce(0) { $0 + $1.profilesDropped }
            )
        )
    }

    /// A round of the service with an exporter running: the round, the exporter's statistics and
    /// the heap it grew by.
    static func exporterRound(
        _ configuration: PyroscopeConfiguration,
        sink: Sink
    ) throws -> (Round, PyroscopeExporterStatistics, Int) {
        let exporter = try PyroscopeExporter(
            configuration: configuration,
            logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
        )
        let group = ServiceGroup(
            services: [exporter],
            logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
        )
        let done = DispatchSemaphore(value: 0)
        Task {
            try? await group.run()
            done.signal()
        }
        while !exporter.statistics.started { usleep(10_000) }
        // `PPROF_BENCH_PUSH_CPU_ENGINE=threadTimer` (with `PYROSCOPE_PROFILES` leaving cpu out):
        // the round's CPU profile is the benchmark's own, on the engine named, to compare engines.
        let engine = ProcessInfo.processInfo.environment["PPROF_BENCH_PUSH_CPU_ENGINE"].flatMap(CPUProfile.Engine.init)
        if let engine {
            var options = CPUProfile.Options()
            options.engine = engine
            try CPUProfile.start(writingTo: ProfileBuffer(), options: options)
        }
        let heapBefore = heapInUse()
        let result = measure(sink: sink) {}
        if engine != nil { _ = try CPUProfile.stop() }
        let growth = heapInUse() - heapBefore
        let statistics = exporter.statistics
        Task { await group.triggerGracefulShutdown() }
        done.wait()
        return (result, statistics, growth)
    }

    /// A loopback port nothing listens on: bound, then closed.
    static func closedPort() throws -> Int {
        let (socket, port) = try boundLoopbackSocket()
        close(socket)
        return port
    }

    /// A TCP socket bound to a free loopback port, and the port.
    static func boundLoopbackSocket() throws -> (socket: Int32, port: Int) {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0
            }
        }
        guard socket >= 0, bound else {
            if socket >= 0 { close(socket) }
            throw PprofError.unavailable("no free loopback port")
        }
        return (socket, Int(UInt16(bigEndian: address.sin_port)))
    }

    struct Round {
        var iterationsPerSecond: Double
        /// Iterations per second of the service threads' own CPU time: what the profiler costs on
        /// them (signal handling, hooks, caches), without the time other load on the machine
        /// takes from them.
        var iterationsPerServiceCPUSecond: Double
        var otherThreadsCPUNanos: Int64
        var cpuByThreadName: [String: Int64]
    }

    /// Runs the service for a round and measures it.
    static func measure(sink: Sink, _ during: () -> Void) -> Round {
        let iterations = Atomic<Int>(0)
        let serviceCPU = Atomic<Int>(0)
        let serviceThreads = Mutex<Set<Int32>>([])
        let before = threadCPU()
        let start = Date()
        let deadline = start.addingTimeInterval(roundSeconds)
        let lock = Mutex<UInt64>(0)
        let workers = (0..<2).map { index in
            Thread {
                serviceThreads.withLock { _ = $0.insert(pp_gettid()) }
                let cpuStart = ContentionBenchmarks.threadCPUNanos()
                var seed = UInt64(index + 1)
                var count = 0
                while Date() < deadline {
                    seed = serviceRequest(seed, lock: lock)
                    count += 1
                }
                iterations.add(count, ordering: .relaxed)
                serviceCPU.add(Int(ContentionBenchmarks.threadCPUNanos() - cpuStart), ordering: .relaxed)
            }
        }
        for worker in workers { worker.start() }
        during()
        while Date() < deadline { usleep(50_000) }
        while workers.contains(where: { !$0.isFinished }) { usleep(10_000) }
        let elapsed = Date().timeIntervalSince(start)
        let after = threadCPU()
        let excluded = serviceThreads.withLock { $0 }.union(sink.threads)
        var byName: [String: Int64] = [:]
        var other: Int64 = 0
        for (tid, entry) in after where !excluded.contains(tid) && tid != pp_gettid() {
            let used = entry.nanos - (before[tid]?.nanos ?? 0)
            other += used
            byName[entry.name, default: 0] += used
        }
        return Round(
            iterationsPerSecond: Double(iterations.load(ordering: .relaxed)) / elapsed,
            iterationsPerServiceCPUSecond: Double(iterations.load(ordering: .relaxed))
                / (Double(serviceCPU.load(ordering: .relaxed)) / 1e9),
            otherThreadsCPUNanos: other,
            cpuByThreadName: byName
        )
    }

    /// One request of the demo-sized service: some computing, a few allocations, a shared lock.
    @inline(never) static func serviceRequest(_ seed: UInt64, lock: borrowing Mutex<UInt64>) -> UInt64 {
        var x = seed
        for i in 0..<2_000 { x = (x ^ UInt64(i)) &* 0x9E37_79B9_7F4A_7C15 }
        let payload = [UInt64](repeating: x, count: 64 + Int(x % 64))
        let total = lock.withLock { state -> UInt64 in
            state = state &+ payload[payload.count / 2]
            return state
        }
        return x ^ total
    }

    /// Every thread's on-CPU nanoseconds (schedstat) and name.
    static func threadCPU() -> [Int32: (nanos: Int64, name: String)] {
        var result: [Int32: (Int64, String)] = [:]
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return [:] }
        for task in tasks {
            guard let tid = Int32(task),
                let schedstat = try? String(contentsOfFile: "/proc/self/task/\(task)/schedstat", encoding: .utf8),
                let nanos = schedstat.split(separator: " ").first.flatMap({ Int64($0) })
            else { continue }
            let name =
                (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            result[tid] = (nanos, name)
        }
        return result
    }

    static func heapInUse() -> Int {
        var info = pp_malloc_info()
        _ = pp_heap_malloc_info(&info)
        return Int(info.uordblks)
    }

    /// A loopback HTTP/1.1 server that reads each request and answers 200, on threads of its own.
    final class Sink: @unchecked Sendable {
        let port: Int
        private let listener: Int32
        private let tids = Mutex<Set<Int32>>([])
        var threads: Set<Int32> { tids.withLock { $0 } }

        init() throws {
            let (listener, port) = try PushBenchmarks.boundLoopbackSocket()
            self.listener = listener
            self.port = port
            guard listen(listener, 16) == 0 else { throw PprofError.unavailable("sink: cannot listen") }
            Thread { [self] in
                tids.withLock { _ = $0.insert(pp_gettid()) }
                while true {
                    let connection = accept(listener, nil, nil)
                    if connection < 0 { continue }
                    Thread { [self] in
                        tids.withLock { _ = $0.insert(pp_gettid()) }
                        serve(connection)
                    }.start()
                }
            }.start()
        }

        private func serve(_ connection: Int32) {
            defer { close(connection) }
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                // Headers, then Content-Length bytes of body.
                var headerEnd: Int?
                while headerEnd == nil {
                    let count = read(connection, &buffer, buffer.count)
                    if count <= 0 { return }
                    pending += buffer[0..<count]
                    headerEnd = pending.indices.dropLast(3).first {
                        pending[$0] == 13 && pending[$0 + 1] == 10 && pending[$0 + 2] == 13 && pending[$0 + 3] == 10
                    }
                }
                let head = String(decoding: pending[0..<headerEnd!], as: UTF8.self).lowercased()
                let length =
                    head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                let total = headerEnd! + 4 + length
                while pending.count < total {
                    let count = read(connection, &buffer, buffer.count)
                    if count <= 0 { return }
                    pending += buffer[0..<count]
                }
                pending.removeFirst(total)
                let response = Array(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/proto\r\nContent-Length: 0\r\n\r\n".utf8
                )
                guard write(connection, response, response.count) == response.count else { return }
            }
        }
    }
}
