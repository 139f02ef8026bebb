import Foundation
import Testing

@testable import Pprof

/// Hand-made DWARF with the specific faults a reader can trip on: each must give an answer (or
/// nothing) in bounded time, never a trap or a hang.
@Suite struct SymbolMalformedDWARFTests {
    // Abbreviation codes used below.
    static let compileUnit: UInt64 = 1
    static let subprogram: UInt64 = 2
    static let inlined: UInt64 = 3
    static let abstract: UInt64 = 4

    /// Abbreviations: a unit with a code range, a subprogram with a name and a code range, an
    /// inlined subroutine pointing at its origin, and an abstract function pointing at another.
    static func abbreviations(extra: (inout DWARFWriter) -> Void = { _ in }) -> [UInt8] {
        var abbrev = DWARFWriter()
        abbrev.abbreviation(
            compileUnit,
            tag: DW.Tag.compileUnit,
            children: true,
            [
                (DW.Attribute.name, DW.Form.string), (DW.Attribute.lowPC, DW.Form.addr),
                (DW.Attribute.highPC, DW.Form.data8),
            ]
        )
        abbrev.abbreviation(
            subprogram,
            tag: DW.Tag.subprogram,
            children: true,
            [
                (DW.Attribute.name, DW.Form.string), (DW.Attribute.declLine, DW.Form.data1),
                (DW.Attribute.lowPC, DW.Form.addr), (DW.Attribute.highPC, DW.Form.data8),
            ]
        )
        abbrev.abbreviation(
            inlined,
            tag: DW.Tag.inlinedSubroutine,
            children: true,
            [
                (DW.Attribute.abstractOrigin, DW.Form.ref4), (DW.Attribute.lowPC, DW.Form.addr),
                (DW.Attribute.highPC, DW.Form.data8), (DW.Attribute.callLine, DW.Form.data1),
            ]
        )
        abbrev.abbreviation(
            abstract,
            tag: DW.Tag.subprogram,
            children: false,
            [(DW.Attribute.abstractOrigin, DW.Form.ref4)]
        )
        extra(&abbrev)
        abbrev.uleb(0)
        return abbrev.bytes
    }

    static func symbolizer(info: [UInt8], abbrev: [UInt8] = abbreviations(), more: [(String, [UInt8])] = [])
        throws -> ImageSymbolizer
    {
        var builder = ELFBuilder()
        builder.sections = [(".debug_info", info), (".debug_abbrev", abbrev)] + more
        builder.functions = [("outer", 0x1000, 0x100)]
        let file = try ELFFile(name: "synthetic", contents: builder.build())
        return ImageSymbolizer(file: file, debugDirectories: [])
    }

    /// The unit DIE covering 0x1000..<0x1100, then `body`, then the end of its children.
    static func unit(_ body: (inout DWARFWriter, _ unitStart: Int) -> Void) -> [UInt8] {
        var writer = DWARFWriter()
        writer.uleb(compileUnit)
        writer.string("synthetic.c")
        writer.u64(0x1000)
        writer.u64(0x100)
        body(&writer, 11)  // DIE offsets are relative to the unit header (11 bytes in DWARF 4)
        writer.uleb(0)
        return DWARFWriter.unit4(writer.bytes)
    }

    @Test func wellFormedBaselineInlinesOneFrame() throws {
        let info = Self.unit { writer, start in
            let origin = start + writer.bytes.count
            writer.uleb(Self.abstract)
            writer.u32(UInt32(origin))  // points at itself: must not loop
            writer.uleb(Self.subprogram)
            writer.string("outer")
            writer.u8(7)
            writer.u64(0x1000)
            writer.u64(0x100)
            writer.uleb(Self.inlined)
            writer.u32(UInt32(origin))
            writer.u64(0x1010)
            writer.u64(0x10)
            writer.u8(9)
            writer.uleb(0)  // end of the inlined subroutine's children
            writer.uleb(0)  // end of the subprogram's children
        }
        let symbolizer = try Self.symbolizer(info: info)
        #expect(symbolizer.hasDebugInfo)
        let frames = symbolizer.frames(atFileAddress: 0x1014)
        #expect(frames.count == 2)
        #expect(frames.last?.name == "outer")
        #expect(frames.last?.line == 9, "the call line of the inlined code")
        #expect(frames.last?.startLine == 7)
        #expect(symbolizer.frames(atFileAddress: 0x1020).count == 1)
    }

