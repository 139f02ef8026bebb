/// One unit's `.debug_line` program (DWARF 2–5), run once into rows sorted per sequence.
struct DWARFLineTable {
    struct Row {
        var address: UInt64
        var line: UInt32
        var file: UInt32
    }

    /// Rows `rows` cover `start..<end`; the last row of a sequence is its end marker.
    struct Sequence {
        var start: UInt64
        var end: UInt64
        var rows: Range<Int>
    }

    private(set) var rows: [Row] = []
    private(set) var sequences: [Sequence] = []
    /// Sequence indices by the code they cover.
    private var sequenceIndex = IntervalIndex<Int>([])
    /// Full paths by file index (DWARF 5 counts from 0, earlier versions from 1; index 0 is then "").
    private(set) var files: [String] = []

    init(_ dwarf: DWARFFile, unit: DWARFFile.Unit, offset: Int) throws {
        var reader = ByteReader(dwarf.line)
        reader.offset = offset
        var length = UInt64(try reader.u32())
        var offsetSize = 4
        if length == 0xffff_ffff {
            length = try reader.u64()
            offsetSize = 8
        }
        guard length <= UInt64(reader.remaining) else { throw ByteReader.Truncated(offset: offset) }
        let end = reader.offset + Int(length)
        let version = Int(try reader.u16())
        guard (2...5).contains(version) else {
            throw ByteReader.Malformed(offset: offset, reason: "unsupported line table version \(version)")
        }
        if version >= 5 {
            _ = try reader.u8()  // address size: DW_LNE_set_address carries its own length
            _ = try reader.u8()  // segment selector size
        }
        let headerLength = try reader.unsigned(size: offsetSize)
        guard reader.offset <= end, headerLength <= UInt64(end - reader.offset) else {
            throw ByteReader.Truncated(offset: reader.offset)
        }
        let programStart = reader.offset + Int(headerLength)
        let minimumInstructionLength = UInt64(try reader.u8())
        if version >= 4 { _ = try reader.u8() }  // maximum operations per instruction (VLIW only)
        _ = try reader.u8()  // default is_stmt
        let lineBase = Int64(try reader.i8())
        let lineRange = UInt64(try reader.u8())
        let opcodeBase = try reader.u8()
        guard lineRange > 0, opcodeBase > 0 else {
            throw ByteReader.Malformed(offset: reader.offset, reason: "line table with zero line range or opcode base")
        }
        var standardLengths: [UInt8] = []
        for _ in 1..<opcodeBase { standardLengths.append(try reader.u8()) }

        var programReader = reader
        programReader.offset = programStart
        if version >= 5 {
            try readFileTable5(&reader, dwarf: dwarf, unit: unit, offsetSize: offsetSize)
        } else {
            try readFileTable4(&reader, unit: unit)
        }
        try run(
            &programReader,
            end: end,
            minimumInstructionLength: minimumInstructionLength,
            lineBase: lineBase,
            lineRange: lineRange,
            opcodeBase: opcodeBase,
            standardLengths: standardLengths
        )
    }

    // MARK: File names

    private mutating func readFileTable4(_ reader: inout ByteReader, unit: DWARFFile.Unit) throws {
        var directories = [unit.compilationDirectory]
        while true {
            let directory = try reader.cString()
            if directory.isEmpty { break }
            directories.append(directory)
        }
        files = [""]
        while true {
            let name = try reader.cString()
            if name.isEmpty { break }
            let directory = try reader.uleb128()
            _ = try reader.uleb128()  // modification time
            _ = try reader.uleb128()  // length
            let dir = directory < UInt64(directories.count) ? directories[Int(directory)] : ""
            files.append(DWARFLineTable.join(unit.compilationDirectory, dir, name))
        }
    }

    private mutating func readFileTable5(
        _ reader: inout ByteReader,
        dwarf: DWARFFile,
        unit: DWARFFile.Unit,
        offsetSize: Int
    ) throws {
        var lineUnit = unit
        lineUnit.offsetSize = offsetSize
        func readEntries() throws -> [(path: String, directory: UInt64)] {
            let formatCount = Int(try reader.u8())
            var formats: [(content: UInt64, form: UInt64)] = []
            for _ in 0..<formatCount { formats.append((try reader.uleb128(), try reader.uleb128())) }
            let count = try reader.uleb128()
            guard count <= UInt64(reader.remaining) else { throw ByteReader.Truncated(offset: reader.offset) }
            var entries: [(path: String, directory: UInt64)] = []
            for _ in 0..<count {
                var entry = (path: "", directory: UInt64(0))
                for format in formats {
                    let spec = DWARFFile.AttributeSpec(name: format.content, form: format.form, implicitConstant: 0)
                    let value = try dwarf.readValue(spec, &reader, lineUnit)
                    switch format.content {
                    case DW.LineContent.path:
                        if case .inlineString(let offset) = value {
                            entry.path = cString(in: reader.bytes, at: offset) ?? ""
                        } else {
                            entry.path = dwarf.string(value, in: lineUnit) ?? ""
                        }
                    case DW.LineContent.directoryIndex: entry.directory = value.integer ?? 0
                    default: break
                    }
                }
                entries.append(entry)
            }
            return entries
        }
        let directories = try readEntries().map(\.path)
        let compilationDirectory = directories.first ?? unit.compilationDirectory
        files = try readEntries().map { entry in
            let dir = entry.directory < UInt64(directories.count) ? directories[Int(entry.directory)] : ""
            return DWARFLineTable.join(compilationDirectory, dir, entry.path)
        }
    }

