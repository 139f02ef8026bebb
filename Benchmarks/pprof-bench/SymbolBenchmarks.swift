// Symbolization of 10k distinct addresses across this executable, libswiftCore and Foundation:
// our ELF/DWARF reader against the toolchain's Runtime module (SE-0419 `Backtrace.symbolicated`),
// first use (image loading included) and cached, and whether both agree on the same addresses.
import Foundation
import Pprof

#if canImport(Runtime)
    import Runtime
#endif

enum SymbolBenchmarks {
    static func run() throws {
        let targets: [(label: String, suffix: String, count: Int)] = [
            ("executable", "", 3334),
            ("libswiftCore", "/libswiftCore.so", 3333),
            ("libFoundation", "/libFoundation.so", 1667),
            ("libFoundationEssentials", "/libFoundationEssentials.so", 1666),
        ]
        let images = LoadedImages.current()
        var addresses: [UInt] = []
        var summary: [String] = []
        for target in targets {
            let image =
                target.suffix.isEmpty
                ? images.first(where: \.isMainExecutable) : images.first(where: { $0.path.hasSuffix(target.suffix) })
            guard let image else {
                print("  skipped \(target.label): not loaded")
                continue
            }
            let picked = try spreadAddresses(in: image, count: target.count)
            addresses += picked
            summary.append("\(target.label) \(picked.count)")
        }
        addresses = Array(Set(addresses)).sorted()
        print("  \(addresses.count) distinct addresses: \(summary.joined(separator: ", "))")
        // A reproducible, non-sorted order, as stacks arrive in a profile: by a multiplicative hash.
        addresses.sort { ($0 &* 0x9E37_79B9_7F4A_7C15) < ($1 &* 0x9E37_79B9_7F4A_7C15) }

        let memoryBefore = residentMiB()
        let ours = Symbolizer()
        var (oursFirst, oursResults) = measure { ours.frames(at: addresses) }
        let memoryAfter = residentMiB()
        let (oursCached, _) = measure { ours.frames(at: addresses) }
        let (oursCachedSingle, _) = measure { addresses.map { ours.frames(at: $0) } }

        #if canImport(Runtime)
            let runtime = try RuntimeModule.symbolicate(addresses)
        #else
            let runtime: RuntimeModule.Result? = nil
        #endif

        let count = Double(addresses.count)
        func describe(_ timing: Timing) -> String {
            "\(ms(timing.cpu)) CPU (\(us(timing.cpu / count))/address), \(ms(timing.wall)) wall"
        }
        print("  ours, batch:   first \(describe(oursFirst)); cached \(describe(oursCached))")
        print("  ours, one call per address: cached \(describe(oursCachedSingle))")
        if let runtime {
            print("  Runtime module: first \(describe(runtime.first)); cached \(describe(runtime.cached))")
            print(
                "  ratio Runtime/ours (CPU): first \(ratio(runtime.first.cpu, oursFirst.cpu)), cached \(ratio(runtime.cached.cpu, oursCached.cpu))"
            )
        } else {
            print("  Runtime module: not available in this toolchain")
        }
        print(
            String(
                format:
                    "  resident memory after our first pass: +%.1f MiB anonymous, +%.1f MiB file-backed (mapped ELF/DWARF)",
                memoryAfter.anonymous - memoryBefore.anonymous,
                memoryAfter.file - memoryBefore.file
            )
        )

        try measureLibc(images)

        oursResults = ours.frames(at: addresses)
        compare(addresses: addresses, ours: oursResults, runtime: runtime?.frames)
    }

    /// glibc, whose symbols and DWARF come from a separate debug file when one is installed
    /// (Debian's libc6-dbg): the one-time cost of loading (and inflating) it.
    private static func measureLibc(_ images: [LoadedImage]) throws {
        guard let libc = images.first(where: { $0.path.contains("/libc.so") }) else { return }
        let addresses = try spreadAddresses(in: libc, count: 2000)
        let memoryBefore = residentMiB()
        let symbolizer = Symbolizer()
        let (first, frames) = measure { symbolizer.frames(at: addresses) }
        let memoryAfter = residentMiB()
        let (cached, _) = measure { symbolizer.frames(at: addresses) }
        let debugFile = (try? ImageSymbolizer(path: libc.path))?.debugFilePath ?? "none"
        let withLines = frames.filter { $0.first?.line ?? 0 > 0 }.count
        print(
            "  libc (debug file: \(debugFile)): \(addresses.count) addresses, \(withLines) with file:line; first \(ms(first.cpu)) CPU, cached \(ms(cached.cpu)) CPU; "
                + String(format: "+%.1f MiB anonymous", memoryAfter.anonymous - memoryBefore.anonymous)
        )
    }