    /// abstract_origin chains that loop (A → B → A) end after a bounded number of hops.
    @Test func abstractOriginCyclesTerminate() throws {
        let info = Self.unit { writer, start in
            let first = start + writer.bytes.count
            let second = first + 5
            writer.uleb(Self.abstract)
            writer.u32(UInt32(second))
            writer.uleb(Self.abstract)
            writer.u32(UInt32(first))
            writer.uleb(Self.subprogram)
            writer.string("outer")
            writer.u8(1)
            writer.u64(0x1000)
            writer.u64(0x100)
            writer.uleb(Self.inlined)
            writer.u32(UInt32(first))
            writer.u64(0x1000)
            writer.u64(0x100)
            writer.u8(3)
            writer.uleb(0)
            writer.uleb(0)
        }
        let frames = try Self.symbolizer(info: info).frames(atFileAddress: 0x1040)
        #expect(frames.count == 2)
        #expect(frames.map(\.name) == ["??", "outer"], "a nameless inlined function is unknown, not its caller")
    }

    /// Inlined code nested thousands deep is walked without recursion.
    @Test func deeplyNestedInlinedCode() throws {
        let depth = 3000
        let info = Self.unit { writer, start in
            let origin = start + writer.bytes.count
            writer.uleb(Self.abstract)
            writer.u32(UInt32(origin))
            writer.uleb(Self.subprogram)
            writer.string("outer")
            writer.u8(1)
            writer.u64(0x1000)
            writer.u64(0x100)
            for _ in 0..<depth {
                writer.uleb(Self.inlined)
                writer.u32(UInt32(origin))
                writer.u64(0x1000)
                writer.u64(0x100)
                writer.u8(2)
            }
            for _ in 0...depth { writer.uleb(0) }
        }
        #expect(try Self.symbolizer(info: info).frames(atFileAddress: 0x1080).count == depth + 1)
    }

    /// A DIE that claims children but whose unit ends first, abbreviation codes that do not
    /// exist, and references outside the section.
    @Test func truncatedAndDanglingDIEs() throws {
        for cut in [12, 14, 20, 30] {
            var info = Self.unit { writer, _ in
                writer.uleb(Self.subprogram)
                writer.string("outer")
                writer.u8(1)
                writer.u64(0x1000)
                writer.u64(0x100)
            }
            info.removeSubrange(cut...)
            info.replaceSubrange(0..<4, with: withUnsafeBytes(of: UInt32(info.count - 4).littleEndian, Array.init))
            let symbolizer = try Self.symbolizer(info: info)
            #expect(symbolizer.frames(atFileAddress: 0x1010).last?.name == "outer", "cut at \(cut)")
        }
        let dangling = Self.unit { writer, _ in
            writer.uleb(Self.subprogram)
            writer.string("outer")
            writer.u8(1)
            writer.u64(0x1000)
            writer.u64(0x100)
            writer.uleb(Self.inlined)
            writer.u32(0x7fff_fff0)  // far outside .debug_info
            writer.u64(0x1000)
            writer.u64(0x100)
            writer.u8(1)
            writer.uleb(99)  // no such abbreviation
        }
        #expect(try Self.symbolizer(info: dangling).frames(atFileAddress: 0x1010).last?.name == "outer")
    }

