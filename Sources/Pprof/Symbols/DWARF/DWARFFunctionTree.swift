/// The functions of one unit with code (`DW_TAG_subprogram`) and the code inlined into them
/// (`DW_TAG_inlined_subroutine`, nested), read in one pass over the unit's DIEs.
struct DWARFFunctionTree {
    struct Node {
        /// Into `ranges`.
        var ranges: Range<Int>
        var firstChild: Int32 = -1
        var nextSibling: Int32 = -1
        /// The DIE (absolute `.debug_info` offset) to resolve the name and start line from.
        var die: Int
        var isInlined: Bool
        /// Where an inlined node was called from, in the unit's line table numbering.
        var callFile: UInt64 = 0
        var callLine: UInt64 = 0
    }

    private(set) var nodes: [Node] = []
    private(set) var ranges: [Range<UInt64>] = []
    /// The physical functions' code ranges, with their nodes.
    private var functions = IntervalIndex<Int32>([])

    init(_ dwarf: DWARFFile, unit: DWARFFile.Unit) throws {
        guard let table = dwarf.abbreviationTable(at: unit.abbreviationOffset) else {
            throw ByteReader.Malformed(offset: unit.abbreviationOffset, reason: "bad abbreviation table")
        }
        var reader = ByteReader(dwarf.info)
        reader.offset = unit.firstDIE
        // The innermost function node enclosing each open DIE level (-1: none).
        var enclosing: [Int32] = []
        var lastChild: [Int32: Int32] = [:]
        var functionRanges: [(range: Range<UInt64>, value: Int32)] = []
        while reader.offset < unit.end {
            let dieOffset = reader.offset
            let code = try reader.uleb128()
            if code == 0 {
                if enclosing.popLast() == nil { break }
                continue
            }
            guard let abbreviation = table.abbreviation(code) else {
                throw ByteReader.Malformed(offset: dieOffset, reason: "unknown abbreviation \(code)")
            }
            let parent = enclosing.last ?? -1
            let tag = abbreviation.tag
            guard tag == DW.Tag.subprogram || tag == DW.Tag.inlinedSubroutine else {
                for spec in table.specs[abbreviation.attributes] { _ = try dwarf.readValue(spec, &reader, unit) }
                if abbreviation.hasChildren { enclosing.append(parent) }
                continue
            }
            var lowPC: DWARFFile.Value?
            var highPC: DWARFFile.Value?
            var rangeList: DWARFFile.Value?
            var callFile: UInt64 = 0
            var callLine: UInt64 = 0
            for spec in table.specs[abbreviation.attributes] {
                let value = try dwarf.readValue(spec, &reader, unit)
                switch spec.name {
                case DW.Attribute.lowPC: lowPC = value
                case DW.Attribute.highPC: highPC = value
                case DW.Attribute.ranges: rangeList = value
                case DW.Attribute.callFile: callFile = value.integer ?? 0
                case DW.Attribute.callLine: callLine = value.integer ?? 0
                default: break
                }
            }
            let codeRanges = dwarf.codeRanges(lowPC: lowPC, highPC: highPC, ranges: rangeList, in: unit)
            var this = parent
            if !codeRanges.isEmpty {
                let isInlined = tag == DW.Tag.inlinedSubroutine && parent >= 0
                this = Int32(nodes.count)
                let first = ranges.count
                ranges.append(contentsOf: codeRanges)
                nodes.append(
                    Node(
                        ranges: first..<ranges.count,
                        die: dieOffset,
                        isInlined: isInlined,
                        callFile: callFile,
                        callLine: callLine
                    )
                )
                if isInlined {
                    if let previous = lastChild[parent] {
                        nodes[Int(previous)].nextSibling = this
                    } else {
                        nodes[Int(parent)].firstChild = this
                    }
                    lastChild[parent] = this
                } else {
                    for range in codeRanges { functionRanges.append((range, this)) }
                }
            }
            if abbreviation.hasChildren { enclosing.append(this) }
        }
        functions = IntervalIndex(functionRanges)
    }

    /// The nodes whose code holds `address`, the physical function first and the innermost
    /// inlined code last; empty when no function of this unit holds it.
    func chain(at address: UInt64) -> [Node] {
        guard let found = functions.first(containing: address) else { return [] }
        var chain = [nodes[Int(found)]]
        var current = nodes[Int(found)]
        // Descend into the inlined child holding the address; depth is bounded by the node count.
        while chain.count <= nodes.count {
            var child = current.firstChild
            var next: Node?
            while child >= 0 {
                let node = nodes[Int(child)]
                if ranges[node.ranges].contains(where: { $0.contains(address) }) {
                    next = node
                    break
                }
                child = node.nextSibling
            }
            guard let next else { break }
            chain.append(next)
            current = next
        }
        return chain
    }
}

extension DWARFFile {
    /// What the symbolizer shows for a function DIE.
    struct FunctionInfo: Sendable {
        /// `DW_AT_linkage_name` (mangled), if any.
        var linkageName: String?
        /// `DW_AT_name`.
        var name: String?
        /// `DW_AT_decl_line`, 0 when unknown.
        var declarationLine: Int = 0
    }

    /// The name and start line of the function DIE at `offset`, following `DW_AT_abstract_origin`
    /// and `DW_AT_specification` to where they are declared — into the dwz supplementary file if
    /// that is where they point.
    func functionInfo(at offset: Int) -> FunctionInfo {
        var result = FunctionInfo()
        var next: (file: DWARFFile, offset: Int)? = (self, offset)
        var hops = 0
        while let (file, current) = next, hops < 8 {
            hops += 1
            next = nil
            guard let unitIndex = file.unitIndex(containing: current) else { break }
            let unit = file.units[unitIndex]
            var reader = ByteReader(file.info)
            reader.offset = current
            guard let table = file.abbreviationTable(at: unit.abbreviationOffset), let code = try? reader.uleb128(),
                let abbreviation = table.abbreviation(code)
            else { break }
            for spec in table.specs[abbreviation.attributes] {
                guard let value = try? file.readValue(spec, &reader, unit) else { return result }
                switch spec.name {
                case DW.Attribute.linkageName, DW.Attribute.mipsLinkageName:
                    if result.linkageName == nil { result.linkageName = file.string(value, in: unit) }
                case DW.Attribute.name:
                    if result.name == nil { result.name = file.string(value, in: unit) }
                case DW.Attribute.declLine:
                    if result.declarationLine == 0 { result.declarationLine = Int(clamping: value.integer ?? 0) }
                case DW.Attribute.abstractOrigin, DW.Attribute.specification:
                    switch value {
                    case .reference(let target) where target != current: next = (file, target)
                    case .supplementaryReference(let target): next = file.supplementary.map { ($0, target) }
                    default: break
                    }
                default: break
                }
            }
            if result.linkageName != nil && result.name != nil && result.declarationLine != 0 { break }
        }
        return result
    }
}
