import CPprof
import Glibc

/// A read-only, memory-mapped ELF64 little-endian file (x86_64 and aarch64 Linux).
///
/// Every read is bounds-checked, so a truncated or corrupt file throws `ELFError` instead of
/// crashing. Used outside signal handlers only: for symbols, build IDs, debug info and the unwind
/// tables that are prepared before sampling starts.
final class ELFFile: @unchecked Sendable {
    struct Section: Sendable {
        var name: String
        var type: UInt32
        var flags: UInt64
        var address: UInt64
        var offset: UInt64
        var size: UInt64
        var link: UInt32
        var entrySize: UInt64
    }

    struct ProgramHeader: Sendable {
        var type: UInt32
        var flags: UInt32
        var offset: UInt64
        var virtualAddress: UInt64
        var fileSize: UInt64
        var memorySize: UInt64
    }

    struct Symbol: Sendable {
        /// Offset of the NUL-terminated name in the string table of the symbol's table.
        var nameOffset: UInt32
        var info: UInt8
        var sectionIndex: UInt16
        var value: UInt64
        var size: UInt64
        var isFunction: Bool { info & 0xf == 2 /* STT_FUNC */ || info & 0xf == 10 /* STT_GNU_IFUNC */ }
        /// STB_LOCAL 0, STB_GLOBAL 1, STB_WEAK 2, STB_GNU_UNIQUE 10.
        var binding: UInt8 { info >> 4 }
        /// Defined in a real section of the file (not undefined, absolute or common).
        var isDefined: Bool { sectionIndex != 0 && sectionIndex < 0xff00 }
    }

    static let sectionTypeNote: UInt32 = 7
    static let sectionTypeNoBits: UInt32 = 8
    static let sectionTypeSymtab: UInt32 = 2
    static let sectionTypeDynsym: UInt32 = 11
    static let sectionFlagCompressed: UInt64 = 0x800
    static let programHeaderLoad: UInt32 = 1
    static let machineX86_64: UInt16 = 62
    static let machineAArch64: UInt16 = 183
    static let maximumDecompressedSection: UInt64 = 1 << 30

    let path: String
    /// The whole file.
    let bytes: UnsafeRawBufferPointer
    let fileType: UInt16
    let machine: UInt16
    let sections: [Section]
    let programHeaders: [ProgramHeader]
    /// The mapped length, or 0 when `bytes` is an allocated copy (an image read from memory).
    private let mappedLength: Int
    /// The file's device and inode when read from a path, so that a later `open` can tell it is
    /// still the same file.
    let fileIdentity: FileIdentity?