    /// `name` if absolute, else `directory/name`, with a relative directory under the compilation directory.
    /// Swift's `<compiler-generated>` pseudo-file is kept as it is, without a directory.
    static func join(_ compilationDirectory: String, _ directory: String, _ name: String) -> String {
        if name.hasPrefix("/") || name.isEmpty || name.hasPrefix("<") { return name }
        var path = directory
        if !path.hasPrefix("/") && !compilationDirectory.isEmpty && path != compilationDirectory {
            path = path.isEmpty ? compilationDirectory : compilationDirectory + "/" + path
        }
        if path.isEmpty { return name }
        // Kept as DWARF spells it (`./math/./e_exp.c`), as llvm-symbolizer and addr2line show it.
        return path.hasSuffix("/") ? path + name : path + "/" + name
    }

    func fileName(_ index: UInt64) -> String {
        index < UInt64(files.count) ? files[Int(index)] : ""
    }

    // MARK: The line program

    private mutating func run(
        _ reader: inout ByteReader,
        end: Int,
        minimumInstructionLength: UInt64,
        lineBase: Int64,
        lineRange: UInt64,
        opcodeBase: UInt8,
        standardLengths: [UInt8]
    ) throws {
        var address: UInt64 = 0
        var file: UInt64 = 1
        var line: Int64 = 1
        var sequenceStart = rows.count
        func emit() {
            rows.append(Row(address: address, line: UInt32(clamping: line), file: UInt32(clamping: file)))
        }
        while reader.offset < end {
            let opcode = try reader.u8()
            if opcode >= opcodeBase {
                let adjusted = UInt64(opcode - opcodeBase)
                address &+= (adjusted / lineRange) &* minimumInstructionLength
                line &+= lineBase &+ Int64(adjusted % lineRange)
                emit()
                continue
            }
            switch opcode {
            case 0:
                let length = Int(clamping: try reader.uleb128())
                guard length > 0, length <= end - reader.offset else {
                    throw ByteReader.Truncated(offset: reader.offset)
                }
                let next = reader.offset + length
                let extended = try reader.u8()
                switch extended {
                case 1:  // DW_LNE_end_sequence
                    emit()
                    finishSequence(from: sequenceStart)
                    sequenceStart = rows.count
                    address = 0
                    file = 1
                    line = 1
                case 2:  // DW_LNE_set_address
                    address = try reader.unsigned(size: length - 1)
                default: break  // define_file (obsolete), set_discriminator, vendor extensions
                }
                reader.offset = next
            case 1: emit()  // DW_LNS_copy
            case 2: address &+= (try reader.uleb128()) &* minimumInstructionLength  // advance_pc
            case 3: line &+= try reader.sleb128()  // advance_line
            case 4: file = try reader.uleb128()  // set_file
            case 5: _ = try reader.uleb128()  // set_column
            case 6, 7, 10, 11: break  // negate_stmt, basic_block, prologue_end, epilogue_begin
            case 8: address &+= ((255 - UInt64(opcodeBase)) / lineRange) &* minimumInstructionLength  // const_add_pc
            case 9: address &+= UInt64(try reader.u16())  // fixed_advance_pc
            default:
                for _ in 0..<standardLengths[Int(opcode) - 1] { _ = try reader.uleb128() }
            }
        }
        // A program that ends without end_sequence keeps no unterminated rows.
        rows.removeSubrange(sequenceStart...)
        sequenceIndex = IntervalIndex(sequences.enumerated().map { ($1.start..<$1.end, $0) })
    }

    /// Sorts a finished sequence's rows by address and records it, unless the linker discarded it.
    private mutating func finishSequence(from start: Int) {
        guard rows.count - start >= 2 else {
            rows.removeSubrange(start...)
            return
        }
        let first = rows[start].address
        let last = rows[rows.count - 1].address
        if DWARFFile.isTombstone(first) || last <= first {
            rows.removeSubrange(start...)
            return
        }
        // Addresses only grow within a sequence, except in odd producers' output: order those
        // rows by address, keeping the program order of rows at the same address.
        let slice = rows[start...]
        if !zip(slice, slice.dropFirst()).allSatisfy({ $0.address <= $1.address }) {
            let sorted = slice.enumerated().sorted {
                ($0.element.address, $0.offset) < ($1.element.address, $1.offset)
            }.map(\.element)
            rows.replaceSubrange(start..., with: sorted)
        }
        sequences.append(Sequence(start: first, end: last, rows: start..<rows.count))
    }

    /// The row for `address`: the last row at or below it in the sequence that covers it.
    func row(at address: UInt64) -> Row? {
        guard let sequence = sequenceIndex.first(containing: address).map({ sequences[$0] }) else { return nil }
        // The end marker covers nothing.
        let candidates = rows[sequence.rows.lowerBound..<sequence.rows.upperBound - 1]
        let above = candidates.partitionIndex { $0.address > address }
        return above > candidates.startIndex ? rows[above - 1] : nil
    }

    /// The address ranges the program covers (for units whose DIE has no ranges).
    var coveredRanges: [Range<UInt64>] {
        sequences.map { $0.start..<$0.end }
    }
}
