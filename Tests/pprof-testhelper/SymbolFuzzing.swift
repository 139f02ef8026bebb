import Foundation
@_spi(Benchmarks) import Pprof

/// Corrupts an ELF file in the ways real damage and hostile input take — truncation, random bytes
/// in the headers, symbol tables and DWARF sections, lying compression headers — and symbolizes
/// addresses of every corrupted copy. Surviving is the test; what the symbolizer answers is not.
enum SymbolFuzzing {
    struct Section {
        var name: String
        var flags: UInt64
        var offset: Int
        var size: Int
    }

    static func run(original: [UInt8], seed: UInt64, iterations: Int) throws -> String {
        var random = SplitMix64(seed: seed)
        let sections = sectionHeaders(original)
        let debug = sections.filter { $0.name.hasPrefix(".debug") || $0.name.hasPrefix(".zdebug") }
        let symbols = sections.filter {
            [".symtab", ".strtab", ".dynsym", ".dynstr", ".gnu_debuglink"].contains($0.name)
        }
        let compressed = sections.filter { $0.flags & 0x800 != 0 }
        // Addresses to look up: the original's function starts and points inside them.
        let pristine = try temporaryCopy(original)
        defer { unlink(pristine) }
        let starts = (try? ImageSymbolizer(path: pristine, debugDirectories: []))?.allSymbols().map(\.start) ?? []
        var addresses = starts.flatMap { [$0, $0 &+ 1, $0 &+ 7, $0 &+ 33] }
        addresses += (0..<64).map { _ in random.next() % UInt64(max(original.count, 1) * 2) }

        var loaded = 0
        var named = 0
        for iteration in 0..<iterations {
            var bytes = original
            switch iteration % 10 {
            case 0:
                bytes.removeSubrange(Int(random.next() % UInt64(bytes.count))...)
            case 2 where !debug.isEmpty:
                // Small values where lengths, counts, offsets and indices live: the mutations that
                // reach the bounds checks random bytes rarely do.
                for _ in 0..<(1 + Int(random.next() % 8)) {
                    let section = debug[Int(random.next() % UInt64(debug.count))]
                    guard section.size > 4 else { continue }
                    // Often a section's first word: the first unit's length.
                    let position =
                        section.offset + (random.next() % 3 == 0 ? 0 : Int(random.next() % UInt64(section.size - 4)))
                    let value = UInt32(
                        random.next() % 3 == 0 ? UInt64(UInt32.max - UInt32(random.next() % 32)) : random.next() % 64
                    )
                    for byte in 0..<4 where position + byte < bytes.count {
                        bytes[position + byte] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(byte)))
                    }
                }
            case 1 where !compressed.isEmpty:
                // Elf64_Chdr.ch_size: claim an enormous uncompressed size, or a tiny one.
                let section = compressed[Int(random.next() % UInt64(compressed.count))]
                let size: UInt64 = random.next() % 2 == 0 ? 1 << 40 : random.next() % 64
                for byte in 0..<8 where section.offset + 8 + byte < bytes.count {
                    bytes[section.offset + 8 + byte] = UInt8(truncatingIfNeeded: size >> (8 * UInt64(byte)))
                }
            default:
                let flips = 1 + Int(random.next() % 48)
                for _ in 0..<flips {
                    let region = random.next() % 100
                    let pool = region < 70 ? debug : region < 85 ? symbols : []
                    let position: Int
                    if let section = pool.isEmpty ? nil : pool[Int(random.next() % UInt64(pool.count))],
                        section.size > 0
                    {
                        position = section.offset + Int(random.next() % UInt64(section.size))
                    } else {
                        position = Int(random.next() % UInt64(min(bytes.count, 4096)))
                    }
                    if position < bytes.count { bytes[position] = UInt8(truncatingIfNeeded: random.next()) }
                }
            }
            let path = try temporaryCopy(bytes)
            defer { unlink(path) }
            guard let symbolizer = try? ImageSymbolizer(path: path, debugDirectories: []) else { continue }
            loaded += 1
            _ = symbolizer.allSymbols()
            for frames in symbolizer.frames(atFileAddresses: addresses) where !frames.isEmpty { named += 1 }
        }
        return "loaded \(loaded) named \(named)"
    }

    /// Section headers read directly (the test must not trust the reader it is testing).
    static func sectionHeaders(_ bytes: [UInt8]) -> [Section] {
        func integer(_ offset: Int, _ size: Int) -> Int {
            guard offset >= 0, offset + size <= bytes.count else { return 0 }
            var value = 0
            for index in (0..<size).reversed() { value = value << 8 | Int(bytes[offset + index]) }
            return value
        }
        let tableOffset = integer(0x28, 8)
        let count = integer(0x3c, 2)
        let namesIndex = integer(0x3e, 2)
        guard tableOffset > 0, integer(0x3a, 2) == 64 else { return [] }
        let names = integer(tableOffset + namesIndex * 64 + 0x18, 8)
        return (0..<count).map { index in
            let header = tableOffset + index * 64
            var name = ""
            var cursor = names + integer(header, 4)
            while cursor < bytes.count, bytes[cursor] != 0, name.count < 64 {
                name.append(Character(UnicodeScalar(bytes[cursor])))
                cursor += 1
            }
            return Section(
                name: name,
                flags: UInt64(integer(header + 0x08, 8)),
                offset: integer(header + 0x18, 8),
                size: integer(header + 0x20, 8)
            )
        }
    }

    private static func temporaryCopy(_ bytes: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "/pprof-fuzz-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw ScenarioError.usage("cannot write \(path)")
        }
        return path
    }
}
