import Foundation
import Testing

@_spi(Integration) @testable import Pprof

/// Issue 18: the profiler's own work never appears as the service's. A child process does the
/// same kinds of work as the service and inside `ProfilerWork`, with heap, block and mutex
/// recording at full rate and a CPU profile (and its reader thread) running.
@Suite struct ProfilerWorkTests {
    /// Whether a function (not an argument type) is Pprof's: `Pprof.X.f(…)`, `static Pprof.X.f(…)`,
    /// `closure #1 (…) in Pprof.X.f(…)`, but not `M.write(_: Pprof.Profile)`.
    static func isPprofFunction(_ name: String) -> Bool {
        let function = name.range(of: " in ", options: .backwards).map { name[$0.upperBound...] } ?? name[...]
        let qualified = function.prefix { $0 != "(" && $0 != "<" }
        return qualified.hasPrefix("Pprof.") || qualified.contains(" Pprof.")
    }

    @Test func pprofFunctionsAreToldFromArgumentTypes() {
        #expect(Self.isPprofFunction("static Pprof.Profile.lookup(Swift.String) -> Swift.Optional<Pprof.Profile>"))
        #expect(Self.isPprofFunction("closure #1 () -> () in Pprof.Symbolizer.frames(at: Swift.Array<Swift.UInt>)"))
        #expect(Self.isPprofFunction("Pprof.SymbolTable.init(files:)"))
        #expect(!Self.isPprofFunction("helper.writeProfile(_: Pprof.Profile, debug: Swift.Int) throws -> ()"))
    }

    @Test func theProfilersWorkIsLeftOutOrMarked() throws {
        let names = ["heap", "block", "mutex", "goroutine", "threadcreate"]
        let paths = names.map { temporaryPath("work-\($0).pb.gz") }
        defer { paths.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let result = try ChildProcess.run("profiler-work", paths)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("done"), "\(result.stdout)")
        let profiles = try Dictionary(
            uniqueKeysWithValues: zip(names, paths).map { name, path in
                (
                    name,
                    decodedStacks(try ProfileData(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: path)))))
                )
            }
        )
        func stacks(_ name: String, with function: String) -> Int {
            profiles[name]!.filter { $0.names.contains { $0.contains(function) } }.count
        }
        // The profiler's own code (symbol and unwind tables, encoding, its reader thread) is in no
        // sample of the heap, block and mutex profiles; the same work done as the service is.
        for name in ["heap", "block", "mutex"] {
            let own = profiles[name]!.filter { $0.names.contains(where: Self.isPprofFunction) }
            #expect(own.isEmpty, "\(name): \(own.prefix(3).map(\.names))")
        }
        #expect(stacks("heap", with: "allocateAsService") > 0)
        #expect(stacks("heap", with: "allocateInProfilerWork") == 0)
        #expect(stacks("block", with: "waitAsService") > 0)
        #expect(stacks("block", with: "waitInProfilerWork") == 0)
        #expect(stacks("mutex", with: "holdAsService") > 0)
        #expect(stacks("mutex", with: "holdInProfilerWork") == 0)

        // goroutine: the profiler's threads (and the thread writing the profile) are marked, the
        // service's are not.
        func marked(_ stack: (names: [String], value: Int64, labels: [ProfileData.Label])) -> Bool {
            stack.labels.contains { $0.key == ProfilerWork.labelKey && $0.string == "true" }
        }
        let goroutine = profiles["goroutine"]!
        let parkedService = goroutine.filter { $0.names.contains { $0.contains("parkAsService") } }
        let parkedProfiler = goroutine.filter { $0.names.contains { $0.contains("parkAsProfilerThread") } }
        let reader = goroutine.filter { $0.names.contains { $0.contains("CPUSession") } }
        #expect(!parkedService.isEmpty && !parkedService.contains(where: marked))
        #expect(!parkedProfiler.isEmpty && parkedProfiler.allSatisfy(marked))
        #expect(!reader.isEmpty && reader.allSatisfy(marked), "\(goroutine.map(\.names.first))")

        // threadcreate: threads started by the profiler are marked, with their counts.
        let created = profiles["threadcreate"]!
        let serviceThreads = created.filter { $0.names.contains { $0.contains("spawnServiceThreads") } }
        let profilerThreads = created.filter { $0.names.contains { $0.contains("spawnProfilerThreads") } }
        let readerThread = created.filter { $0.names.contains { $0.contains("spawnReader") } }
        #expect(serviceThreads.map(\.value).reduce(0, +) == 2 && !serviceThreads.contains(where: marked))
        #expect(profilerThreads.map(\.value).reduce(0, +) == 3 && profilerThreads.allSatisfy(marked))
        #expect(!readerThread.isEmpty && readerThread.allSatisfy(marked))
    }
}
