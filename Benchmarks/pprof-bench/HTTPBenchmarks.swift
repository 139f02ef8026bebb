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

    static func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0) * 1024
    }

    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

/// One keep-alive HTTP/1.1 connection with blocking reads; bodies framed by Content-Length.
private final class KeepAliveConnection {
    private let fd: Int32
    private var pending: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard fd >= 0, result == 0 else { throw CocoaError(.fileReadUnknown) }
    }

    deinit { close(fd) }

    /// Sends a GET and returns the body size once the whole response has arrived.
    func get(_ target: String) throws -> Int {
        let request = Array("GET \(target) HTTP/1.1\r\nHost: bench\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var headEnd: Int? = nil
        var length = 0
        while true {
            if headEnd == nil, let end = find(Array("\r\n\r\n".utf8)) {
                headEnd = end + 4
                let head = String(decoding: pending[..<end], as: UTF8.self).lowercased()
                let line = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") } ?? ""
                length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            if let headEnd, pending.count >= headEnd + length {
                pending.removeFirst(headEnd + length)
                return length
            }
            var chunk = [UInt8](repeating: 0, count: 256 * 1024)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw CocoaError(.fileReadUnknown) }
            pending += chunk[0..<n]
        }
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard pending.count >= needle.count else { return nil }
        for index in 0...(pending.count - needle.count)
        where pending[index..<index + needle.count].elementsEqual(needle) {
            return index
        }
        return nil
    }
}
