import Foundation
import Testing

@testable import Pprof

/// Optimized programs compiled at test time, symbolized offline from their files: inlined frames,
/// file:line and start lines must match the source and `llvm-symbolizer --inlining`.
@Suite struct SymbolDWARFTests {
    struct Build: CustomTestStringConvertible, Sendable {
        var output: String
        var compiler: String
        var flags: [String]
        var isSwift: Bool
        var testDescription: String { output }

        var source: String { isSwift ? Fixtures.swiftSource : Fixtures.cSource }

        func binary() throws -> String? {
            try Fixtures.build(
                output,
                source: source,
                name: isSwift ? "fixture.swift" : "fixture-\(output).c",
                compiler: compiler,
                flags: flags
            )
        }

        /// The linker name of the function the helpers are inlined into.
        func isHashAll(_ name: String) -> Bool {
            isSwift ? name.hasSuffix("7hashAllys6UInt64VSayADGF") : name == "hash_all"
        }
    }

    static let builds: [Build] = [
        Build(output: "swift-O-g", compiler: "swiftc", flags: ["-O", "-g"], isSwift: true),
        Build(output: "clang-dwarf5", compiler: "clang", flags: ["-O2", "-gdwarf-5"], isSwift: false),
        Build(output: "clang-dwarf4", compiler: "clang", flags: ["-O2", "-gdwarf-4"], isSwift: false),
        Build(output: "gcc-dwarf5", compiler: "gcc", flags: ["-O2", "-gdwarf-5"], isSwift: false),
        Build(
            output: "gcc-dwarf4-compressed",
            compiler: "gcc",
            flags: ["-O2", "-gdwarf-4", "-gz=zlib"],
            isSwift: false
        ),
        Build(
            output: "gcc-dwarf5-compressed",
            compiler: "gcc",
            flags: ["-O3", "-gdwarf-5", "-gz=zlib"],
            isSwift: false
        ),
    ]

