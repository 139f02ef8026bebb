import Glibc

/// The function symbols of an ELF image (`.symtab` and `.dynsym`, of the file itself and of its
/// separate debug file), sorted by address for binary search.
///
/// Compact: 16 bytes per symbol (start, end and the highest end so far as 32-bit offsets from the
/// lowest start, and where its name is). Names stay in the files' string tables: read from the
/// mapping of a file kept mapped, or with `pread` from a file that must not stay mapped (see
/// `ImageSymbolizer` for why), opening the file for each name read (a file replaced on disk since
/// gives no name). `NameStorage.copied` keeps the earlier behaviour
/// (every name copied to the heap), for when the file cannot be opened again and for comparison.
final class SymbolTable: Sendable {
    /// How the names of one file's symbols are kept.
    enum NameStorage: Sendable {
        /// In the file's mapping, which the table keeps alive.
        case mapped
        /// Read on demand from the file, which is not kept mapped.
        case read
        /// Copied to the heap.
        case copied
    }

    /// Where a symbol's name starts: a string table (the top 3 bits) and an offset in it.
    private static let tableShift: UInt32 = 29
    private static let offsetMask: UInt32 = (1 << tableShift) - 1

    /// Offsets from `base`, by start address.
    private let starts: [UInt32]
    private let ends: [UInt32]
    /// The highest end of the entries up to each one: a lookup walks back from the last start at
    /// or below an address only while an earlier symbol can still reach it (symbols may nest).
    private let maximumEnds: [UInt32]
    private let nameRefs: [UInt32]
    private let base: UInt64
    private let strings: [NameSource]

    var isEmpty: Bool { starts.isEmpty }
    var count: Int { starts.count }

    /// Symbols of `files`, in order of authority (the image first, then its debug file), with the
    /// way each file's names are kept.
    init(files: [(file: ELFFile, names: NameStorage)]) {
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
        var sources: [NameSource?] = []
        for (file, storage) in files {
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
                let table = strings ?? UnsafeRawBufferPointer(start: nil, count: 0)
                tables.append(table)
                sources.append(strings.flatMap { NameSource(file: file, strings: $0, storage: storage) })
            }
        }
        // One entry per address: the best-ranked alias, with the largest size any alias gives.
        candidates.sort { ($0.start, $0.rank, $0.order) < ($1.start, $1.rank, $1.order) }
        // PLT stubs, where no symbol is (often below every symbol).
        let procedureLinkageStubs = files.first?.file.procedureLinkageStubs() ?? []
        let base = min(
            candidates.first?.start ?? .max,
            procedureLinkageStubs.map(\.range.lowerBound).min() ?? .max
        )
        var starts: [UInt32] = []
        var ends: [UInt32] = []
        var nameRefs: [UInt32] = []
        // Names of tables that copy them, NUL-terminated.
        var copies: [Int: [UInt8]] = [:]
        var stubs: [UInt8] = []
        func reference(table: Int, offset: Int) -> UInt32 {
            UInt32(table) << SymbolTable.tableShift | UInt32(offset)
        }
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
            let table = Int(best.table)
            if end > best.start, end - base <= UInt64(UInt32.max), let source = sources[table],
                let name = SymbolTable.unversionedName(in: tables[table], at: Int(best.nameOffset))
            {
                var offset = Int(best.nameOffset)
                if case .copied = source.kind {
                    offset = copies[table, default: []].count
                    copies[table, default: []].append(contentsOf: name)
                    copies[table, default: []].append(0)
                }
                if offset <= Int(SymbolTable.offsetMask) {
                    starts.append(UInt32(best.start - base))
                    ends.append(UInt32(end - base))
                    nameRefs.append(reference(table: table, offset: offset))
                }
            }
            index = next
        }
        // The stubs' names are ours (`target@plt`), so always copied.
        var stubEntries: [(start: UInt32, end: UInt32, name: UInt32)] = []
        let stubTable = tables.count
        for stub in procedureLinkageStubs {
            guard stub.range.lowerBound >= base, stub.range.upperBound - base <= UInt64(UInt32.max),
                stubs.count <= Int(SymbolTable.offsetMask)
            else { continue }
            stubEntries.append(
                (
                    UInt32(stub.range.lowerBound - base), UInt32(stub.range.upperBound - base),
                    reference(table: stubTable, offset: stubs.count)
                )
            )
            stubs.append(contentsOf: stub.name.utf8)
            stubs.append(0)
        }
        if !stubEntries.isEmpty {
            var merged = zip(zip(starts, ends), nameRefs).map { (start: $0.0, end: $0.1, name: $1) }
            merged.append(contentsOf: stubEntries)
            merged.sort { $0.start < $1.start }
            starts = merged.map(\.start)
            ends = merged.map(\.end)
            nameRefs = merged.map(\.name)
        }
        var strings = sources.enumerated().map { table, source in
            copies[table].map { NameSource(copy: $0) } ?? source ?? NameSource(copy: [])
        }
        strings.append(NameSource(copy: stubs, versioned: true))
        var maximumEnds = ends
        for position in maximumEnds.indices.dropFirst() {
            maximumEnds[position] = max(maximumEnds[position], maximumEnds[position - 1])
        }
        self.base = base == .max ? 0 : base
        self.starts = starts
        self.ends = ends
        self.maximumEnds = maximumEnds
        self.nameRefs = nameRefs
        self.strings = strings
    }

    /// The bytes of the NUL-terminated name at `offset`, without a symbol version
    /// (`memcpy@@GLIBC_2.14` → `memcpy`) unless `keepingVersion`: versions appear in `.symtab`
    /// names of glibc and its debug file, never in Swift or C++ names.
    fileprivate static func unversionedName(
        in table: UnsafeRawBufferPointer,
        at offset: Int,
        keepingVersion: Bool = false
    ) -> UnsafeRawBufferPointer? {
        guard offset >= 0, offset < table.count, let base = table.baseAddress,
            let nul = memchr(base + offset, 0, table.count - offset)
        else { return nil }
        var length = base.distance(to: UnsafeRawPointer(nul)) - offset
        if !keepingVersion, let at = memchr(base + offset, Int32(UInt8(ascii: "@")), length),
            UnsafeRawPointer(at) != base + offset
        {
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
        guard address >= base, address - base < UInt64(UInt32.max) else { return nil }
        let offset = UInt32(address - base)
        var index = starts.partitionIndex { $0 > offset } - 1
        while index >= 0 && maximumEnds[index] > offset {
            if ends[index] > offset {
                // A name that cannot be read (a read error) leaves the address unnamed.
                guard let name = name(nameRefs[index]) else { return nil }
                return (name, base + UInt64(starts[index]))
            }
            index -= 1
        }
        return nil
    }

    /// Every symbol's start address and name (tests, benchmarks), without the PLT stubs we name
    /// ourselves (other symbolizers stretch `_init` over them).
    func allSymbols() -> [(start: UInt64, name: String)] {
        starts.indices.compactMap { index in
            name(nameRefs[index]).map { (base + UInt64(starts[index]), $0) }
        }
        .filter { !$0.name.hasSuffix("@plt") }
    }

    /// Heap bytes the table holds (benchmarks): its arrays and the names it copied.
    var heapBytes: Int {
        starts.capacity * 4 + ends.capacity * 4 + maximumEnds.capacity * 4 + nameRefs.capacity * 4
            + strings.reduce(0) { $0 + $1.heapBytes }
    }

    private func name(_ reference: UInt32) -> String? {
        strings[Int(reference >> SymbolTable.tableShift)].name(at: Int(reference & SymbolTable.offsetMask))
    }
}

