import Synchronization

/// The DWARF debug sections of one ELF file and the units of its `.debug_info` (versions 2–5).
///
/// Immutable after `init`: the section views stay valid for the object's lifetime (mapped file
/// pages kept alive by `file`, or decompressed copies owned here). Every read goes through
/// `ByteReader`, so corrupt input throws; a unit that does not parse is left out rather than
/// failing the whole file.
final class DWARFFile: @unchecked Sendable {
    /// A compilation unit (or partial/skeleton unit) and the attributes of its unit DIE.
    struct Unit {
        var offset: Int
        var end: Int
        var firstDIE: Int
        var version: Int
        var unitType: UInt8
        var addressSize: Int
        var offsetSize: Int
        var abbreviationOffset: Int
        var baseAddress: UInt64 = 0
        var addrBase: Int = 8
        var strOffsetsBase: Int = 8
        var rnglistsBase: Int = 12
        var lineTableOffset: Int?
        var compilationDirectory = ""
        var name = ""
        /// Code ranges from the unit DIE (`DW_AT_low_pc`/`high_pc` or `DW_AT_ranges`); empty if it has none.
        var ranges: [Range<UInt64>] = []
    }

    /// 16 bytes: attribute and form numbers fit in 32 bits (larger ones read as an unknown form).
    struct AttributeSpec {
        private var storedName: UInt32
        private var storedForm: UInt32
        var implicitConstant: Int64
        var name: UInt64 { UInt64(storedName) }
        var form: UInt64 { UInt64(storedForm) }

        init(name: UInt64, form: UInt64, implicitConstant: Int64) {
            storedName = UInt32(truncatingIfNeeded: min(name, UInt64(UInt32.max)))
            storedForm = UInt32(truncatingIfNeeded: min(form, UInt64(UInt32.max)))
            self.implicitConstant = implicitConstant
        }
    }

    struct Abbreviation {
        var tag: UInt64
        var hasChildren: Bool
        var attributes: Range<Int>
    }

    /// One abbreviation table: codes 1..<n are the usual case and are looked up directly.
    struct AbbreviationTable {
        var abbreviations: [Abbreviation] = []
        var specs: [AttributeSpec] = []
        var dense: [Int32] = []
        var sparse: [UInt64: Int32] = [:]

        func abbreviation(_ code: UInt64) -> Abbreviation? {
            if code < UInt64(dense.count) {
                let index = dense[Int(code)]
                return index >= 0 ? abbreviations[Int(index)] : nil
            }
            return sparse[code].map { abbreviations[Int($0)] }
        }
    }

    /// An attribute value, before strings, addresses and range lists are resolved against the unit.
    enum Value {
        case unsigned(UInt64)
        case signed(Int64)
        case address(UInt64)
        case addressIndex(UInt64)
        case stringOffset(UInt64)
        case lineStringOffset(UInt64)
        case stringIndex(UInt64)
        case inlineString(Int)
        /// An absolute offset in `.debug_info`.
        case reference(Int)
        case rangeListIndex(UInt64)
        /// An offset in the supplementary file's `.debug_info` (DW_FORM_GNU_ref_alt, ref_sup).
        case supplementaryReference(Int)
        /// An offset in the supplementary file's `.debug_str` (DW_FORM_GNU_strp_alt, strp_sup).
        case supplementaryString(UInt64)
        /// Blocks, expressions and type signatures.
        case unsupported

        var integer: UInt64? {
            switch self {
            case .unsigned(let value): return value
            case .signed(let value): return UInt64(bitPattern: value)
            default: return nil
            }
        }
    }

    let info: UnsafeRawBufferPointer
    let abbrev: UnsafeRawBufferPointer
    let str: UnsafeRawBufferPointer
    let lineStr: UnsafeRawBufferPointer
    let line: UnsafeRawBufferPointer
    let rangesSection: UnsafeRawBufferPointer
    let rnglists: UnsafeRawBufferPointer
    let addr: UnsafeRawBufferPointer
    let strOffsets: UnsafeRawBufferPointer
    private(set) var units: [Unit] = []
    /// Abbreviation tables by `.debug_abbrev` offset, parsed when a unit is first used: a large
    /// library has thousands, most never needed.
    private let abbreviationTables = Mutex<[Int: AbbreviationTable?]>([:])
    /// Frees the units' code ranges once the caller has indexed them (before the file is shared).
    func releaseUnitRanges() {
        for index in units.indices { units[index].ranges = [] }
    }

