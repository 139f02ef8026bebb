import Foundation
import Testing

@testable import Pprof

/// Malformed ELF and DWARF never crash the symbolizer: bad input throws or is skipped.
@Suite struct SymbolCorruptionTests {
    /// Random damage to the headers, symbol tables and DWARF sections of real binaries (Swift
    /// DWARF 4+5, GCC compressed DWARF 4, Clang DWARF 5), in a child process so that a crash is
    /// reported as a failure rather than taking the test run down.
    @Test(arguments: ["swift-O-g", "gcc-dwarf4-compressed", "clang-dwarf5"])
    func survivesRandomDamage(_ output: String) throws {
        guard let build = SymbolDWARFTests.builds.first(where: { $0.output == output }),
            let binary = try build.binary()
        else { return }
        let result = try ChildProcess.run(
            "symbols-fuzz",
            [binary, "\(output.utf8.reduce(0) { $0 &* 31 &+ Int($1) } & 0xffff)", "300"]
        )
        #expect(!result.crashed, "crashed: \(result.stderr.suffix(2000))")
        #expect(result.status == 0, "\(result.stderr.suffix(2000))")
        #expect(result.stdout.hasPrefix("ok 300"), "\(result.stdout)")
    }

    @Test func truncatedFilesAreRejected() throws {
        let original = try Data(contentsOf: ChildProcess.helperURL)
        for length in [0, 1, 4, 16, 63, 64, 65, 200, 4096, original.count / 2, original.count - 1] {
            let path = Fixtures.directory.appendingPathComponent("truncated-\(length)").path
            try original.prefix(length).write(to: URL(fileURLWithPath: path))
            if let symbolizer = try? ImageSymbolizer(path: path, debugDirectories: []) {
                // Whatever parsed must still answer without crashing.
                for symbol in symbolizer.allSymbols().prefix(200) {
                    _ = symbolizer.frames(atFileAddress: symbol.start &+ 3)
                }
            } else {
                #expect(length < original.count, "the whole file must load")
            }
        }
        #expect(throws: (any Error).self) { try ELFFile(path: "/nonexistent/pprof") }
        #expect(throws: (any Error).self) { try ELFFile(path: "/proc/self/status") }
        #expect(throws: (any Error).self) { try ELFFile(name: "bytes", contents: [0x7f, 0x45, 0x4c, 0x46]) }
    }

    @Test func hostileHeadersAreRejected() throws {
        var header = [UInt8](repeating: 0, count: 64)
        header.replaceSubrange(0..<6, with: [0x7f, 0x45, 0x4c, 0x46, 2, 1])
        func store(_ value: UInt64, at offset: Int, size: Int) {
            for byte in 0..<size { header[offset + byte] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(byte))) }
        }
        // Section headers far beyond the end of the data, and an absurd count.
        store(UInt64.max - 8, at: 0x28, size: 8)
        store(64, at: 0x3a, size: 2)
        store(65535, at: 0x3c, size: 2)
        #expect(throws: (any Error).self) { try ELFFile(name: "hostile", contents: header) }
        // Program headers that wrap around the address space.
        store(0, at: 0x28, size: 8)
        store(UInt64.max - 20, at: 0x20, size: 8)
        store(56, at: 0x36, size: 2)
        store(3, at: 0x38, size: 2)
        #expect(throws: (any Error).self) { try ELFFile(name: "hostile", contents: header) }
    }

    /// A compressed section that claims an enormous size is refused without allocating it.
    @Test func lyingCompressionHeaderIsRefused() throws {
        guard let build = SymbolDWARFTests.builds.first(where: { $0.output == "gcc-dwarf4-compressed" }),
            let binary = try build.binary()
        else { return }
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: binary)))
        let file = try ELFFile(path: binary)
        let info = try #require(file.section(named: ".debug_info"))
        try #require(info.flags & ELFFile.sectionFlagCompressed != 0)
        for byte in 0..<8 { bytes[Int(info.offset) + 8 + byte] = byte == 5 ? 0x10 : 0 }  // ch_size = 1 TiB
        let damaged = try ELFFile(name: "damaged", contents: bytes)
        #expect(throws: (any Error).self) { try damaged.contents(of: info) }
        let symbolizer = ImageSymbolizer(file: damaged, debugDirectories: [])
        #expect(!symbolizer.hasDebugInfo)
        #expect(!symbolizer.allSymbols().isEmpty, "symbols survive broken debug info")
    }
}