/// One string table's names: in a mapped file, read from a file, or copied.
private final class NameSource: Sendable {
    enum Kind {
        case mapped(ELFFile, UnsafeRawBufferPointer)
        case read(path: String, ELFFile.FileIdentity, offset: UInt64, size: Int)
        case copied([UInt8])
    }

    let kind: Kind
    /// Whether names keep an `@` suffix (our `target@plt` names) rather than losing it as a symbol
    /// version.
    let versioned: Bool

    init(copy: [UInt8], versioned: Bool = false) {
        kind = .copied(copy)
        self.versioned = versioned
    }

    /// The names of `strings` (a string table of `file`) kept as `storage` asks; `read` falls back
    /// to copying when the file cannot be opened again as the same file.
    init?(file: ELFFile, strings: UnsafeRawBufferPointer, storage: SymbolTable.NameStorage) {
        versioned = false
        switch storage {
        case .mapped:
            kind = .mapped(file, strings)
        case .copied:
            kind = .copied([])
        case .read:
            if let offset = file.fileOffset(of: strings), let identity = file.fileIdentity {
                kind = .read(path: file.path, identity, offset: offset, size: strings.count)
            } else {
                kind = .copied([])
            }
        }
    }

    var heapBytes: Int {
        if case .copied(let bytes) = kind { return bytes.capacity }
        return 0
    }

    func name(at offset: Int) -> String? {
        switch kind {
        case .mapped(_, let table):
            return SymbolTable.nameString(in: table, at: offset)
        case .copied(let bytes):
            return bytes.withUnsafeBytes { SymbolTable.nameString(in: $0, at: offset, versioned: versioned) }
        case .read(let path, let identity, let tableOffset, let size):
            // Opened for each name, so that the service's descriptors stay its own; a file
            // replaced on disk since gives no name rather than a wrong one.
            guard offset < size, let file = OpenFile(path: path, identity: identity) else { return nil }
            // Most names fit the first read; longer ones (Swift generics) take a few.
            var chunk = 256
            while true {
                let length = min(chunk, size - offset)
                var bytes = [UInt8](repeating: 0, count: length)
                let got = bytes.withUnsafeMutableBytes { file.read(into: $0, at: tableOffset + UInt64(offset)) }
                guard got == length else { return nil }
                if bytes.contains(0) || length == size - offset {
                    return bytes.withUnsafeBytes { SymbolTable.nameString(in: $0, at: 0) }
                }
                chunk *= 4
            }
        }
    }
}

extension NameSource.Kind: @unchecked Sendable {}

extension SymbolTable {
    fileprivate static func nameString(in table: UnsafeRawBufferPointer, at offset: Int, versioned: Bool = false)
        -> String?
    {
        unversionedName(in: table, at: offset, keepingVersion: versioned).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// A file open for reading at offsets, closed when released.
final class OpenFile: Sendable {
    private let descriptor: Int32

    /// Opens `path`, if it is still the file `identity` names.
    init?(path: String, identity: ELFFile.FileIdentity) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        var info = stat()
        guard fstat(descriptor, &info) == 0,
            ELFFile.FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino)) == identity
        else {
            close(descriptor)
            return nil
        }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Reads `buffer.count` bytes at `offset` (fewer at the end of the file); -1 on an error.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> Int {
        var done = 0
        while done < buffer.count {
            let got = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if got < 0 && errno == EINTR { continue }
            if got < 0 { return -1 }
            if got == 0 { break }
            done += got
        }
        return done
    }
}