    /// `count` addresses spread evenly over the code of the image's function symbols.
    private static func spreadAddresses(in image: LoadedImage, count: Int) throws -> [UInt] {
        let symbolizer = try ImageSymbolizer(path: image.path, debugDirectories: [])
        let starts = symbolizer.allSymbols().map(\.start).sorted()
        var candidates: [UInt64] = []
        for (index, start) in starts.enumerated() {
            let end = index + 1 < starts.count ? min(starts[index + 1], start + 4096) : start + 64
            candidates += stride(from: start + 1, to: end, by: 7)
        }
        guard !candidates.isEmpty else { return [] }
        let step = max(1, candidates.count / count)
        return stride(from: 0, to: candidates.count, by: step).prefix(count).map {
            UInt(candidates[$0]) &+ image.loadBias
        }
    }

    /// One frame as a symbolizer reports it: linkage name, file, line.
    struct Frame: Equatable, CustomStringConvertible {
        var name: String
        var file: String
        var line: Int
        var description: String { "\(name) \(file):\(line)" }

        /// Same function and line, and same file where there is a line (llvm-symbolizer leaves the
        /// file out of rows with line 0).
        func matches(_ other: Frame) -> Bool {
            name == other.name && line == other.line && (line == 0 || file == other.file)
        }
    }

    /// How often our reader and the Runtime module agree with `llvm-symbolizer --inlining` (the
    /// reference) on the same addresses, frame by frame.
    private static func compare(addresses: [UInt], ours: [[SymbolFrame]], runtime: [UInt: [Frame]]?) {
        guard let reference = llvmSymbolizerFrames(addresses) else {
            print("  llvm-symbolizer not found: correctness comparison skipped")
            return
        }
        let runtimeFrames = runtime ?? [:]
        var candidates: [(String, (Int) -> [Frame])] = [
            ("ours   ", { index in ours[index].map { Frame(name: $0.systemName, file: $0.file, line: $0.line) } })
        ]
        if runtime != nil { candidates.append(("Runtime", { index in runtimeFrames[addresses[index]] ?? [] })) }
        let named = addresses.indices.filter { !(reference[addresses[$0]] ?? []).isEmpty }
        let withLines = named.filter { (reference[addresses[$0]] ?? []).first?.line ?? 0 > 0 }
        let inlined = named.filter { (reference[addresses[$0]] ?? []).count > 1 }
        print("  agreement with llvm-symbolizer --inlining on the same addresses:")
        print(
            "    reference: \(named.count) addresses named, \(withLines.count) with a source line, \(inlined.count) with inlined frames"
        )
        var perImage: [String: (reference: Int, ours: Int, runtime: Int)] = [:]
        for index in named {
            let image = where_(addresses[index]).split(separator: "+").first.map(String.init) ?? "?"
            perImage[image, default: (0, 0, 0)].reference += 1
            if !ours[index].isEmpty { perImage[image, default: (0, 0, 0)].ours += 1 }
            if !(runtimeFrames[addresses[index]] ?? []).isEmpty { perImage[image, default: (0, 0, 0)].runtime += 1 }
        }
        for (image, counts) in perImage.sorted(by: { $0.key < $1.key }) {
            print(
                "    named in \(image): llvm-symbolizer \(counts.reference), ours \(counts.ours), Runtime \(counts.runtime)"
            )
        }
        for (label, frames) in candidates {
            var sameNames = 0
            var pltStubs = 0
            var sameLocations = 0
            var sameInlined = 0
            var example: String?
            var nameExample: String?
            var inlineExample: String?
            for index in named {
                let expected = reference[addresses[index]] ?? []
                let actual = frames(index)
                if actual.map(\.name) == expected.map(\.name) {
                    sameNames += 1
                } else if expected.map(\.name) == ["_init"]
                    && (actual.isEmpty || (actual.count == 1 && actual[0].name.hasSuffix("@plt")))
                {
                    // PLT stubs: no symbol covers them; llvm-symbolizer stretches `_init` over them,
                    // we name them `target@plt` (the Runtime module leaves them unnamed).
                    pltStubs += 1
                } else {
                    let difference = "\(where_(addresses[index])): \(actual.map(\.name)) vs \(expected.map(\.name))"
                    if nameExample == nil { nameExample = difference }
                    if ProcessInfo.processInfo.environment["PPROF_BENCH_VERBOSE"] != nil {
                        print("      \(label) \(difference)")
                    }
                }
                if expected.count > 1 {
                    if actual.count == expected.count && zip(actual, expected).allSatisfy({ $0.matches($1) }) {
                        sameInlined += 1
                    } else if inlineExample == nil {
                        inlineExample = "\(where_(addresses[index])): \(actual) vs \(expected)"
                    }
                }
                if expected.first?.line ?? 0 > 0 {
                    if actual.map({ "\($0.file):\($0.line)" }) == expected.map({ "\($0.file):\($0.line)" }) {
                        sameLocations += 1
                    } else if example == nil {
                        example =
                            "\(where_(addresses[index])): \(actual.map { "\($0.file):\($0.line)" }) vs \(expected.map { "\($0.file):\($0.line)" })"
                    }
                }
            }
            print(
                "    \(label): functions \(sameNames)/\(named.count) (+\(pltStubs) PLT stubs llvm-symbolizer calls _init), file:line of every frame \(sameLocations)/\(withLines.count), inlined stacks exact \(sameInlined)/\(inlined.count)"
            )
            if let nameExample { print("      first function difference: \(nameExample)") }
            if let example { print("      first file:line difference: \(example)") }
            if let inlineExample { print("      first inlined-stack difference: \(inlineExample)") }
        }
    }