    /// DW_FORM_indirect that names itself again and again.
    @Test func indirectFormLoopsAreRefused() throws {
        let abbrev = Self.abbreviations { abbrev in
            abbrev.abbreviation(5, tag: DW.Tag.subprogram, children: false, [(DW.Attribute.name, DW.Form.indirect)])
        }
        let info = Self.unit { writer, _ in
            writer.uleb(5)
            for _ in 0..<64 { writer.uleb(DW.Form.indirect) }
            writer.uleb(DW.Form.string)
            writer.string("never")
        }
        #expect(try Self.symbolizer(info: info, abbrev: abbrev).frames(atFileAddress: 0x1010).last?.name == "outer")
    }

    /// Range lists without their terminator, and line tables with a zero line range or a length
    /// too short for their own header.
    @Test func unterminatedRangesAndBrokenLineTables() throws {
        let abbrev = Self.abbreviations { abbrev in
            abbrev.abbreviation(
                5,
                tag: DW.Tag.subprogram,
                children: false,
                [(DW.Attribute.name, DW.Form.string), (DW.Attribute.ranges, DW.Form.secOffset)]
            )
        }
        let info = Self.unit { writer, _ in
            writer.uleb(5)
            writer.string("ranged")
            writer.u32(0)
        }
        var ranges = DWARFWriter()
        for index in 0..<100 {
            ranges.u64(0x1000 + UInt64(index))
            ranges.u64(0x1001 + UInt64(index))
        }
        let symbolizer = try Self.symbolizer(info: info, abbrev: abbrev, more: [(".debug_ranges", ranges.bytes)])
        #expect(symbolizer.frames(atFileAddress: 0x1010).last?.name == "outer")

        for version: UInt16 in [2, 4, 5] {
            for length: UInt32 in [0, 2, 3, 9, 40] {
                var line = DWARFWriter()
                line.u32(length)
                line.u16(version)
                line.bytes += [UInt8](repeating: 0, count: 48)  // header fields, all zero: line_range 0
                let table = try? DWARFLineTable(
                    try #require(
                        DWARFFile(
                            file: try ELFFile(
                                name: "lines",
                                contents: ELFBuilder(sections: [
                                    (".debug_info", info), (".debug_abbrev", abbrev), (".debug_line", line.bytes),
                                ]).build()
                            )
                        )
                    ),
                    unit: DWARFFile.Unit(
                        offset: 0,
                        end: 0,
                        firstDIE: 0,
                        version: Int(version),
                        unitType: 1,
                        addressSize: 8,
                        offsetSize: 4,
                        abbreviationOffset: 0
                    ),
                    offset: 0
                )
                #expect(table == nil || table?.row(at: 0x1000) == nil)
            }
        }
    }
}

/// dwz-compressed debug info (Fedora's and many Debian debug packages): inlined functions are
/// named in a supplementary file that `.gnu_debugaltlink` names, found by path or build ID.
@Suite struct SymbolSupplementaryFileTests {
    typealias Synthetic = SymbolMalformedDWARFTests
    static let supplementaryID: [UInt8] = Array(0..<20)

    /// The supplementary file: a partial unit declaring `from_alt` (start line 42) and a string.
    static func supplementary() -> [UInt8] {
        var abbrev = DWARFWriter()
        abbrev.abbreviation(1, tag: DW.Tag.partialUnit, children: true, [])
        abbrev.abbreviation(
            2,
            tag: DW.Tag.subprogram,
            children: false,
            [(DW.Attribute.name, DW.Form.string), (DW.Attribute.declLine, DW.Form.data1)]
        )
        abbrev.uleb(0)
        var info = DWARFWriter()
        info.uleb(1)
        info.uleb(2)  // at offset 12: 11-byte header, 1-byte unit DIE
        info.string("from_alt")
        info.u8(42)
        info.uleb(0)
        var builder = ELFBuilder()
        builder.buildID = supplementaryID
        builder.sections = [
            (".debug_info", DWARFWriter.unit4(info.bytes)), (".debug_abbrev", abbrev.bytes),
            (".debug_str", Array("shared_name".utf8) + [0]),
        ]
        return builder.build()
    }