    /// Somewhere in `hashAll` the code of `mix` sits inside `twice` inside `hashAll`: the frames
    /// name all three, innermost first, each with the line of the call into the next.
    @Test(arguments: builds)
    func inlinedFramesMatchTheSource(_ build: Build) throws {
        guard let binary = try build.binary() else { return }
        let symbolizer = try ImageSymbolizer(path: binary, debugDirectories: [])
        #expect(symbolizer.hasDebugInfo)
        let range = try #require(functionRange(symbolizer) { build.isHashAll($0) })
        let source = build.source
        let mixLine = Fixtures.line(of: "MIX-BODY", in: source)
        let twiceLine = Fixtures.line(of: "TWICE-CALLS-MIX", in: source)
        let hashAllLine = Fixtures.line(of: "HASHALL-CALLS-TWICE", in: source)

        var nested: [SymbolFrame]?
        for address in range {
            let frames = symbolizer.frames(atFileAddress: address)
            guard let physical = frames.last else {
                Issue.record("no frames at 0x\(String(address, radix: 16)) inside hashAll")
                break
            }
            #expect(build.isHashAll(physical.systemName))
            #expect(frames.allSatisfy { $0.entry == range.lowerBound })
            if frames.count == 3, frames[0].line == mixLine, frames[1].line == twiceLine { nested = frames }
        }
        let frames = try #require(nested, "no address where mix is inlined into twice inlined into hashAll")
        #expect(frames.map(\.name).map(shortName) == ["mix", "twice", build.isSwift ? "hashAll" : "hash_all"])
        #expect(frames[2].line == hashAllLine)
        #expect(frames.map(\.startLine) == [mixLine - 1, twiceLine - 1, hashAllLine - 3])
        #expect(
            frames.allSatisfy { $0.file.hasSuffix(build.isSwift ? "/fixture.swift" : "/fixture-\(build.output).c") }
        )
        if build.isSwift {
            // A single-file program is module `main`.
            #expect(frames.allSatisfy { $0.systemName.hasPrefix("$s4main") && $0.name.hasPrefix("main.") })
        }
    }

    /// Every address of every function of the program symbolizes exactly as llvm-symbolizer does.
    @Test(.enabled(if: Tools.llvmSymbolizer != nil, "needs llvm-symbolizer"), arguments: builds)
    func agreesWithLLVMSymbolizer(_ build: Build) throws {
        guard let binary = try build.binary() else { return }
        let symbolizer = try ImageSymbolizer(path: binary, debugDirectories: [])
        let addresses = allAddresses(symbolizer)
        let reference = try #require(try ReferenceFrame.llvmSymbolizer(binary, addresses: addresses))
        var compared = 0
        var inlined = 0
        var mismatches: [String] = []
        for address in addresses {
            guard let expected = reference[address], !expected.isEmpty else { continue }
            compared += 1
            if expected.count > 1 { inlined += 1 }
            let actual = symbolizer.frames(atFileAddress: address).map {
                ReferenceFrame(function: $0.systemName, file: $0.file, line: $0.line, startLine: $0.startLine)
            }
            if actual.count != expected.count || !zip(actual, expected).allSatisfy({ $0.matches($1) }) {
                mismatches.append("0x\(String(address, radix: 16)): ours \(actual) llvm-symbolizer \(expected)")
            }
        }
        #expect(compared > 200, "too few addresses to compare")
        #expect(inlined > 10, "the fixture should have inlined code")
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(compared) differ, e.g. \(mismatches.prefix(5))")
    }

    /// C++ names are demangled, the mangled name kept as the system name; inlined C++ functions
    /// come from DWARF linkage names.
    @Test(arguments: ["clang++", "g++"])
    func demanglesCxxFunctionsAndInlinedFrames(_ compiler: String) throws {
        guard
            let binary = try Fixtures.build(
                "cxx-\(compiler)",
                source: Fixtures.cppSource,
                name: "fixture-\(compiler).cpp",
                compiler: compiler,
                flags: ["-O2", "-g"]
            )
        else { return }
        let symbolizer = try ImageSymbolizer(path: binary, debugDirectories: [])
        let compute = try #require(functionRange(symbolizer) { $0 == "_ZN7fixture7computeEi" })
        let frames = compute.map { symbolizer.frames(atFileAddress: $0) }
        #expect(frames.allSatisfy { $0.last?.name == "fixture::compute(int)" })
        let bumpLine = Fixtures.line(of: "BUMP-BODY", in: Fixtures.cppSource)
        let inlinedBump = frames.first { $0.count == 2 && $0[0].line == bumpLine }
        let bump = try #require(inlinedBump?.first, "bump should be inlined into compute")
        #expect(bump.name == "fixture::bump(int)")
        #expect(bump.systemName == "_ZN7fixture4bumpEi")
        #expect(inlinedBump?.last?.line == Fixtures.line(of: "COMPUTE-CALLS-BUMP", in: Fixtures.cppSource))

        // GCC may clone it (`….isra.0`); the demangler names the clone.
        let scaled = try #require(functionRange(symbolizer) { $0.hasPrefix("_ZNK7fixture3BoxIiE6scaledEi") })
        let name = try #require(symbolizer.frames(atFileAddress: scaled.lowerBound).last?.name)
        #expect(name.hasPrefix("fixture::Box<int>::scaled(int) const"), "\(name)")
    }

    /// The debug info of a stripped binary is found in a separate file: next to it through
    /// `.gnu_debuglink` (CRC checked), in `.debug/`, or under a debug root by build ID.
    @Test func findsSeparateDebugFiles() throws {
        guard let build = Self.builds.first(where: { $0.output == "gcc-dwarf5" }), let binary = try build.binary(),
            let objcopy = Tools.find("objcopy") ?? Tools.find("llvm-objcopy")
        else { return }
        let original = try ImageSymbolizer(path: binary, debugDirectories: [])
        let range = try #require(functionRange(original) { build.isHashAll($0) })
        let expected = range.map { original.frames(atFileAddress: $0) }
        #expect(expected.contains { $0.count == 3 })

        let root = Fixtures.directory.appendingPathComponent("separate-debug").path
        try? FileManager.default.removeItem(atPath: root)
        try FileManager.default.createDirectory(atPath: root + "/.debug", withIntermediateDirectories: true)
        let debugFile = root + "/fixture.debug"
        let stripped = root + "/fixture"
        try #require(try Tools.run(objcopy, ["--only-keep-debug", binary, debugFile]).status == 0)
        try #require(try Tools.run(objcopy, ["--strip-all", binary, stripped]).status == 0)

        // Stripped and without its debug file: hash_all is not exported, so it has no name.
        let bare = try ImageSymbolizer(path: stripped, debugDirectories: [])
        #expect(!bare.hasFullSymbolTable && !bare.hasDebugInfo)
        #expect(bare.frames(atFileAddress: range.lowerBound).isEmpty)
        #expect(bare.buildID == original.buildID)

        // By build ID under a debug root.
        let buildID = try #require(original.buildID)
        let byID = root + "/root/.build-id/\(buildID.prefix(2))"
        try FileManager.default.createDirectory(atPath: byID, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: debugFile, toPath: byID + "/\(buildID.dropFirst(2)).debug")
        let viaBuildID = try ImageSymbolizer(path: stripped, debugDirectories: [root + "/root"])
        #expect(viaBuildID.debugFilePath?.hasSuffix(".debug") == true)
        #expect(range.map { viaBuildID.frames(atFileAddress: $0) } == expected)

        // By debug link, next to the file and in `.debug/`. The link's CRC must match.
        let linked = root + "/linked"
        try #require(
            try Tools.run(objcopy, ["--add-gnu-debuglink=\(debugFile)", stripped, linked]).status == 0
        )
        let viaLink = try ImageSymbolizer(path: linked, debugDirectories: [])
        #expect(viaLink.debugFilePath == debugFile)
        #expect(range.map { viaLink.frames(atFileAddress: $0) } == expected)

        try FileManager.default.moveItem(atPath: debugFile, toPath: root + "/.debug/fixture.debug")
        let viaDebugDirectory = try ImageSymbolizer(path: linked, debugDirectories: [])
        #expect(viaDebugDirectory.debugFilePath == root + "/.debug/fixture.debug")
        #expect(range.map { viaDebugDirectory.frames(atFileAddress: $0) } == expected)

        // A debug file whose contents do not match the link's CRC is not used.
        var corrupted = try Data(contentsOf: URL(fileURLWithPath: root + "/.debug/fixture.debug"))
        corrupted[corrupted.count - 1] ^= 0xff
        try corrupted.write(to: URL(fileURLWithPath: root + "/.debug/fixture.debug"))
        #expect(try ImageSymbolizer(path: linked, debugDirectories: []).debugFilePath == nil)
    }

    /// The libraries this process has loaded — glibc with its separate debug file where libc6-dbg
    /// is installed (GCC's DWARF 5, compressed), libstdc++, libm, libswiftCore — symbolize like
    /// llvm-symbolizer, which finds the same debug files by build ID. Physical functions are
    /// compared by entry address, since aliases (`malloc`/`__libc_malloc`) may differ in name.
    @Test(
        .enabled(if: Tools.llvmSymbolizer != nil, "needs llvm-symbolizer"),
        arguments: ["/libc.so.6", "/libm.so.6", "/libstdc++.so.6", "/libswiftCore.so"]
    )
    func agreesWithLLVMSymbolizerOnLoadedLibraries(_ suffix: String) throws {
        guard
            let image = LoadedImages.current().first(where: {
                $0.path.hasSuffix(suffix) || $0.path.contains(suffix + ".")
            })
        else { return }
        let symbolizer = try ImageSymbolizer(path: image.path)
        let starts = Set(symbolizer.allSymbols().map(\.start)).sorted()
        // About 600 addresses spread over the whole library.
        let step = max(1, starts.count / 300)
        let addresses = stride(from: 0, to: starts.count, by: step).flatMap { [starts[$0] + 1, starts[$0] + 9] }
        let reference = try #require(try ReferenceFrame.llvmSymbolizer(image.path, addresses: addresses))
        let starting = try llvmFunctionStarts(image.path, addresses: addresses)
        var compared = 0
        var mismatches: [String] = []
        for address in addresses {
            guard let expected = reference[address], !expected.isEmpty else { continue }
            let frames = symbolizer.frames(atFileAddress: address)
            compared += 1
            let inlinedMatch = zip(frames.dropLast(), expected.dropLast()).allSatisfy { ours, theirs in
                ours.systemName == theirs.function && ours.line == theirs.line && ours.startLine == theirs.startLine
                    && (ours.line == 0 || ours.file == theirs.file)
            }
            let physicalMatch =
                frames.last.map { ours in
                    let theirs = expected[expected.count - 1]
                    // llvm-symbolizer gives no start address for functions with DW_AT_ranges; the
                    // start line still tells which function it found.
                    let sameFunction =
                        starting[address].map { $0 == UInt64(ours.entry) } ?? (ours.startLine == theirs.startLine)
                    return sameFunction && ours.line == theirs.line && (ours.line == 0 || ours.file == theirs.file)
                } ?? false
            if frames.count != expected.count || !inlinedMatch || !physicalMatch {
                mismatches.append(
                    "0x\(String(address, radix: 16)): ours \(frames.map { "\($0.systemName) \($0.file):\($0.line)" }) llvm \(expected)"
                )
            }
        }
        #expect(compared > addresses.count / 2)
        // A few addresses may sit where the two legitimately differ (e.g. symbol ends); keep it rare.
        #expect(
            mismatches.count * 100 <= compared,
            "\(mismatches.count) of \(compared) differ, e.g. \(mismatches.prefix(4))"
        )
    }

    /// llvm-symbolizer's start address of the physical function at each address.
    private func llvmFunctionStarts(_ binary: String, addresses: [UInt64]) throws -> [UInt64: UInt64] {
        guard let tool = Tools.llvmSymbolizer else { return [:] }
        let input = addresses.map { "0x" + String($0, radix: 16) }.joined(separator: "\n") + "\n"
        let output = try Tools.run(tool, ["--inlining", "--output-style=JSON", "--obj=\(binary)"], input: input)
        var result: [UInt64: UInt64] = [:]
        for line in output.stdout.split(separator: "\n") {
            guard let entry = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let address = (entry["Address"] as? String).flatMap({ UInt64($0.dropFirst(2), radix: 16) }),
                let last = (entry["Symbol"] as? [[String: Any]])?.last,
                let start = (last["StartAddress"] as? String).flatMap({ UInt64($0.dropFirst(2), radix: 16) }),
                start != 0
            else { continue }
            result[address] = start
        }
        return result
    }

    // MARK: Helpers

    /// The file-address range of the first function whose linker name satisfies `matches`.
    private func functionRange(_ symbolizer: ImageSymbolizer, _ matches: (String) -> Bool) -> Range<UInt64>? {
        let symbols = symbolizer.allSymbols().sorted { $0.start < $1.start }
        guard let index = symbols.firstIndex(where: { matches($0.name) }) else { return nil }
        let start = symbols[index].start
        var end = start + 1
        while end - start < 65536, symbolizer.frames(atFileAddress: end).last?.systemName == symbols[index].name {
            end += 1
        }
        return start..<end
    }

    /// Every address of every function symbol (at most 4 KiB of each).
    private func allAddresses(_ symbolizer: ImageSymbolizer) -> [UInt64] {
        let starts = Set(symbolizer.allSymbols().map(\.start)).sorted()
        var addresses: [UInt64] = []
        for start in starts {
            var address = start
            let name = symbolizer.frames(atFileAddress: start).last?.systemName
            while address - start < 4096, symbolizer.frames(atFileAddress: address).last?.systemName == name {
                addresses.append(address)
                address += 1
            }
        }
        return addresses
    }

    private func shortName(_ name: String) -> String {
        // "main.mix(Swift.UInt64) -> Swift.UInt64" → "mix"
        let base = name.split(separator: "(").first.map(String.init) ?? name
        return base.split(separator: ".").last.map(String.init) ?? base
    }
}
