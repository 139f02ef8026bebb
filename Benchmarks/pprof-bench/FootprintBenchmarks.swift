// The profiler's own memory, measured side by side in one run:
// - the symbol tables of every loaded image, with names copied to the heap (as the reader once
//   did) and referenced in the files (now);
// - the profiler's heap and anonymous memory after a demo-like workload has written every
//   profile kind, in two child processes (names copied, names referenced);
// - the resident memory of an idle program with and without the library preloaded.
import CPprof
import Foundation
import Glibc
import Pprof
import PprofBenchSupport
import PprofWorkload

enum FootprintBenchmarks {
    static func run() throws {
        if let mode = ProcessInfo.processInfo.environment["PPROF_BENCH_FOOTPRINT_CHILD"] {
            try everyProfileChild(copiesNames: mode == "copied")
            return
        }
        try symbolTables()
        try everyProfile()
        try idleService()
    }

    // MARK: - Symbol tables

    private static func symbolTables() throws {
        struct Row {
            var name: String
            var symbols: Int
            var copied: Int
            var referenced: Int
            var loaded: Int
            var hasDebugFile: Bool
        }
        var rows: [Row] = []
        for image in LoadedImages.current() where image.path.hasPrefix("/") {
            // 200 addresses spread over the image's functions, as a profile touches some of them.
            let starts = try ImageSymbolizer(path: image.path, debugDirectories: []).allSymbols().map(\.start).sorted()
            let step = max(1, starts.count / 200)
            let addresses = stride(from: 0, to: starts.count, by: step).map { starts[$0] + 1 }
            var sizes: [Int] = []
            var symbols = 0
            var loaded = 0
            var hasDebugFile = false
            for copies in [true, false] {
                let before = heapInUse()
                let symbolizer = try ImageSymbolizer(
                    path: image.path,
                    keepsFileMapped: image.isMainExecutable,
                    copiesSymbolNames: copies
                )
                loaded = heapInUse() - before
                _ = symbolizer.frames(atFileAddresses: addresses)
                sizes.append(heapInUse() - before)
                symbols = symbolizer.symbolTableSize.symbols
                hasDebugFile = symbolizer.debugFilePath != nil
                withExtendedLifetime(symbolizer) {}
            }
            rows.append(
                Row(
                    name: (image.path as NSString).lastPathComponent,
                    symbols: symbols,
                    copied: sizes[0],
                    referenced: sizes[1],
                    loaded: loaded,
                    hasDebugFile: hasDebugFile
                )
            )
        }
        let copied = rows.reduce(0) { $0 + $1.copied }
        let referenced = rows.reduce(0) { $0 + $1.referenced }
        let symbols = rows.reduce(0) { $0 + $1.symbols }
        print(
            "  symbol tables of \(rows.count) loaded images (\(symbols) function symbols, 200 addresses looked up in each), heap held:"
        )
        for row in rows.sorted(by: { $0.copied > $1.copied }).prefix(6) {
            print(
                "    \(row.name): \(row.symbols) symbols, names copied \(mib(row.copied)), referenced \(mib(row.referenced)) (\(mib(row.loaded)) of it before any lookup)"
            )
        }
        print(
            "    all: names copied \(mib(copied)), referenced \(mib(referenced)) "
                + String(
                    format: "(%.2f×; %.1f bytes per symbol)",
                    Double(copied) / Double(max(referenced, 1)),
                    Double(referenced) / Double(max(symbols, 1))
                )
        )
        let plain = rows.filter { !$0.hasDebugFile }
        let debugNames = rows.filter(\.hasDebugFile).map(\.name).joined(separator: ", ")
        print(
            "    without the images that have a separate debug file (\(debugNames.isEmpty ? "none" : debugNames)): names copied "
                + "\(mib(plain.reduce(0) { $0 + $1.copied })), referenced \(mib(plain.reduce(0) { $0 + $1.referenced }))"
        )
    }

    // MARK: - Every profile kind

