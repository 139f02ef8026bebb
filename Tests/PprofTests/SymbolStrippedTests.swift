import Foundation
import Testing

@testable import Pprof

/// Profiles written by the test helper and by a stripped copy of it: what our symbolizer puts in
/// them, and what `go tool pprof` makes of them.
@Suite(.serialized) struct SymbolStrippedTests {
    struct Site {
        var function: String
        var line: Int
    }

    /// Runs `binary symbols-write-profile` and returns the decoded profile and the call sites it printed.
    private func writeProfile(with binary: URL, to path: String) throws -> (ProfileData, [Site]) {
        let result = try ChildProcess.run("symbols-write-profile", [path], executable: binary)
        try #require(result.status == 0, "\(result.stderr)")
        let sites = result.stdout.split(separator: "\n").compactMap { line -> Site? in
            let fields = line.split(separator: " ")
            guard fields.count == 3, fields[0] == "site", let number = Int(fields[2]) else { return nil }
            return Site(function: String(fields[1]), line: number)
        }
        try #require(sites.count == 2)
        let profile = try ProfileData(decoding: [UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
        return (profile, sites)
    }

    private func buildID(of path: String) -> String {
        (try? ImageSymbolizer(path: path, debugDirectories: []))?.buildID ?? ""
    }

    private var scenarioFile: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("pprof-testhelper/SymbolScenarios.swift").path
    }

    /// The unstripped helper names its call sites itself: demangled function, mangled system
    /// name, file, line, start line; its mapping carries the build ID and has_functions.
    @Test func profileOfAnUnstrippedExecutableIsSymbolized() throws {
        let path = Fixtures.directory.appendingPathComponent("unstripped.pb.gz").path
        let (profile, sites) = try writeProfile(with: ChildProcess.helperURL, to: path)
        for site in sites {
            let lines = profile.locations.flatMap(\.lines).filter { line in
                profile.functions.first { $0.id == line.functionID }?.name.contains(site.function) == true
            }
            let line = try #require(lines.first, "\(site.function) missing")
            let function = try #require(profile.functions.first { $0.id == line.functionID })
            #expect(line.line == Int64(site.line))
            #expect(function.filename == scenarioFile)
            #expect(function.systemName.hasPrefix("$s"))
            #expect(function.name == shortSwiftName(demangle(function.systemName)))
            #expect(function.startLine == Int64(site.line - 1))
        }
        let helperPath = ChildProcess.helperURL.resolvingSymlinksInPath().path
        let mapping = try #require(profile.mappings.first { $0.filename == helperPath })
        #expect(mapping.hasFunctions)
        #expect(mapping.buildID == buildID(of: helperPath))
        #expect(!mapping.buildID.isEmpty)
    }

    /// An executable replaced on disk while it runs (an upgrade in place) is still symbolized
    /// from the running file, not from whatever now sits at its path.
    @Test func executableReplacedOnDiskIsSymbolizedFromTheRunningFile() throws {
        let directory = Fixtures.directory.appendingPathComponent("replaced-helper")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let copy = directory.appendingPathComponent("pprof-testhelper").path
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: ChildProcess.helperURL.resolvingSymlinksInPath().path, toPath: copy)
        let path = directory.appendingPathComponent("replaced.pb.gz").path
        let result = try ChildProcess.run("symbols-replaced-executable", [path], executable: URL(fileURLWithPath: copy))
        try #require(result.status == 0, "\(result.stderr)")
        #expect(try String(contentsOfFile: copy, encoding: .utf8).hasPrefix("#!/bin/sh"), "the file was replaced")
        let profile = try ProfileData(decoding: [UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
        for function in ["symbolsHelperFirstSite", "symbolsHelperSecondSite"] {
            #expect(profile.functions.contains { $0.name.contains(function) && $0.filename == scenarioFile })
        }
    }

    /// A stripped copy leaves its own functions unnamed (has_functions false) but keeps the build
    /// ID, and `go tool pprof` symbolizes that profile offline from the unstripped binary.
    @Test func profileOfAStrippedExecutableIsSymbolizedOfflineByGoPprof() throws {
        guard let strip = Tools.find("strip") ?? Tools.find("llvm-strip") else { return }
        let directory = Fixtures.directory.appendingPathComponent("stripped-helper")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let unstripped = ChildProcess.helperURL.resolvingSymlinksInPath().path
        let stripped = directory.appendingPathComponent("pprof-testhelper").path
        try? FileManager.default.removeItem(atPath: stripped)
        try #require(try Tools.run(strip, ["-o", stripped, unstripped]).status == 0)

        let path = directory.appendingPathComponent("stripped.pb.gz").path
        let (profile, sites) = try writeProfile(with: URL(fileURLWithPath: stripped), to: path)
        let mapping = try #require(profile.mappings.first { $0.filename == stripped })
        #expect(!mapping.hasFunctions)
        #expect(!mapping.hasFilenames && !mapping.hasLineNumbers)
        #expect(mapping.buildID == buildID(of: unstripped))
        let ownLocations = profile.locations.filter { $0.mappingID == mapping.id }
        #expect(!ownLocations.isEmpty && ownLocations.allSatisfy { $0.lines.isEmpty })
        // Libraries keep their names (the profile's first stack ends in libc's start code).
        #expect(profile.mappings.contains { $0.filename.contains("libc.so") && $0.hasFunctions })

        // What a build-ID-aware symbolizer (Parca, Pyroscope, upstream pprof, llvm-symbolizer)
        // does: find the unstripped binary by the mapping's build ID alone and name our call sites.
        let debugRoot = directory.appendingPathComponent("debug-root")
        let idDirectory = debugRoot.appendingPathComponent(".build-id/\(mapping.buildID.prefix(2))")
        try? FileManager.default.removeItem(at: debugRoot)
        try FileManager.default.createDirectory(at: idDirectory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: unstripped,
            toPath: idDirectory.appendingPathComponent("\(mapping.buildID.dropFirst(2)).debug").path
        )
        let load = try #require(
            try ELFFile(path: stripped).programHeaders.first {
                $0.type == ELFFile.programHeaderLoad && $0.offset <= mapping.fileOffset
                    && mapping.fileOffset < $0.offset + $0.fileSize
            }
        )
        let fileAddresses = ownLocations.map {
            $0.address - mapping.memoryStart + mapping.fileOffset - load.offset + load.virtualAddress
        }
        // The toolchain's llvm-symbolizer (LLVM 15 and later) looks up build IDs.
        let byBuildID = try #require(
            try ReferenceFrame.llvmSymbolizer(
                buildID: mapping.buildID,
                debugDirectory: debugRoot.path,
                addresses: fileAddresses
            ),
            "no llvm-symbolizer with --build-id"
        )
        let frames = byBuildID.values.flatMap { $0 }
        for site in sites {
            let frame = frames.first { demangle($0.function).contains(site.function) }
            #expect(frame?.line == site.line, "\(site.function) not found by build ID: \(frames)")
            #expect(frame?.file == scenarioFile)
        }

        guard let go = Tools.find("go") else { return }
        // Go 1.19's pprof cannot read build IDs (its object reader reports none), so it rejects
        // binaries found through PPROF_BINARY_PATH; naming the unstripped executable works.
        let raw = try Tools.run(go, ["tool", "pprof", "-raw", unstripped, path])
        try #require(raw.status == 0, "\(raw.stderr)")
        for site in sites {
            let expected = "\(site.function) \(scenarioFile):\(site.line)"
            #expect(raw.stdout.contains(expected), "go tool pprof -raw lacks \(expected):\n\(raw.stdout)")
        }
        let traces = try Tools.run(go, ["tool", "pprof", "-traces", unstripped, path])
        #expect(sites.allSatisfy { traces.stdout.contains($0.function) })
    }

    /// `go tool pprof` reads the unstripped helper's profile and shows our names, files and lines.
    @Test(.enabled(if: Tools.find("go") != nil, "needs go"))
    func goPprofShowsOurFunctionsFilesAndLines() throws {
        let go = try #require(Tools.find("go"))
        let path = Fixtures.directory.appendingPathComponent("for-go.pb.gz").path
        let (profile, sites) = try writeProfile(with: ChildProcess.helperURL, to: path)
        let raw = try Tools.run(go, ["tool", "pprof", "-raw", path])
        try #require(raw.status == 0, "\(raw.stderr)")
        for site in sites {
            let function = try #require(profile.functions.first { $0.name.contains(site.function) })
            let expected = "\(function.name) \(scenarioFile):\(site.line) s=\(site.line - 1)"
            #expect(raw.stdout.contains(expected), "go tool pprof -raw lacks \(expected):\n\(raw.stdout)")
        }
    }
}
