import Synchronization

/// Symbolizes addresses of one ELF image, given as file (link-time) virtual addresses: function
/// names from the ELF symbol tables, and where DWARF is present (in the file or a separate debug
/// file), inlined frames, file:line and start lines.
///
/// Usable on its own to symbolize any ELF file offline; `Symbolizer` adds the run-time view.
/// Thread-safe: DWARF units are parsed on first use, under this image's lock.
///
/// A loaded shared library's file is not kept mapped (`keepsFileMapped: false`): on Linux the
/// Runtime module's `ImageMap` — and with it Swift's crash backtracer — merges every mapping of a
/// path and takes the lowest as the library's base, so a read-only mapping of libswiftCore.so
/// placed below the loaded one would misplace every libswiftCore frame in a later backtrace.
/// A library's function names are read from the file when needed (opened for each read, so no
/// descriptor is held), and any DWARF embedded in it is copied. The main executable (loaded below the mmap area) and separate debug
/// files (other paths) stay mapped.
package final class ImageSymbolizer: Sendable {
    package let path: String
    /// The image's GNU build ID, if it has one.
    package let buildID: String?
    /// The separate debug file used, if any.
    package let debugFilePath: String?
    /// Whether the image has a full symbol table (`.symtab`, here or in its debug file), rather
    /// than only the exported `.dynsym` names a stripped file keeps.
    package let hasFullSymbolTable: Bool
    package let hasDebugInfo: Bool

    private let symbols: SymbolTable
    private let dwarf: DWARFFile?
    /// Code ranges of the DWARF units.
    private let unitRanges: IntervalIndex<Int>
    private let state: Mutex<State>

    private struct State {
        var trees: [Int: DWARFFunctionTree?] = [:]
        var lineTables: [Int: DWARFLineTable?] = [:]
        var functions: [Int: DWARFFile.FunctionInfo] = [:]
        var demangled: [String: String] = [:]
    }

    /// Reads the file at `path` and, when the file lacks them, the symbols and DWARF of its separate
    /// debug file. Throws when the file cannot be read as ELF.
    package convenience init(
        path: String,
        debugDirectories: [String] = DebugFiles.defaultDirectories,
        keepsFileMapped: Bool = true,
        copiesSymbolNames: Bool = false
    ) throws {
        try self.init(
            file: ELFFile(path: path),
            debugDirectories: debugDirectories,
            keepsFileMapped: keepsFileMapped,
            copiesSymbolNames: copiesSymbolNames
        )
    }

    /// `copiesSymbolNames` copies every function name to the heap, as this reader once did
    /// (benchmarks compare the two).
    init(
        file: ELFFile,
        debugDirectories: [String] = DebugFiles.defaultDirectories,
        keepsFileMapped: Bool = true,
        copiesSymbolNames: Bool = false
    ) {
        self.path = file.path
        self.buildID = file.buildID
        var debugFile: ELFFile?
        if !file.hasSymtab || file.section(named: ".debug_info") == nil {
            debugFile = DebugFiles.find(for: file, directories: debugDirectories)
        }
        self.debugFilePath = debugFile?.path
        let ownNames: SymbolTable.NameStorage = copiesSymbolNames ? .copied : keepsFileMapped ? .mapped : .read
        self.symbols = SymbolTable(
            files: [(file, ownNames)] + (debugFile.map { [($0, copiesSymbolNames ? .copied : .mapped)] } ?? [])
        )
        self.hasFullSymbolTable = file.hasSymtab || debugFile?.hasSymtab == true
        func supplementary(of file: ELFFile) -> DWARFFile? {
            DebugFiles.findSupplementary(for: file, directories: debugDirectories).flatMap { DWARFFile(file: $0) }
        }
        let dwarf =
            DWARFFile(file: file, copySections: !keepsFileMapped, supplementary: supplementary(of: file))
            ?? debugFile.flatMap { DWARFFile(file: $0, supplementary: supplementary(of: $0)) }
        self.dwarf = dwarf
        self.hasDebugInfo = dwarf != nil

        var unitRanges: [(range: Range<UInt64>, value: Int)] = []
        if let dwarf {
            for (index, unit) in dwarf.units.enumerated() {
                var ranges = unit.ranges
                if ranges.isEmpty, let offset = unit.lineTableOffset {
                    // No ranges on the unit DIE: the line program says which code it covers
                    // (parsed again when an address needs it).
                    ranges = (try? DWARFLineTable(dwarf, unit: unit, offset: offset))?.coveredRanges ?? []
                }
                for range in ranges { unitRanges.append((range, index)) }
            }
            dwarf.releaseUnitRanges()
        }
        self.unitRanges = IntervalIndex(ImageSymbolizer.coalesced(unitRanges))
        self.state = Mutex(State())
    }

    /// The frames at `address` (a file virtual address), innermost inlined frame first; `entry`
    /// is the physical function's file address. Empty when no symbol or DWARF function holds it.
    package func frames(atFileAddress address: UInt64) -> [SymbolFrame] {
        state.withLock { lookUp(address, &$0) }
    }

    package func frames(atFileAddresses addresses: [UInt64]) -> [[SymbolFrame]] {
        state.withLock { state in addresses.map { lookUp($0, &state) } }
    }

    /// Neighbouring ranges of one unit (a Swift module's unit lists each function) as one range
    /// reaching over the gaps between them, where no other unit's code is: a tenth of the entries
    /// for the same answers.
    private static func coalesced(_ ranges: [(range: Range<UInt64>, value: Int)]) -> [(
        range: Range<UInt64>, value: Int
    )] {
        let sorted = ranges.filter { !$0.range.isEmpty }.sorted { $0.range.lowerBound < $1.range.lowerBound }
        var result: [(range: Range<UInt64>, value: Int)] = []
        result.reserveCapacity(sorted.count / 4)
        for item in sorted {
            if let last = result.last, last.value == item.value, item.range.lowerBound >= last.range.upperBound {
                result[result.count - 1].range = last.range.lowerBound..<item.range.upperBound
            } else {
                result.append(item)
            }
        }
        return result
    }

    /// Every function symbol (start file address and linker name).
    package func allSymbols() -> [(start: UInt64, name: String)] {
        symbols.allSymbols()
    }

    /// The function symbols and the heap bytes their table holds (benchmarks).
    package var symbolTableSize: (symbols: Int, heapBytes: Int) { (symbols.count, symbols.heapBytes) }

    // MARK: Lookup

    private func lookUp(_ address: UInt64, _ state: inout State) -> [SymbolFrame] {
        var symbol = symbols.symbol(containing: address)
        var chain: [DWARFFunctionTree.Node] = []
        var tree: DWARFFunctionTree?
        var lineTable: DWARFLineTable?
        var row: DWARFLineTable.Row?
        if let dwarf {
            for unit in units(containing: address) {
                let unitTree = functionTree(unit, dwarf, &state)
                let unitChain = unitTree?.chain(at: address) ?? []
                let unitLines = self.lineTable(unit, dwarf, &state)
                let unitRow = unitLines?.row(at: address)
                if unitChain.isEmpty && unitRow == nil { continue }
                (tree, chain, lineTable, row) = (unitTree, unitChain, unitLines, unitRow)
                break
            }
        }
        let physical = chain.first
        if symbol == nil && physical == nil { return [] }
        if let physical, let tree, let entryRange = tree.ranges[physical.ranges].first, !entryRange.contains(address),
            let entrySymbol = symbols.symbol(containing: entryRange.lowerBound)
        {
            // A split-off part of the function (GCC's `foo.cold`): it is the function whose entry
            // range DWARF lists first, so its samples stay with `foo`.
            symbol = entrySymbol
        }

        var entry = symbol?.start ?? 0
        if symbol == nil, let physical, let tree, let first = tree.ranges[physical.ranges].first {
            entry = first.lowerBound
        }
        var frames: [SymbolFrame] = []
        var file = row.map { lineTable?.fileName(UInt64($0.file)) ?? "" } ?? ""
        var line = Int(row?.line ?? 0)
        for (depth, node) in chain.enumerated().reversed() {
            let info = functionInfo(node.die, &state)
            let systemName: String
            if depth == 0, let symbol {
                systemName = symbol.name
            } else {
                // Like llvm-symbolizer: an inlined function whose name cannot be found is "??",
                // never the name of the function it was inlined into.
                systemName = info.linkageName ?? info.name ?? (node.isInlined ? nil : symbol?.name) ?? "??"
            }
            frames.append(
                SymbolFrame(
                    name: demangled(systemName, &state),
                    systemName: systemName,
                    file: file,
                    line: line,
                    startLine: info.declarationLine,
                    entry: UInt(truncatingIfNeeded: entry)
                )
            )
            if node.isInlined {
                file = lineTable?.fileName(node.callFile) ?? ""
                line = Int(clamping: node.callLine)
            }
        }
        if physical == nil, let symbol {
            // No DWARF function for this code (assembly, or a unit without subprograms).
            frames.append(
                SymbolFrame(
                    name: demangled(symbol.name, &state),
                    systemName: symbol.name,
                    file: file,
                    line: line,
                    startLine: 0,
                    entry: UInt(truncatingIfNeeded: entry)
                )
            )
        }
        return frames
    }

    private func units(containing address: UInt64) -> [Int] {
        var units: [Int] = []
        for unit in unitRanges.values(containing: address) where !units.contains(unit) { units.append(unit) }
        return units
    }

    private func functionTree(_ unit: Int, _ dwarf: DWARFFile, _ state: inout State) -> DWARFFunctionTree? {
        if let cached = state.trees[unit] { return cached }
        // A unit that does not parse gives no inlining information; its line table may still work.
        let tree = try? DWARFFunctionTree(dwarf, unit: dwarf.units[unit])
        state.trees[unit] = .some(tree)
        return tree
    }

    private func lineTable(_ unit: Int, _ dwarf: DWARFFile, _ state: inout State) -> DWARFLineTable? {
        if let cached = state.lineTables[unit] { return cached }
        let table = dwarf.units[unit].lineTableOffset.flatMap {
            try? DWARFLineTable(dwarf, unit: dwarf.units[unit], offset: $0)
        }
        state.lineTables[unit] = .some(table)
        return table
    }

    private func functionInfo(_ die: Int, _ state: inout State) -> DWARFFile.FunctionInfo {
        if let cached = state.functions[die] { return cached }
        let info = dwarf?.functionInfo(at: die) ?? DWARFFile.FunctionInfo()
        state.functions[die] = info
        return info
    }

    private func demangled(_ name: String, _ state: inout State) -> String {
        if let cached = state.demangled[name] { return cached }
        let result = demangle(name)
        state.demangled[name] = result
        return result
    }
}
