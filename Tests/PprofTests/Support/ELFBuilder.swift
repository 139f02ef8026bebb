/// Assembles a minimal ELF64 image in memory, with the sections a test gives and optionally
/// function symbols, so that tests can feed the symbolizer exactly the (malformed) DWARF they
/// mean to.
struct ELFBuilder {
    var sections: [(name: String, bytes: [UInt8])] = []
    var functions: [(name: String, address: UInt64, size: UInt64)] = []
    /// A GNU build ID (as a `.note.gnu.build-id` section).
    var buildID: [UInt8]? = nil

    func build() -> [UInt8] {
        var sectionNames: [UInt8] = [0]
        var headers: [[UInt8]] = [[UInt8](repeating: 0, count: 64)]  // SHT_NULL
        var data: [UInt8] = []
        let dataStart = 64

        func addSection(_ name: String, type: UInt32, bytes: [UInt8], link: UInt32 = 0, entrySize: UInt64 = 0) {
            let nameOffset = UInt32(sectionNames.count)
            sectionNames += Array(name.utf8) + [0]
            let offset = UInt64(dataStart + data.count)
            data += bytes
            var header: [UInt8] = []
            header.append(little: nameOffset)
            header.append(little: type)
            header.append(little: UInt64(type == 8 ? 6 : 0))  // .text: SHF_ALLOC | SHF_EXECINSTR
            header.append(little: UInt64(type == 8 ? 0x1000 : 0))  // address
            header.append(little: offset)
            header.append(little: UInt64(type == 8 ? 0x10000 : bytes.count))
            header.append(little: link)
            header.append(little: UInt32(0))  // info
            header.append(little: UInt64(1))  // alignment
            header.append(little: entrySize)
            headers.append(header)
        }

        addSection(".text", type: 8, bytes: [])  // SHT_NOBITS, covering 0x1000..<0x11000
        if let buildID {
            var note: [UInt8] = []
            note.append(little: UInt32(4))
            note.append(little: UInt32(buildID.count))
            note.append(little: UInt32(3))  // NT_GNU_BUILD_ID
            note += Array("GNU".utf8) + [0] + buildID
            addSection(".note.gnu.build-id", type: 7, bytes: note)
        }
        for section in sections { addSection(section.name, type: 1, bytes: section.bytes) }
        if !functions.isEmpty {
            var strings: [UInt8] = [0]
            var symbols = [UInt8](repeating: 0, count: 24)
            for function in functions {
                symbols.append(little: UInt32(strings.count))
                strings += Array(function.name.utf8) + [0]
                symbols.append(0x12)  // STB_GLOBAL, STT_FUNC
                symbols.append(0)
                symbols.append(little: UInt16(1))  // .text
                symbols.append(little: function.address)
                symbols.append(little: function.size)
            }
            let stringsIndex = UInt32(headers.count + 1)
            addSection(".symtab", type: 2, bytes: symbols, link: stringsIndex, entrySize: 24)
            addSection(".strtab", type: 3, bytes: strings)
        }
        let namesIndex = headers.count
        // The section-name table holds its own name too, at the offset `addSection` gives it.
        addSection(".shstrtab", type: 3, bytes: sectionNames + Array(".shstrtab".utf8) + [0])

        let sectionHeaderOffset = UInt64(dataStart + data.count)
        var file: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        file.append(little: UInt16(3))  // ET_DYN
        file.append(little: UInt16(62))  // x86-64
        file.append(little: UInt32(1))
        file.append(little: UInt64(0))  // entry
        file.append(little: UInt64(0))  // program headers: none
        file.append(little: sectionHeaderOffset)
        file.append(little: UInt32(0))
        file.append(little: UInt16(64))
        file.append(little: UInt16(56))
        file.append(little: UInt16(0))
        file.append(little: UInt16(64))
        file.append(little: UInt16(headers.count))
        file.append(little: UInt16(namesIndex))
        return file + data + headers.flatMap { $0 }
    }
}

/// Writes DWARF by hand: ULEB128s, little-endian integers, unit headers.
struct DWARFWriter {
    var bytes: [UInt8] = []

    mutating func uleb(_ value: UInt64) {
        var value = value
        repeat {
            var byte = UInt8(value & 0x7f)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            bytes.append(byte)
        } while value != 0
    }

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { bytes.append(little: value) }
    mutating func u32(_ value: UInt32) { bytes.append(little: value) }
    mutating func u64(_ value: UInt64) { bytes.append(little: value) }
    mutating func string(_ value: String) { bytes += Array(value.utf8) + [0] }

    /// An abbreviation: code, tag, children flag, (attribute, form) pairs.
    mutating func abbreviation(_ code: UInt64, tag: UInt64, children: Bool, _ attributes: [(UInt64, UInt64)]) {
        uleb(code)
        uleb(tag)
        u8(children ? 1 : 0)
        for (attribute, form) in attributes {
            uleb(attribute)
            uleb(form)
        }
        uleb(0)
        uleb(0)
    }

    /// Wraps `body` (everything after the header) in a DWARF 4 unit header for abbreviations at 0.
    static func unit4(_ body: [UInt8]) -> [UInt8] {
        var header: [UInt8] = []
        header.append(little: UInt32(body.count + 7))
        header.append(little: UInt16(4))
        header.append(little: UInt32(0))  // abbreviation offset
        header.append(8)  // address size
        return header + body
    }
}

extension Array where Element == UInt8 {
    mutating func append<T: FixedWidthInteger>(little value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
