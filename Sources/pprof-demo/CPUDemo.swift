import Foundation
import Pprof

/// `pprof-demo cpu [path] [seconds]`: profiles a small CPU-bound workload on two threads and
/// writes the CPU profile to `path` (default `cpu.pb.gz`). Read it with
/// `go tool pprof -top cpu.pb.gz`.
enum CPUDemo {
    static func run(_ arguments: [String]) throws {
        let path = arguments.first ?? "cpu.pb.gz"
        let seconds = arguments.dropFirst().first.flatMap(Double.init) ?? 3
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw PprofError.invalidArgument("cannot create \(path)")
        }
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? file.close() }

        try CPUProfile.start(writingTo: file, rate: 250)
        let deadline = Date().addingTimeInterval(seconds)
        let primes = Thread {
            var found = 0
            while Date() < deadline { found &+= countPrimes(below: 200_000) }
            print("primes thread: \(found)")
        }
        let hashes = Thread {
            let block = [UInt8]((0..<65_536).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            var sum: UInt32 = 0
            while Date() < deadline { sum &+= checksum(of: block) }
            print("checksum thread: \(sum)")
        }
        primes.start()
        hashes.start()
        while !primes.isFinished || !hashes.isFinished { usleep(10_000) }
        let summary = try CPUProfile.stop()
        if let summary {
            print(
                "wrote \(path): engine \(summary.engine), \(summary.samples) samples, \(summary.lostSamples) lost"
            )
        }
    }

    /// Trial division: deliberately CPU-bound.
    @inline(never)
    static func countPrimes(below limit: Int) -> Int {
        var count = 0
        var candidate = 2
        while candidate < limit {
            var divisor = 2
            var prime = true
            while divisor * divisor <= candidate {
                if candidate % divisor == 0 {
                    prime = false
                    break
                }
                divisor += 1
            }
            if prime { count += 1 }
            candidate += 1
        }
        return count
    }

    /// Adler-32 over a block.
    @inline(never)
    static func checksum(of block: [UInt8]) -> UInt32 {
        var a: UInt32 = 1
        var b: UInt32 = 0
        for byte in block {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        return b << 16 | a
    }
}