    /// Units skipped because they did not parse.
    private(set) var skippedUnits = 0

    /// The dwz supplementary file (`.gnu_debugaltlink`) holding DIEs and strings shared by several
    /// debug files, which this file's DW_FORM_GNU_ref_alt and DW_FORM_GNU_strp_alt point into.
    let supplementary: DWARFFile?
    /// Keeps the mapped sections valid, unless they were copied.
    private let file: ELFFile?
    private var owned: [UnsafeMutableRawBufferPointer] = []

    /// `nil` when the file has no `.debug_info`. With `copySections`, the sections are copied and
    /// the file is not kept mapped.
    init?(file: ELFFile, copySections: Bool = false, supplementary: DWARFFile? = nil) {
        self.file = copySections ? nil : file
        self.supplementary = supplementary
        var owned: [UnsafeMutableRawBufferPointer] = []
        func load(_ name: String) -> UnsafeRawBufferPointer {
            guard let contents = try? file.contents(ofSectionNamed: name) else {
                return UnsafeRawBufferPointer(start: nil, count: 0)
            }
            return contents.withUnsafeBytes { bytes in
                if contents.isView && !copySections { return bytes }
                let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
                copy.copyMemory(from: bytes)
                owned.append(copy)
                return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(copy)[0..<bytes.count])
            }
        }
        info = load(".debug_info")
        abbrev = load(".debug_abbrev")
        str = load(".debug_str")
        lineStr = load(".debug_line_str")
        line = load(".debug_line")
        rangesSection = load(".debug_ranges")
        rnglists = load(".debug_rnglists")
        addr = load(".debug_addr")
        strOffsets = load(".debug_str_offsets")
        self.owned = owned
        guard info.count > 0 else { return nil }
        readUnits()
    }

    deinit {
        for buffer in owned { buffer.deallocate() }
    }

    // MARK: Units

    private func readUnits() {
        var offset = 0
        while offset < info.count {
            var reader = ByteReader(info)
            reader.offset = offset
            guard var unit = try? readUnitHeader(&reader) else { break }
            offset = unit.end
            let kind = unit.unitType
            guard kind == DW.UnitType.compile || kind == DW.UnitType.partial || kind == DW.UnitType.skeleton else {
                continue
            }
            do {
                try readUnitDIE(&unit)
                units.append(unit)
            } catch {
                skippedUnits += 1
            }
        }
    }

    private func readUnitHeader(_ reader: inout ByteReader) throws -> Unit {
        let start = reader.offset
        var length = UInt64(try reader.u32())
        var offsetSize = 4
        if length == 0xffff_ffff {
            length = try reader.u64()
            offsetSize = 8
        } else if length >= 0xffff_fff0 {
            throw ByteReader.Malformed(offset: start, reason: "reserved unit length")
        }
        guard length <= UInt64(reader.remaining) else { throw ByteReader.Truncated(offset: start) }
        let end = reader.offset + Int(length)
        let version = Int(try reader.u16())
        guard (2...5).contains(version) else {
            throw ByteReader.Malformed(offset: start, reason: "unsupported DWARF version \(version)")
        }
        var unitType = DW.UnitType.compile
        let addressSize: Int
        let abbreviations: UInt64
        if version >= 5 {
            unitType = try reader.u8()
            addressSize = Int(try reader.u8())
            abbreviations = try reader.unsigned(size: offsetSize)
            switch unitType {
            case DW.UnitType.skeleton, DW.UnitType.splitCompile: _ = try reader.u64()
            case DW.UnitType.type, DW.UnitType.splitType:
                _ = try reader.u64()
                _ = try reader.unsigned(size: offsetSize)
            default: break
            }
        } else {
            abbreviations = try reader.unsigned(size: offsetSize)
            addressSize = Int(try reader.u8())
        }
        guard addressSize == 4 || addressSize == 8 else {
            throw ByteReader.Malformed(offset: start, reason: "address size \(addressSize)")
        }
        guard reader.offset <= end, abbreviations < UInt64(abbrev.count) else {
            throw ByteReader.Malformed(offset: start, reason: "bad unit header")
        }
        return Unit(
            offset: start,
            end: end,
            firstDIE: reader.offset,
            version: version,
            unitType: unitType,
            addressSize: addressSize,
            offsetSize: offsetSize,
            abbreviationOffset: Int(abbreviations)
        )
    }

    /// The abbreviation table at `offset` in `.debug_abbrev`, parsed once; `nil` if it is malformed.
    func abbreviationTable(at offset: Int) -> AbbreviationTable? {
        if let cached = abbreviationTables.withLock({ $0[offset] }) { return cached }
        let table = try? readAbbreviationTable(at: offset)
        abbreviationTables.withLock { $0[offset] = .some(table) }
        return table
    }

    /// Parses the table at `offset`, or with `code` only as far as that abbreviation.
    private func readAbbreviationTable(at offset: Int, upTo wanted: UInt64? = nil) throws -> AbbreviationTable {
        var table = AbbreviationTable()
        var reader = ByteReader(abbrev)
        reader.offset = offset
        while true {
            let code = try reader.uleb128()
            if code == 0 { break }
            let tag = try reader.uleb128()
            let hasChildren = try reader.u8() != 0
            let first = table.specs.count
            while true {
                let name = try reader.uleb128()
                let form = try reader.uleb128()
                if name == 0 && form == 0 { break }
                let constant = form == DW.Form.implicitConst ? try reader.sleb128() : 0
                table.specs.append(AttributeSpec(name: name, form: form, implicitConstant: constant))
            }
            let index = Int32(table.abbreviations.count)
            table.abbreviations.append(
                Abbreviation(tag: tag, hasChildren: hasChildren, attributes: first..<table.specs.count)
            )
            if code < 65536 {
                if Int(code) >= table.dense.count {
                    table.dense.append(contentsOf: repeatElement(-1, count: Int(code) + 1 - table.dense.count))
                }
                table.dense[Int(code)] = index
            } else {
                table.sparse[code] = index
            }
            if code == wanted { break }
        }
        return table
    }

    private func readUnitDIE(_ unit: inout Unit) throws {
        var reader = ByteReader(info)
        reader.offset = unit.firstDIE
        let code = try reader.uleb128()
        // Only as much of the table as this DIE needs (the unit DIE's abbreviation comes first).
        let table = try readAbbreviationTable(at: unit.abbreviationOffset, upTo: code)
        guard let abbreviation = table.abbreviation(code) else {
            throw ByteReader.Malformed(offset: unit.firstDIE, reason: "unknown abbreviation \(code)")
        }
        var lowPC: Value?
        var highPC: Value?
        var ranges: Value?
        var name: Value?
        var directory: Value?
        let specs = table.specs
        for spec in specs[abbreviation.attributes] {
            let value = try readValue(spec, &reader, unit)
            switch spec.name {
            case DW.Attribute.lowPC: lowPC = value
            case DW.Attribute.highPC: highPC = value
            case DW.Attribute.ranges: ranges = value
            case DW.Attribute.name: name = value
            case DW.Attribute.compDir: directory = value
            case DW.Attribute.stmtList: unit.lineTableOffset = value.integer.map { Int(clamping: $0) }
            case DW.Attribute.strOffsetsBase: unit.strOffsetsBase = Int(clamping: value.integer ?? 0)
            case DW.Attribute.addrBase, DW.Attribute.gnuAddrBase: unit.addrBase = Int(clamping: value.integer ?? 0)
            case DW.Attribute.rnglistsBase: unit.rnglistsBase = Int(clamping: value.integer ?? 0)
            default: break
            }
        }
        // The bases may follow the attributes that need them, so strings and addresses are resolved last.
        if unit.offsetSize == 8 {
            if !specs[abbreviation.attributes].contains(where: { $0.name == DW.Attribute.strOffsetsBase }) {
                unit.strOffsetsBase = 16
            }
            if !specs[abbreviation.attributes].contains(where: { $0.name == DW.Attribute.rnglistsBase }) {
                unit.rnglistsBase = 20
            }
        }
        unit.name = name.flatMap { string($0, in: unit) } ?? ""
        unit.compilationDirectory = directory.flatMap { string($0, in: unit) } ?? ""
        unit.baseAddress = lowPC.flatMap { address($0, in: unit) } ?? 0
        unit.ranges = codeRanges(lowPC: lowPC, highPC: highPC, ranges: ranges, in: unit)
    }

    /// The unit whose bytes hold `offset` in `.debug_info`.
    func unitIndex(containing offset: Int) -> Int? {
        let index = units.partitionIndex { $0.offset > offset } - 1
        return index >= 0 && offset < units[index].end ? index : nil
    }

    // MARK: Attribute values

    func readValue(_ spec: AttributeSpec, _ reader: inout ByteReader, _ unit: Unit) throws -> Value {
        try readValue(form: spec.form, implicitConstant: spec.implicitConstant, &reader, unit, depth: 0)
    }

    private func readValue(
        form: UInt64,
        implicitConstant: Int64,
        _ reader: inout ByteReader,
        _ unit: Unit,
        depth: Int
    ) throws -> Value {
        switch form {
        case DW.Form.addr: return .address(try reader.unsigned(size: unit.addressSize))
        case DW.Form.data1, DW.Form.flag: return .unsigned(UInt64(try reader.u8()))
        case DW.Form.data2: return .unsigned(UInt64(try reader.u16()))
        case DW.Form.data4: return .unsigned(UInt64(try reader.u32()))
        case DW.Form.data8: return .unsigned(try reader.u64())
        case DW.Form.udata: return .unsigned(try reader.uleb128())
        case DW.Form.sdata: return .signed(try reader.sleb128())
        case DW.Form.implicitConst: return .signed(implicitConstant)
        case DW.Form.flagPresent: return .unsigned(1)
        case DW.Form.secOffset: return .unsigned(try reader.unsigned(size: unit.offsetSize))
        case DW.Form.string:
            let start = reader.offset
            guard let end = reader.bytes[start...].firstIndex(of: 0) else { throw ByteReader.Truncated(offset: start) }
            reader.offset = end + 1
            return .inlineString(start)
        case DW.Form.strp: return .stringOffset(try reader.unsigned(size: unit.offsetSize))
        case DW.Form.lineStrp: return .lineStringOffset(try reader.unsigned(size: unit.offsetSize))
        case DW.Form.strx, DW.Form.gnuStrIndex: return .stringIndex(try reader.uleb128())
        case DW.Form.strx1: return .stringIndex(UInt64(try reader.u8()))
        case DW.Form.strx2: return .stringIndex(UInt64(try reader.u16()))
        case DW.Form.strx3: return .stringIndex(try reader.u24())
        case DW.Form.strx4: return .stringIndex(UInt64(try reader.u32()))
        case DW.Form.addrx, DW.Form.gnuAddrIndex: return .addressIndex(try reader.uleb128())
        case DW.Form.addrx1: return .addressIndex(UInt64(try reader.u8()))
        case DW.Form.addrx2: return .addressIndex(UInt64(try reader.u16()))
        case DW.Form.addrx3: return .addressIndex(try reader.u24())
        case DW.Form.addrx4: return .addressIndex(UInt64(try reader.u32()))
        case DW.Form.ref1: return .reference(unit.offset &+ Int(try reader.u8()))
        case DW.Form.ref2: return .reference(unit.offset &+ Int(try reader.u16()))
        case DW.Form.ref4: return .reference(unit.offset &+ Int(try reader.u32()))
        case DW.Form.ref8: return .reference(unit.offset &+ Int(clamping: try reader.u64()))
        case DW.Form.refUdata: return .reference(unit.offset &+ Int(clamping: try reader.uleb128()))
        case DW.Form.refAddr:
            // DWARF 2 wrote ref_addr with the address size, later versions with the offset size.
            return .reference(
                Int(clamping: try reader.unsigned(size: unit.version == 2 ? unit.addressSize : unit.offsetSize))
            )
        case DW.Form.rnglistx: return .rangeListIndex(try reader.uleb128())
        case DW.Form.loclistx: return .unsigned(try reader.uleb128())
        case DW.Form.refSig8:
            _ = try reader.u64()
            return .unsupported
        case DW.Form.refSup4: return .supplementaryReference(Int(try reader.u32()))
        case DW.Form.refSup8: return .supplementaryReference(Int(clamping: try reader.u64()))
        case DW.Form.gnuRefAlt:
            return .supplementaryReference(Int(clamping: try reader.unsigned(size: unit.offsetSize)))
        case DW.Form.strpSup, DW.Form.gnuStrpAlt:
            return .supplementaryString(try reader.unsigned(size: unit.offsetSize))
        case DW.Form.data16:
            _ = try reader.bytes(16)
            return .unsupported
        case DW.Form.block1:
            _ = try reader.bytes(Int(try reader.u8()))
            return .unsupported
        case DW.Form.block2:
            _ = try reader.bytes(Int(try reader.u16()))
            return .unsupported
        case DW.Form.block4:
            _ = try reader.bytes(Int(try reader.u32()))
            return .unsupported
        case DW.Form.block, DW.Form.exprloc:
            _ = try reader.bytes(Int(clamping: try reader.uleb128()))
            return .unsupported
        case DW.Form.indirect:
            guard depth < 4 else {
                throw ByteReader.Malformed(offset: reader.offset, reason: "nested DW_FORM_indirect")
            }
            let actual = try reader.uleb128()
            let constant = actual == DW.Form.implicitConst ? try reader.sleb128() : 0
            return try readValue(form: actual, implicitConstant: constant, &reader, unit, depth: depth + 1)
        default:
            throw ByteReader.Malformed(offset: reader.offset, reason: "unknown DWARF form 0x\(String(form, radix: 16))")
        }
    }

    /// The string a name-like value refers to, or `nil` when it points outside its section.
    func string(_ value: Value, in unit: Unit) -> String? {
        switch value {
        case .inlineString(let offset): return cString(in: info, at: offset)
        case .stringOffset(let offset): return cString(in: str, at: Int(clamping: offset))
        case .lineStringOffset(let offset): return cString(in: lineStr, at: Int(clamping: offset))
        case .stringIndex(let index):
            guard index < UInt64(Int32.max) else { return nil }
            var reader = ByteReader(strOffsets)
            reader.offset = unit.strOffsetsBase &+ Int(index) * unit.offsetSize
            guard let offset = try? reader.unsigned(size: unit.offsetSize) else { return nil }
            return cString(in: str, at: Int(clamping: offset))
        case .supplementaryString(let offset):
            return supplementary.flatMap { cString(in: $0.str, at: Int(clamping: offset)) }
        default: return nil
        }
    }

    func address(_ value: Value, in unit: Unit) -> UInt64? {
        switch value {
        case .address(let address): return address
        case .addressIndex(let index):
            guard index < UInt64(Int32.max) else { return nil }
            var reader = ByteReader(addr)
            reader.offset = unit.addrBase &+ Int(index) * unit.addressSize
            return try? reader.unsigned(size: unit.addressSize)
        default: return nil
        }
    }

    // MARK: Code ranges

    /// The code ranges of a DIE from its `DW_AT_low_pc`, `DW_AT_high_pc` and `DW_AT_ranges`,
    /// without empty ranges and without code the linker discarded (tombstone addresses 0, 1, −1, −2).
    func codeRanges(lowPC: Value?, highPC: Value?, ranges: Value?, in unit: Unit) -> [Range<UInt64>] {
        var result: [Range<UInt64>] = []
        if let ranges {
            result = (try? rangeList(ranges, in: unit)) ?? []
        } else if let lowPC, let highPC, let low = address(lowPC, in: unit) {
            let high: UInt64?
            switch highPC {
            case .unsigned, .signed: high = highPC.integer.map { low &+ $0 }
            default: high = address(highPC, in: unit)
            }
            if let high, high > low { result = [low..<high] }
        }
        return result.filter { !DWARFFile.isTombstone($0.lowerBound) }
    }

    static func isTombstone(_ address: UInt64) -> Bool {
        address <= 1 || address >= UInt64.max - 1
    }

    private func rangeList(_ value: Value, in unit: Unit) throws -> [Range<UInt64>] {
        if unit.version < 5 {
            guard case .unsigned(let offset) = value else { return [] }
            return try legacyRangeList(at: Int(clamping: offset), in: unit)
        }
        let offset: Int
        switch value {
        case .unsigned(let absolute): offset = Int(clamping: absolute)
        case .rangeListIndex(let index):
            guard index < UInt64(Int32.max) else { return [] }
            var reader = ByteReader(rnglists)
            reader.offset = unit.rnglistsBase &+ Int(index) * unit.offsetSize
            offset = unit.rnglistsBase &+ Int(clamping: try reader.unsigned(size: unit.offsetSize))
        default: return []
        }
        return try rangeList5(at: offset, in: unit)
    }

    /// `.debug_ranges` (DWARF 2–4): address pairs relative to the unit's base, (0, 0) ends the list.
    private func legacyRangeList(at offset: Int, in unit: Unit) throws -> [Range<UInt64>] {
        var reader = ByteReader(rangesSection)
        reader.offset = offset
        let baseSelector: UInt64 = unit.addressSize == 8 ? .max : 0xffff_ffff
        var base = unit.baseAddress
        var result: [Range<UInt64>] = []
        while true {
            let start = try reader.unsigned(size: unit.addressSize)
            let end = try reader.unsigned(size: unit.addressSize)
            if start == 0 && end == 0 { return result }
            if start == baseSelector {
                base = end
            } else if end > start {
                result.append(base &+ start..<base &+ end)
            }
        }
    }

    /// `.debug_rnglists` (DWARF 5).
    private func rangeList5(at offset: Int, in unit: Unit) throws -> [Range<UInt64>] {
        var reader = ByteReader(rnglists)
        reader.offset = offset
        var base = unit.baseAddress
        var result: [Range<UInt64>] = []
        func indexed(_ index: UInt64) throws -> UInt64 {
            guard let address = address(.addressIndex(index), in: unit) else {
                throw ByteReader.Malformed(offset: reader.offset, reason: "bad address index")
            }
            return address
        }
        func add(_ start: UInt64, _ end: UInt64) {
            if end > start { result.append(start..<end) }
        }
        while true {
            let kind = try reader.u8()
            switch kind {
            case DW.RangeListEntry.endOfList: return result
            case DW.RangeListEntry.baseAddressx: base = try indexed(try reader.uleb128())
            case DW.RangeListEntry.startxEndx:
                let start = try indexed(try reader.uleb128())
                add(start, try indexed(try reader.uleb128()))
            case DW.RangeListEntry.startxLength:
                let start = try indexed(try reader.uleb128())
                add(start, start &+ (try reader.uleb128()))
            case DW.RangeListEntry.offsetPair:
                let start = try reader.uleb128()
                add(base &+ start, base &+ (try reader.uleb128()))
            case DW.RangeListEntry.baseAddress: base = try reader.unsigned(size: unit.addressSize)
            case DW.RangeListEntry.startEnd:
                let start = try reader.unsigned(size: unit.addressSize)
                add(start, try reader.unsigned(size: unit.addressSize))
            case DW.RangeListEntry.startLength:
                let start = try reader.unsigned(size: unit.addressSize)
                add(start, start &+ (try reader.uleb128()))
            default:
                throw ByteReader.Malformed(offset: reader.offset, reason: "unknown range list entry \(kind)")
            }
        }
    }
}
