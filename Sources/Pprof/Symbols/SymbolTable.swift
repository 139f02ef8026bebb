import Glibc

/// The function symbols of an ELF image (`.symtab` and `.dynsym`, of the file itself and of its
/// separate debug file), sorted by address for binary search.
///
/// The names of the chosen symbols are copied into one compact buffer, so the table does not keep
/// the files mapped (see `ImageSymbolizer` for why that matters).
final class SymbolTable: Sendable {
    /// Where a symbol's name is in `names`.
    struct Name {
        var offset: UInt32
        var length: UInt32
    }

    private let entries: IntervalIndex<Name>
    /// The names of all entries, back to back (UTF-8, no terminators, no symbol versions).
    private let names: [UInt8]

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// Symbols of `files`, in order of authority (the image first, then its debug file).
    init(files: [ELFFile]) {
        struct Candidate {
            var start: UInt64
            var size: UInt64
            var sectionEnd: UInt64
            var nameOffset: UInt32
            var table: UInt16
            var order: Int
            var rank: Int
        }
        var candidates: [Candidate] = []
        var tables: [UnsafeRawBufferPointer] = []
        for file in files {
            for dynamic in [false, true] {
                let tableIndex = UInt16(tables.count)
                var strings: UnsafeRawBufferPointer?
                try? file.forEachSymbol(dynamic: dynamic) { symbol, names in
                    strings = names
                    guard symbol.isFunction, symbol.isDefined, symbol.value != 0, symbol.nameOffset != 0,
                        Int(symbol.nameOffset) < names.count
                    else { return }
                    let section =
                        Int(symbol.sectionIndex) < file.sections.count ? file.sections[Int(symbol.sectionIndex)] : nil
                    let sectionEnd = section.map { $0.address &+ $0.size } ?? .max
                    candidates.append(
                        Candidate(
                            start: symbol.value,
                            size: symbol.size,
                            sectionEnd: sectionEnd,
                            nameOffset: symbol.nameOffset,
                            table: tableIndex,
                            order: candidates.count,
                            rank: SymbolTable.rank(
                                binding: symbol.binding,
                                dynamic: dynamic,
                                name: names,
                                at: Int(symbol.nameOffset)
                            )
                        )
                    )
                }
                if let strings {
                    tables.append(strings)
                } else {
                    tables.append(UnsafeRawBufferPointer(start: nil, count: 0))
                }
            }
        }
        // One entry per address: the best-ranked alias, with the largest size any alias gives.
        candidates.sort { ($0.start, $0.rank, $0.order) < ($1.start, $1.rank, $1.order) }
        var entries: [(range: Range<UInt64>, value: Name)] = []
        var names: [UInt8] = []
        var index = 0
        while index < candidates.count {
            let best = candidates[index]
            var size = best.size
            var next = index + 1
            while next < candidates.count && candidates[next].start == best.start {
                size = max(size, candidates[next].size)
                next += 1
            }
            let nextStart = next < candidates.count ? candidates[next].start : UInt64.max
            // A symbol without a size runs to the next symbol, but not past its section.
            let end = size > 0 ? best.start &+ size : min(nextStart, best.sectionEnd)
            if end > best.start,
                let name = SymbolTable.unversionedName(in: tables[Int(best.table)], at: Int(best.nameOffset)),
                names.count + name.count < Int(UInt32.max)
            {
                entries.append((best.start..<end, Name(offset: UInt32(names.count), length: UInt32(name.count))))
                names.append(contentsOf: name)
            }
            index = next
        }
        // PLT stubs, where no symbol is (IntervalIndex sorts them in).
        for stub in files.first?.procedureLinkageStubs() ?? [] where entries.count < Int(UInt32.max) {
            let name = Array(stub.name.utf8)
            guard names.count + name.count < Int(UInt32.max) else { break }
            entries.append((stub.range, Name(offset: UInt32(names.count), length: UInt32(name.count))))
            names.append(contentsOf: name)
        }
        self.entries = IntervalIndex(entries)
        self.names = names
    }

    /// The bytes of the NUL-terminated name at `offset`, without a symbol version
    /// (`memcpy@@GLIBC_2.14` → `memcpy`): versions appear in `.symtab` names of glibc and its debug
    /// file, never in Swift or C++ names.
    private static func unversionedName(in table: UnsafeRawBufferPointer, at offset: Int) -> UnsafeRawBufferPointer? {
        guard offset >= 0, offset < table.count, let base = table.baseAddress,
            let nul = memchr(base + offset, 0, table.count - offset)
        else { return nil }
        var length = base.distance(to: UnsafeRawPointer(nul)) - offset
        if let at = memchr(base + offset, Int32(UInt8(ascii: "@")), length), UnsafeRawPointer(at) != base + offset {
            length = base.distance(to: UnsafeRawPointer(at)) - offset
        }
        return UnsafeRawBufferPointer(start: base + offset, count: length)
    }

    /// Lower is preferred: fewer leading underscores (`malloc` over `__libc_malloc`, `getpid` over
    /// `__getpid`), then global over weak over local binding, then the regular symbol table.
    private static func rank(binding: UInt8, dynamic: Bool, name: UnsafeRawBufferPointer, at offset: Int) -> Int {
        let bindingRank: Int
        switch binding {
        case 1, 10: bindingRank = 0  // GLOBAL, GNU_UNIQUE
        case 2: bindingRank = 1  // WEAK
        default: bindingRank = 2
        }
        var underscores = 0
        while offset + underscores < name.count && name[offset + underscores] == UInt8(ascii: "_") { underscores += 1 }
        return min(underscores, 9) * 100 + bindingRank * 10 + (dynamic ? 1 : 0)
    }

    /// The function holding `address` (the innermost, if symbols nest): its linker name and start.
    func symbol(containing address: UInt64) -> (name: String, start: UInt64)? {
        entries.entry(containing: address).map { (name($0.value), $0.range.lowerBound) }
    }

    /// Every symbol's start address and name (tests, benchmarks), without the PLT stubs we name
    /// ourselves (other symbolizers stretch `_init` over them).
    func allSymbols() -> [(start: UInt64, name: String)] {
        entries.all.map { ($0.range.lowerBound, name($0.value)) }.filter { !$0.name.hasSuffix("@plt") }
    }

    private func name(_ name: Name) -> String {
        names.withUnsafeBytes { bytes in
            String(
                decoding: UnsafeRawBufferPointer(rebasing: bytes[Int(name.offset)..<Int(name.offset + name.length)]),
                as: UTF8.self
            )
        }
    }
}