    /// The debug file: `outer` with code inlined from `from_alt` (by DW_FORM_GNU_ref_alt) and from
    /// a function named through DW_FORM_GNU_strp_alt.
    static func main(link: String) -> [UInt8] {
        let abbrev = Synthetic.abbreviations { abbrev in
            abbrev.abbreviation(5, tag: DW.Tag.subprogram, children: false, [(DW.Attribute.name, DW.Form.gnuStrpAlt)])
            abbrev.abbreviation(
                6,
                tag: DW.Tag.inlinedSubroutine,
                children: false,
                [
                    (DW.Attribute.abstractOrigin, DW.Form.gnuRefAlt), (DW.Attribute.lowPC, DW.Form.addr),
                    (DW.Attribute.highPC, DW.Form.data8), (DW.Attribute.callLine, DW.Form.data1),
                ]
            )
        }
        let info = Synthetic.unit { writer, start in
            let local = start + writer.bytes.count
            writer.uleb(5)
            writer.u32(0)  // "shared_name" in the supplementary .debug_str
            writer.uleb(Synthetic.subprogram)
            writer.string("outer")
            writer.u8(7)
            writer.u64(0x1000)
            writer.u64(0x100)
            writer.uleb(6)
            writer.u32(12)  // from_alt's DIE in the supplementary .debug_info
            writer.u64(0x1010)
            writer.u64(0x10)
            writer.u8(8)
            writer.uleb(Synthetic.inlined)
            writer.u32(UInt32(local))
            writer.u64(0x1030)
            writer.u64(0x10)
            writer.u8(9)
            writer.uleb(0)
            writer.uleb(0)
        }
        var builder = ELFBuilder()
        builder.sections = [
            (".debug_info", info), (".debug_abbrev", abbrev),
            (".gnu_debugaltlink", Array(link.utf8) + [0] + supplementaryID),
        ]
        builder.functions = [("outer", 0x1000, 0x100)]
        return builder.build()
    }

    @Test func namesInlinedFunctionsFromTheSupplementaryFile() throws {
        let directory = Fixtures.directory.appendingPathComponent("dwz")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let mainPath = directory.appendingPathComponent("main.debug").path
        try Data(Self.main(link: "supplementary.debug")).write(to: URL(fileURLWithPath: mainPath))

        // Without the supplementary file: unknown, and never mistaken for the outer function.
        let alone = try ImageSymbolizer(path: mainPath, debugDirectories: [])
        #expect(alone.frames(atFileAddress: 0x1014).map(\.name) == ["??", "outer"])

        // Next to the debug file, under the name the link gives.
        try Data(Self.supplementary()).write(to: directory.appendingPathComponent("supplementary.debug"))
        let linked = try ImageSymbolizer(path: mainPath, debugDirectories: [])
        let frames = linked.frames(atFileAddress: 0x1014)
        #expect(frames.map(\.name) == ["from_alt", "outer"])
        #expect(frames.first?.startLine == 42)
        #expect(frames.last?.line == 8)
        #expect(linked.frames(atFileAddress: 0x1034).map(\.name) == ["shared_name", "outer"])

        // By build ID under a debug root, when the linked path does not exist.
        let root = directory.appendingPathComponent("root/.build-id/00")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try FileManager.default.moveItem(
            at: directory.appendingPathComponent("supplementary.debug"),
            to: root.appendingPathComponent("0102030405060708090a0b0c0d0e0f10111213.debug")
        )
        let byID = try ImageSymbolizer(
            path: mainPath,
            debugDirectories: [directory.appendingPathComponent("root").path]
        )
        #expect(byID.frames(atFileAddress: 0x1014).map(\.name) == ["from_alt", "outer"])
    }
}