    private static func where_(_ address: UInt) -> String {
        guard let image = Symbolizer.shared.image(containing: address) else { return "0x" + String(address, radix: 16) }
        return "\(image.path.split(separator: "/").last ?? "")+0x\(String(address - image.loadBias, radix: 16))"
    }

    /// Runs `llvm-symbolizer --inlining` (the toolchain's, else the one on PATH) per image.
    private static func llvmSymbolizerFrames(_ addresses: [UInt]) -> [UInt: [Frame]]? {
        let toolchain = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        let candidates = toolchain.flatMap { ["\($0)/swiftc", "\($0)/llvm-symbolizer"] }.compactMap { path -> String? in
            guard FileManager.default.fileExists(atPath: path) else { return nil }
            let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().deletingLastPathComponent()
            let tool = resolved.appendingPathComponent("llvm-symbolizer").path
            return FileManager.default.isExecutableFile(atPath: tool) ? tool : nil
        }
        guard let tool = candidates.first else { return nil }
        var byImage: [String: (bias: UInt, addresses: [UInt])] = [:]
        for address in addresses {
            guard let image = Symbolizer.shared.image(containing: address) else { continue }
            byImage[image.path, default: (image.loadBias, [])].addresses.append(address)
        }
        var result: [UInt: [Frame]] = [:]
        for (path, group) in byImage {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = [
                "--inlining", "--functions=linkage", "--no-demangle", "--output-style=JSON", "--obj=\(path)",
            ]
            let input = Pipe()
            let output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            guard (try? process.run()) != nil else { return nil }
            let text = group.addresses.map { "0x" + String($0 - group.bias, radix: 16) }.joined(separator: "\n") + "\n"
            let writer = Thread {
                input.fileHandleForWriting.write(Data(text.utf8)); try? input.fileHandleForWriting.close()
            }
            writer.start()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            // One JSON object per input line.
            for line in data.split(separator: UInt8(ascii: "\n")) {
                guard let entry = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    continue
                }
                do {
                    guard let text = entry["Address"] as? String, let offset = UInt(text.dropFirst(2), radix: 16),
                        let symbols = entry["Symbol"] as? [[String: Any]]
                    else { continue }
                    let frames = symbols.compactMap { symbol -> Frame? in
                        guard let name = symbol["FunctionName"] as? String, !name.isEmpty, name != "??" else {
                            return nil
                        }
                        var file = symbol["FileName"] as? String ?? ""
                        // We show pseudo-files (`<compiler-generated>`, `<stdin>`) without a directory.
                        if file.hasSuffix(">"), let open = file.lastIndex(of: "<") { file = String(file[open...]) }
                        let line = symbol["Line"] as? Int ?? 0
                        // Without line information llvm-symbolizer guesses a file from STT_FILE symbols.
                        return Frame(name: name, file: line == 0 && file.hasSuffix(".c") ? "" : file, line: line)
                    }
                    result[offset + group.bias] = frames
                }
            }
        }
        return result
    }

    /// Wall time and this thread's CPU time (robust when other processes compete for the CPUs).
    struct Timing {
        var wall: Double
        var cpu: Double
    }

    static func measure<T>(_ body: () throws -> T) rethrows -> (Timing, T) {
        let start = DispatchTime.now().uptimeNanoseconds
        let cpuStart = threadCPUSeconds()
        let result = try body()
        let cpu = threadCPUSeconds() - cpuStart
        return (Timing(wall: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, cpu: cpu), result)
    }

    private static func threadCPUSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    private static func ms(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1e3) }
    private static func us(_ seconds: Double) -> String { String(format: "%.2f µs", seconds * 1e6) }
    private static func ratio(_ a: Double, _ b: Double) -> String { String(format: "%.1fx", a / b) }

    /// `RssAnon` and `RssFile` from /proc/self/status, in MiB.
    private static func residentMiB() -> (anonymous: Double, file: Double) {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Double {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name) }) else { return 0 }
            return (Double(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
        }
        return (field("RssAnon:"), field("RssFile:"))
    }
}