    struct FileIdentity: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
    }

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ELFError.cannotOpen(path, errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size >= 64 else { throw ELFError.malformed(path, "too short") }
        let length = Int(info.st_size)
        guard let base = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw ELFError.cannotOpen(path, errno: errno)
        }
        let bytes = UnsafeRawBufferPointer(start: base, count: length)
        do {
            (fileType, machine, programHeaders, sections) = try ELFFile.parse(bytes, path: path)
        } catch {
            munmap(base, length)
            throw error
        }
        self.bytes = bytes
        self.mappedLength = length
        self.fileIdentity = FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// An ELF image held in memory rather than in a file (the vDSO); `name` is used in errors.
    init(name: String, contents: [UInt8]) throws {
        self.path = name
        guard contents.count >= 64 else { throw ELFError.malformed(name, "too short") }
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: contents.count, alignment: 16)
        storage.copyBytes(from: contents)
        let bytes = UnsafeRawBufferPointer(storage)
        do {
            (fileType, machine, programHeaders, sections) = try ELFFile.parse(bytes, path: name)
        } catch {
            storage.deallocate()
            throw error
        }
        self.bytes = bytes
        self.mappedLength = 0
        self.fileIdentity = nil
    }

    deinit {
        if mappedLength > 0 {
            munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), mappedLength)
        } else {
            bytes.deallocate()
        }
    }

    // MARK: Sections

    func section(named name: String) -> Section? {
        sections.first { $0.name == name }
    }

    /// The contents of a section, decompressed when it is `SHF_COMPRESSED` (zlib). `nil` for
    /// `SHT_NOBITS` sections and sections outside the file.
    func contents(of section: Section) throws -> ELFBytes? {
        guard section.type != ELFFile.sectionTypeNoBits else { return nil }
        guard let raw = slice(offset: section.offset, count: section.size) else {
            throw ELFError.malformed(path, "section \(section.name) outside the file")
        }
        guard section.flags & ELFFile.sectionFlagCompressed != 0 else { return ELFBytes(owner: self, bytes: raw) }
        // Elf64_Chdr: ch_type u32, reserved u32, ch_size u64, ch_addralign u64.
        var reader = ByteReader(raw)
        let kind = try reader.u32()
        _ = try reader.u32()
        let size = try reader.u64()
        _ = try reader.u64()
        guard kind == 1 /* ELFCOMPRESS_ZLIB */ else {
            throw ELFError.malformed(path, "section \(section.name) uses unsupported compression \(kind)")
        }
        // The declared size bounds the output, so a corrupt header cannot make us inflate gigabytes.
        guard size <= ELFFile.maximumDecompressedSection else {
            throw ELFError.malformed(path, "section \(section.name) declares \(size) bytes uncompressed")
        }
        let compressed = UnsafeRawBufferPointer(rebasing: raw[reader.offset...])
        let inflated = try Zlib.inflate(compressed, expectedSize: Int(size), limit: Int(size))
        guard inflated.count == Int(size) else {
            throw ELFError.malformed(path, "section \(section.name) inflates to the wrong size")
        }
        return ELFBytes(owned: inflated)
    }

    /// The contents of the named section, or `nil` if the file has no such section.
    func contents(ofSectionNamed name: String) throws -> ELFBytes? {
        guard let section = section(named: name) else { return nil }
        return try contents(of: section)
    }

    /// Where `slice` (a slice of this file's bytes) starts in the file.
    func fileOffset(of slice: UnsafeRawBufferPointer) -> UInt64? {
        guard let base = bytes.baseAddress, let start = slice.baseAddress, start >= base,
            base.distance(to: start) + slice.count <= bytes.count
        else { return nil }
        return UInt64(base.distance(to: start))
    }

    func slice(offset: UInt64, count: UInt64) -> UnsafeRawBufferPointer? {
        guard offset <= UInt64(bytes.count), count <= UInt64(bytes.count) - offset else { return nil }
        return UnsafeRawBufferPointer(rebasing: bytes[Int(offset)..<Int(offset + count)])
    }

    // MARK: Symbols

    /// Calls `body` for each symbol of `.symtab` (when `dynamic` is false) or `.dynsym`, with the
    /// string table the names live in.
    func forEachSymbol(
        dynamic: Bool,
        _ body: (Symbol, _ strings: UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let wanted = dynamic ? ELFFile.sectionTypeDynsym : ELFFile.sectionTypeSymtab
        guard let table = sections.first(where: { $0.type == wanted }) else { return }
        guard Int(table.link) < sections.count,
            let strings = slice(offset: sections[Int(table.link)].offset, count: sections[Int(table.link)].size),
            let data = slice(offset: table.offset, count: table.size)
        else { throw ELFError.malformed(path, "symbol table outside the file") }
        let entrySize = 24
        var offset = 0
        while offset + entrySize <= data.count {
            var reader = ByteReader(UnsafeRawBufferPointer(rebasing: data[offset..<offset + entrySize]))
            let nameOffset = try reader.u32()
            let info = try reader.u8()
            _ = try reader.u8()
            let sectionIndex = try reader.u16()
            let value = try reader.u64()
            let size = try reader.u64()
            try body(
                Symbol(nameOffset: nameOffset, info: info, sectionIndex: sectionIndex, value: value, size: size),
                strings
            )
            offset += entrySize
        }
    }

    /// The PLT stubs through which this image calls other images' functions, each named
    /// `target@plt` (as perf and objdump name them): no symbol covers them, and a sample in one
    /// (a leaf that just jumped to a lazily bound function) would otherwise stay nameless.
    /// Slot `i` of `.plt.sec` (x86-64 with IBT) or of `.plt` after its header belongs to entry `i`
    /// of `.rela.plt`, the order every linker writes them in.
    func procedureLinkageStubs() -> [(range: Range<UInt64>, name: String)] {
        let stubSize: UInt64 = 16
        let header: UInt64
        switch machine {
        case ELFFile.machineX86_64: header = 16
        case ELFFile.machineAArch64: header = 32
        default: return []
        }
        guard let relocations = section(named: ".rela.plt"),
            let data = slice(offset: relocations.offset, count: relocations.size)
        else { return [] }
        let firstSlot: UInt64
        if let secondary = section(named: ".plt.sec") {
            firstSlot = secondary.address
        } else if let plt = section(named: ".plt") {
            firstSlot = plt.address &+ header
        } else {
            return []
        }
        // Name offsets only: a String is made for the few symbols the PLT calls.
        var nameOffsets: [UInt32] = []
        var names = UnsafeRawBufferPointer(start: nil, count: 0)
        try? forEachSymbol(dynamic: true) { symbol, strings in
            nameOffsets.append(symbol.nameOffset)
            names = strings
        }
        var stubs: [(range: Range<UInt64>, name: String)] = []
        let entrySize = 24
        var offset = 0
        while offset + entrySize <= data.count {
            var reader = ByteReader(UnsafeRawBufferPointer(rebasing: data[offset..<offset + entrySize]))
            _ = try? reader.u64()  // r_offset: the GOT slot
            let info = (try? reader.u64()) ?? 0
            let symbolIndex = Int(info >> 32)
            let start = firstSlot &+ UInt64(offset / entrySize) &* stubSize
            if symbolIndex > 0, symbolIndex < nameOffsets.count,
                let name = cString(in: names, at: Int(nameOffsets[symbolIndex])), !name.isEmpty
            {
                stubs.append((start..<start &+ stubSize, name + "@plt"))
            }
            offset += entrySize
        }
        return stubs
    }

    var hasSymtab: Bool { sections.contains { $0.type == ELFFile.sectionTypeSymtab } }

    // MARK: Identity

    /// The GNU build ID as lower-case hex, found the way Go finds it: the first `SHT_NOTE` section
    /// holding a note named "GNU" of type 3 (NT_GNU_BUILD_ID) with at most 256 bytes.
    var buildID: String? {
        for section in sections where section.type == ELFFile.sectionTypeNote {
            guard let data = slice(offset: section.offset, count: section.size) else { continue }
            if let id = ELFFile.buildID(inNotes: data) { return id }
        }
        return nil
    }

    static func buildID(inNotes data: UnsafeRawBufferPointer) -> String? {
        var reader = ByteReader(data)
        while reader.remaining >= 12 {
            guard let nameSize = try? reader.u32(), let descSize = try? reader.u32(), let type = try? reader.u32()
            else { return nil }
            let paddedName = (Int(nameSize) + 3) & ~3
            let paddedDesc = (Int(descSize) + 3) & ~3
            guard let name = try? reader.bytes(paddedName), let desc = try? reader.bytes(paddedDesc) else { return nil }
            if nameSize == 4, type == 3, descSize <= 256, name[0] == 0x47, name[1] == 0x4e, name[2] == 0x55,
                name[3] == 0
            {
                return hex(UnsafeRawBufferPointer(rebasing: desc[0..<Int(descSize)]))
            }
        }
        return nil
    }

    /// `.gnu_debuglink`: the file name of separate debug info and its CRC32.
    var debugLink: (name: String, crc: UInt32)? {
        guard let section = section(named: ".gnu_debuglink"),
            let data = slice(offset: section.offset, count: section.size),
            let nul = data.firstIndex(of: 0)
        else { return nil }
        let name = String(decoding: data[..<nul], as: UTF8.self)
        let crcOffset = (nul + 4) & ~3
        guard crcOffset + 4 <= data.count else { return nil }
        return (name, data.loadUnaligned(fromByteOffset: crcOffset, as: UInt32.self))
    }

    /// `.gnu_debugaltlink` (dwz): the supplementary debug file's path and build ID.
    var debugAltLink: (path: String, buildID: String)? {
        guard let section = section(named: ".gnu_debugaltlink"),
            let data = slice(offset: section.offset, count: section.size),
            let nul = data.firstIndex(of: 0)
        else { return nil }
        return (String(decoding: data[..<nul], as: UTF8.self), hex(data[(nul + 1)...]))
    }

    /// The lowest virtual address of a `PT_LOAD` segment; symbol values are relative to it plus the
    /// image's load bias.
    var firstLoadAddress: UInt64 {
        programHeaders.filter { $0.type == ELFFile.programHeaderLoad }.map(\.virtualAddress).min() ?? 0
    }

    // MARK: Parsing

    private struct Header {
        var type: UInt16
        var machine: UInt16
        var programHeaderOffset: UInt64
        var sectionHeaderOffset: UInt64
        var programHeaderEntrySize: UInt16
        var programHeaderCount: UInt16
        var sectionHeaderEntrySize: UInt16
        var sectionHeaderCount: UInt16
        var sectionNamesIndex: UInt16
    }

    private static func parse(
        _ bytes: UnsafeRawBufferPointer,
        path: String
    ) throws -> (type: UInt16, machine: UInt16, programHeaders: [ProgramHeader], sections: [Section]) {
        let header = try parseHeader(bytes, path: path)
        return (
            header.type, header.machine, try parseProgramHeaders(bytes, header: header, path: path),
            try parseSections(bytes, header: header, path: path)
        )
    }

    private static func parseHeader(_ bytes: UnsafeRawBufferPointer, path: String) throws -> Header {
        guard bytes[0] == 0x7f, bytes[1] == 0x45, bytes[2] == 0x4c, bytes[3] == 0x46 else {
            throw ELFError.malformed(path, "not an ELF file")
        }
        guard bytes[4] == 2, bytes[5] == 1 else { throw ELFError.malformed(path, "not ELF64 little-endian") }
        var reader = ByteReader(bytes)
        reader.offset = 16
        let type = try reader.u16()
        let machine = try reader.u16()
        _ = try reader.u32()  // version
        _ = try reader.u64()  // entry
        let phoff = try reader.u64()
        let shoff = try reader.u64()
        _ = try reader.u32()  // flags
        _ = try reader.u16()  // ehsize
        let phentsize = try reader.u16()
        let phnum = try reader.u16()
        let shentsize = try reader.u16()
        let shnum = try reader.u16()
        let shstrndx = try reader.u16()
        return Header(
            type: type,
            machine: machine,
            programHeaderOffset: phoff,
            sectionHeaderOffset: shoff,
            programHeaderEntrySize: phentsize,
            programHeaderCount: phnum,
            sectionHeaderEntrySize: shentsize,
            sectionHeaderCount: shnum,
            sectionNamesIndex: shstrndx
        )
    }

    private static func parseProgramHeaders(
        _ bytes: UnsafeRawBufferPointer,
        header: Header,
        path: String
    ) throws -> [ProgramHeader] {
        guard header.programHeaderCount > 0 else { return [] }
        guard header.programHeaderEntrySize == 56 else { throw ELFError.malformed(path, "bad program header size") }
        var result: [ProgramHeader] = []
        for index in 0..<Int(header.programHeaderCount) {
            var reader = ByteReader(bytes)
            reader.offset = Int(clamping: header.programHeaderOffset) &+ index * 56
            let type = try reader.u32()
            let flags = try reader.u32()
            let offset = try reader.u64()
            let vaddr = try reader.u64()
            _ = try reader.u64()  // paddr
            let filesz = try reader.u64()
            let memsz = try reader.u64()
            result.append(
                ProgramHeader(
                    type: type,
                    flags: flags,
                    offset: offset,
                    virtualAddress: vaddr,
                    fileSize: filesz,
                    memorySize: memsz
                )
            )
        }
        return result
    }

    private static func parseSections(_ bytes: UnsafeRawBufferPointer, header: Header, path: String) throws -> [Section]
    {
        guard header.sectionHeaderCount > 0, header.sectionHeaderOffset > 0 else { return [] }
        guard header.sectionHeaderEntrySize == 64 else { throw ELFError.malformed(path, "bad section header size") }
        var raw: [Section] = []
        var nameOffsets: [UInt32] = []
        for index in 0..<Int(header.sectionHeaderCount) {
            var reader = ByteReader(bytes)
            reader.offset = Int(clamping: header.sectionHeaderOffset) &+ index * 64
            nameOffsets.append(try reader.u32())
            let type = try reader.u32()
            let flags = try reader.u64()
            let addr = try reader.u64()
            let offset = try reader.u64()
            let size = try reader.u64()
            let link = try reader.u32()
            _ = try reader.u32()  // info
            _ = try reader.u64()  // addralign
            let entsize = try reader.u64()
            raw.append(
                Section(
                    name: "",
                    type: type,
                    flags: flags,
                    address: addr,
                    offset: offset,
                    size: size,
                    link: link,
                    entrySize: entsize
                )
            )
        }
        let namesIndex = Int(header.sectionNamesIndex)
        guard namesIndex < raw.count else { return raw }
        let names = raw[namesIndex]
        guard names.offset <= UInt64(bytes.count), names.size <= UInt64(bytes.count) - names.offset else {
            throw ELFError.malformed(path, "section names outside the file")
        }
        let table = UnsafeRawBufferPointer(rebasing: bytes[Int(names.offset)..<Int(names.offset + names.size)])
        for index in raw.indices {
            raw[index].name = cString(in: table, at: Int(nameOffsets[index])) ?? ""
        }
        return raw
    }
}