    private static func everyProfile() throws {
        var results: [String: [String: Int]] = [:]
        for mode in ["copied", "referenced"] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            process.arguments = ["footprint"]
            process.environment = ProcessInfo.processInfo.environment.merging(["PPROF_BENCH_FOOTPRINT_CHILD": mode]) {
                $1
            }
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let data = try output.fileHandleForReading.readToEnd() ?? Data()
            process.waitUntilExit()
            guard
                let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last(where: {
                    $0.hasPrefix("{")
                }),
                let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Int]
            else {
                print("  every profile (\(mode)): the child failed (status \(process.terminationStatus))")
                return
            }
            results[mode] = json
        }
        let copied = results["copied"]!
        let referenced = results["referenced"]!
        print(
            "  after CPU, heap, block and mutex profiling and writing every profile kind (\(referenced["profiles"] ?? 0) profiles):"
        )
        for (key, label) in [("heap", "profiler heap"), ("anonymous", "resident anonymous memory")] {
            print("    \(label): names copied +\(mib(copied[key] ?? 0)), referenced +\(mib(referenced[key] ?? 0))")
        }
        print(
            "    of the heap: \(mib(referenced["heapStarted"] ?? 0)) once the CPU profile started (unwind tables, sample rings), "
                + "\(mib(referenced["heapProfiled"] ?? 0)) once it stopped, the rest writing the profiles (symbols)"
        )
        print("    file descriptors left open: \(referenced["files"] ?? 0)")
    }

    /// A demo-like workload profiled with every kind on; prints what the profiler holds afterwards
    /// beyond what the same workload left before profiling.
    private static func everyProfileChild(copiesNames: Bool) throws {
        Symbolizer.copiesSymbolNames.store(copiesNames, ordering: .relaxed)
        func work() {
            blackHole(runAllocationWorkload(rounds: 3))
            let lock = NSLock()
            let shared = Counter()
            let threads = (0..<4).map { _ in
                Thread {
                    for _ in 0..<2_000 {
                        lock.lock()
                        shared.value = shared.value &* 31 &+ 7
                        lock.unlock()
                    }
                }
            }
            threads.forEach { $0.start() }
            while threads.contains(where: { !$0.isFinished }) { usleep(1_000) }
            blackHole(shared.value)
        }
        work()
        let heapBefore = heapInUse()
        let anonymousBefore = residentAnonymous()
        let filesBefore = openFiles()

        BlockProfile.rate = 10_000
        MutexProfile.fraction = 5
        try CPUProfile.start(writingTo: ProfileBuffer(), rate: 100)
        let heapStarted = heapInUse() - heapBefore
        work()
        try CPUProfile.stop()
        let heapProfiled = heapInUse() - heapBefore
        var written = 0
        for profile in Profile.all {
            for debug in profile.name == "goroutine" ? [0, 1, 2] : [0, 1] {
                try profile.write(to: ProfileBuffer(), debug: debug)
                written += 1
            }
        }
        BlockProfile.rate = 0
        MutexProfile.fraction = 0
        let result = [
            "heap": heapInUse() - heapBefore, "anonymous": residentAnonymous() - anonymousBefore,
            "files": openFiles() - filesBefore, "profiles": written, "heapStarted": heapStarted,
            "heapProfiled": heapProfiled,
        ]
        print(String(decoding: try JSONSerialization.data(withJSONObject: result), as: UTF8.self))
    }

    private final class Counter: @unchecked Sendable {
        var value = 0
    }

    // MARK: - An idle service

    private static func idleService() throws {
        let build = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let program = build.appendingPathComponent("pprof-plain-workload").path
        let library = build.appendingPathComponent("libPprofPreload.so").path
        guard FileManager.default.fileExists(atPath: program), FileManager.default.fileExists(atPath: library) else {
            print("  idle service: build pprof-plain-workload and libPprofPreload.so in this configuration first")
            return
        }
        var without: [(rss: Int, anonymous: Int)] = []
        var with: [(rss: Int, anonymous: Int)] = []
        for _ in 0..<3 {
            without.append(try idleMemory(program, [:]))
            with.append(try idleMemory(program, ["LD_PRELOAD": library]))
        }
        func median(_ values: [Int]) -> Int { values.sorted()[values.count / 2] }
        let rss = (median(without.map(\.rss)), median(with.map(\.rss)))
        let anonymous = (median(without.map(\.anonymous)), median(with.map(\.anonymous)))
        print(
            "  idle program (pprof-plain-workload idle, medians of 3): RSS \(mib(rss.0)) without the library, \(mib(rss.1)) with it preloaded: +\(mib(rss.1 - rss.0)) (budget 1 MiB); anonymous +\(mib(anonymous.1 - anonymous.0))"
        )
    }

    private static func idleMemory(_ program: String, _ environment: [String: String]) throws -> (
        rss: Int, anonymous: Int
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = ["idle"]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        let input = Pipe()
        process.standardOutput = output
        process.standardInput = input
        try process.run()
        // Wait for "ready", then let it settle.
        _ = output.fileHandleForReading.availableData
        usleep(200_000)
        let memory = (
            ProcessStatus.bytes("VmRSS", of: process.processIdentifier),
            ProcessStatus.bytes("RssAnon", of: process.processIdentifier)
        )
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        return memory
    }

    // MARK: - Measures

    private static func heapInUse() -> Int { Int(pp_bench_heap_in_use()) }

    private static func residentAnonymous() -> Int {
        ProcessStatus.bytes("RssAnon")
    }

    private static func openFiles() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }

    private static func mib(_ bytes: Int) -> String { String(format: "%.2f MiB", Double(bytes) / 1_048_576) }

    @inline(never)
    private static func blackHole(_ value: Int) {
        if value == 0x5eed_5eed { print("") }
    }
}
