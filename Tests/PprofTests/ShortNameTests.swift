import Foundation
import Testing

@testable import Pprof

@Suite struct ShortNameTests {
    @Test func shortNamesKeepModulesAndLabels() {
        #expect(shortSwiftName("hcpu.hotB(Swift.Int, Swift.UInt64) -> Swift.UInt64") == "hcpu.hotB(_:_:)")
        #expect(
            shortSwiftName("generic specialization <Swift.Int> of hcpu.gen<A where A: Swift.Numeric>(A) -> A")
                == "hcpu.gen<A>(_:)"
        )
        #expect(
            shortSwiftName("closure #1 (Swift.Int) -> Swift.Int in hcpu.withClosure([Swift.Int]) -> Swift.Int")
                == "closure #1 in hcpu.withClosure(_:)"
        )
        #expect(
            shortSwiftName("partial apply forwarder for closure #2 () async throws -> () in hcpu")
                == "closure #2 in hcpu"
        )
        #expect(
            shortSwiftName("(1) await resume partial function for hcpu.asyncF() async throws -> Swift.Int")
                == "hcpu.asyncF()"
        )
        #expect(shortSwiftName("hcpu.Worker.n.getter : Swift.Int") == "hcpu.Worker.n.getter")
        #expect(
            shortSwiftName(
                "static hcpu.E.s(label: Swift.String, _: inout [Swift.String : Swift.Int]) throws -> Swift.Int?"
            )
                == "static hcpu.E.s(label:_:)"
        )
        // C and C++ names, and the full style, stay as they are.
        #expect(
            displayName("fixture::Box<int>::scaled(int)", systemName: "_ZN7fixture3BoxIiE6scaledEi", style: .short)
                == "fixture::Box<int>::scaled(int)"
        )
        #expect(
            displayName("hcpu.f(Swift.Int) -> ()", systemName: "$s4hcpu1fyySiF", style: .full)
                == "hcpu.f(Swift.Int) -> ()"
        )
        #expect(displayName("hcpu.f(Swift.Int) -> ()", systemName: "$s4hcpu1fyySiF", style: .short) == "hcpu.f(_:)")
    }

    /// Our short names against `swift demangle --simplified` (which also drops module names) on
    /// every Swift function symbol of this test binary. `--simplified` writes `specialized`,
    /// `partial apply for`, `dispatch thunk of` and `merged` where we fold them into the function.
    @Test func shortNamesMatchSwiftDemangleSimplified() throws {
        guard
            let tool = ["/usr/bin/swift-demangle"].first(where: FileManager.default.isExecutableFile)
                ?? findInPath("swift-demangle")
        else {
            print("skipped: swift-demangle is not on PATH")
            return
        }
        let image = try ImageSymbolizer(path: "/proc/self/exe", debugDirectories: [])
        var names = Array(Set(image.allSymbols().map(\.name).filter { $0.hasPrefix("$s") })).sorted()
        // Swift Testing's macro-expansion names (`…fMu_`) are printed oddly by --simplified.
        names = names.filter { !$0.contains("fMu") }
        #expect(names.count > 1000)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["--compact", "--simplified"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        let request = Data(names.joined(separator: "\n").utf8)
        let writer = Thread {
            input.fileHandleForWriting.write(request)
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let expected = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        var mismatches: [String] = []
        var compared = 0
        for (name, simplified) in zip(names, expected) {
            let full = demangle(name)
            // The runtime's demangler writes `Optional<T>` and `Array<T>` where the tool writes `T?`, `[T]`.
            guard full != name,
                !["Swift.Optional<", "Swift.Array<", "Swift.Dictionary<"].contains(where: full.contains)
            else { continue }
            compared += 1
            var oracle = String(simplified)
            for folded in ["specialized ", "partial apply for ", "dispatch thunk of ", "merged "] {
                oracle = oracle.replacingOccurrences(of: folded, with: "")
            }
            let ours = shortSwiftName(full, keepsModules: false)
            if ours != oracle { mismatches.append("\(name)\n  ours:   \(ours)\n  oracle: \(oracle)") }
        }
        #expect(compared > 1000)
        // Odd corners (closures inside generic arguments, conditional conformances) differ.
        #expect(
            Double(mismatches.count) < Double(compared) * 0.01,
            "\(mismatches.count)/\(compared):\n\(mismatches.prefix(20).joined(separator: "\n"))"
        )
    }

    private func findInPath(_ tool: String) -> String? {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/\(tool)" }
            .first(where: FileManager.default.isExecutableFile)
    }
}
