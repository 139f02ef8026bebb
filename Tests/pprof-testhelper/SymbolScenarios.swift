import Foundation
import Pprof

/// Child processes for the symbolization tests.
enum SymbolScenarios {
    /// `symbols-write-profile <path>`: writes a custom profile (debug=0) whose two entries were
    /// added from known call sites, and prints `site <function> <line>` for each, so a test can
    /// check the profile of this executable — or of a stripped copy of it.
    static func writeProfile(_ arguments: [String]) throws {
        guard let path = arguments.first else { throw ScenarioError.usage("symbols-write-profile <path>") }
        let profile = Profile(name: "helper.symbols")
        let first = symbolsHelperFirstSite(profile)
        let second = symbolsHelperSecondSite(profile)
        try pprof_testhelper.writeProfile(profile, debug: 0, to: path)
        print("site symbolsHelperFirstSite \(first)")
        print("site symbolsHelperSecondSite \(second)")
    }

    /// `symbols-replaced-executable <path>`: replaces this executable's file with other content
    /// (an upgrade in place), then does what `symbols-write-profile` does.
    static func replacedExecutable(_ arguments: [String]) throws {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        try FileManager.default.removeItem(atPath: executable)
        try Data("#!/bin/sh\nexit 0\n".utf8).write(to: URL(fileURLWithPath: executable))
        try writeProfile(arguments)
    }

    /// `symbols-fuzz <elf> <seed> <iterations>`: symbolizes addresses of corrupted copies of an
    /// ELF file (random byte flips in its headers and debug sections, truncations) and prints
    /// `ok <iterations>` if the process survived them all.
    static func fuzz(_ arguments: [String]) throws {
        guard arguments.count == 3, let seed = UInt64(arguments[1]), let iterations = Int(arguments[2]) else {
            throw ScenarioError.usage("symbols-fuzz <elf> <seed> <iterations>")
        }
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: arguments[0])))
        let summary = try SymbolFuzzing.run(original: original, seed: seed, iterations: iterations)
        print("ok \(iterations) \(summary)")
    }
}

@inline(never) func symbolsHelperFirstSite(_ profile: Profile) -> Int {
    profile.add("first"); return #line
}

@inline(never) func symbolsHelperSecondSite(_ profile: Profile) -> Int {
    profile.add("second"); return #line
}