/// Bytes read from an ELF file: either a view into the mapped file (kept alive by `owner`) or a
/// decompressed copy.
struct ELFBytes: @unchecked Sendable {
    private let owner: AnyObject?
    private let storage: [UInt8]?
    private let view: UnsafeRawBufferPointer?

    init(owner: ELFFile, bytes: UnsafeRawBufferPointer) {
        self.owner = owner
        self.view = bytes
        self.storage = nil
    }

    init(owned: [UInt8]) {
        self.owner = nil
        self.view = nil
        self.storage = owned
    }

    var count: Int { view?.count ?? storage!.count }

    /// True when the bytes are a view into the mapped file (valid as long as the `ELFFile` lives),
    /// false for a decompressed copy.
    var isView: Bool { view != nil }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if let view { return try withExtendedLifetime(owner) { try body(view) } }
        return try storage!.withUnsafeBytes(body)
    }
}

enum ELFError: Error, CustomStringConvertible {
    case cannotOpen(String, errno: Int32)
    case malformed(String, String)

    var description: String {
        switch self {
        case .cannotOpen(let path, let code): return "cannot read \(path): \(String(cString: strerror(code)))"
        case .malformed(let path, let why): return "\(path) is not a usable ELF file: \(why)"
        }
    }
}

/// Reads the NUL-terminated string at `offset` of `table`, or `nil` when it runs off the end.
func cString(in table: UnsafeRawBufferPointer, at offset: Int) -> String? {
    guard offset >= 0, offset < table.count, let base = table.baseAddress else { return nil }
    guard let nul = memchr(base + offset, 0, table.count - offset) else { return nil }
    let length = base.distance(to: UnsafeRawPointer(nul)) - offset
    return String(decoding: UnsafeRawBufferPointer(start: base + offset, count: length), as: UTF8.self)
}

func hex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0xf)])
    }
    return String(decoding: out, as: UTF8.self)
}