/// The toolchain's Runtime module (SE-0419) on the same addresses.
enum RuntimeModule {
    struct Result {
        var first: SymbolBenchmarks.Timing
        var cached: SymbolBenchmarks.Timing
        /// Frames by address, innermost first.
        var frames: [UInt: [SymbolBenchmarks.Frame]]
    }

    #if canImport(Runtime)
        /// Symbolicates a `Backtrace` of the addresses, first with a fresh `ImageMap`, then again.
        static func symbolicate(_ addresses: [UInt]) throws -> Result? {
            let options: Backtrace.SymbolicationOptions = [.showInlineFrames, .showSourceLocations, .useSymbolCache]
            let backtrace = try makeBacktrace(addresses)
            let (first, symbolicated) = SymbolBenchmarks.measure {
                backtrace.symbolicated(with: ImageMap.capture(), options: options)
            }
            let imageMap = ImageMap.capture()
            let (cached, _) = SymbolBenchmarks.measure { backtrace.symbolicated(with: imageMap, options: options) }
            guard let symbolicated else { return nil }
            var frames: [UInt: [SymbolBenchmarks.Frame]] = [:]
            for frame in symbolicated.frames {
                guard let pc = UInt(frame.captured.originalProgramCounter), let symbol = frame.symbol else { continue }
                let location = symbol.sourceLocation
                frames[pc, default: []].append(
                    SymbolBenchmarks.Frame(name: symbol.rawName, file: location?.path ?? "", line: location?.line ?? 0)
                )
            }
            return Result(first: first, cached: cached, frames: frames)
        }

        /// A `Backtrace` of arbitrary addresses, built through its Codable form (Compact Backtrace
        /// Format: an info byte, one absolute 8-byte "pc" instruction per address, then "end").
        private static func makeBacktrace(_ addresses: [UInt]) throws -> Backtrace {
            var bytes: [UInt8] = [0x02]  // version 0, 64-bit words
            for address in addresses {
                bytes.append(0x1f)  // pc, absolute, 8 bytes
                for shift in stride(from: 56, through: 0, by: -8) {
                    bytes.append(UInt8(truncatingIfNeeded: address >> shift))
                }
            }
            bytes.append(0x00)
            let architecture = try Backtrace.capture().architecture
            let json = #"{"architecture":"\#(architecture)","backtrace":"\#(Data(bytes).base64EncodedString())"}"#
            return try JSONDecoder().decode(Backtrace.self, from: Data(json.utf8))
        }
    #endif
}
