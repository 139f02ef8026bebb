import CPprof
import Glibc
import Synchronization

/// Unwind information prepared outside any handler for the C stack walker: `.eh_frame`-derived
/// rows for the leaf frame and for code without frame pointers, and the address ranges of Swift
/// async funclets. See `pp_unwind_tables.h` for the layout the walker reads.
///
/// SPI for the benchmarks and test helper (they cannot import the module with `@testable` in
/// release builds).
@_spi(Internals) public enum UnwindTables {
    /// Builds and publishes the tables for every loaded image not yet covered. Idempotent, cheap
    /// when nothing changed, safe from any thread; profilers call it before they start sampling.
    /// It also installs the fault-recovery handler that makes walks cheaper (`pp_safe_read.h`).
    public static func prepare() {
        ProfilerWork.run { UnwindTablePublisher.shared.prepare() }
    }

    /// What `prepare()` found in each image, for tests and diagnostics.
    public static var images: [UnwindImageSummary] {
        UnwindTablePublisher.shared.summaries
    }
}

/// What the unwind tables hold for one image.
@_spi(Internals) public struct UnwindImageSummary: Sendable {
    public var path: String
    public var start: UInt
    public var end: UInt
    public var rowCount: Int
    /// Functions whose unwind information sets up a frame record, and functions with a frame of
    /// some other shape; the walker unwinds the latter from rows.
    public var framePointerFunctions: Int
    public var otherFramedFunctions: Int
    public var funcletCount: Int
    /// Granules of code where return addresses are unwound with rows, and all granules.
    public var rowGranules = 0
    public var granules = 0
    /// Bytes of table memory handed to the walker.
    public var tableBytes = 0
    /// Why the image has no rows, when it has none.
    public var problem: String?

    /// The share of framed functions that keep frame pointers.
    public var framePointerShare: Double {
        let framed = framePointerFunctions + otherFramedFunctions
        return framed == 0 ? 1 : Double(framePointerFunctions) / Double(framed)
    }
}

/// Owns the published tables. Everything handed to C is allocated once and never freed: a walk
/// in a signal handler may still be reading an older snapshot.
final class UnwindTablePublisher: Sendable {
    static let shared = UnwindTablePublisher()

    private struct PreparedImage: @unchecked Sendable {
        var entry: pp_unwind_image
        var summary: UnwindImageSummary
    }

    private struct State {
        var prepared: [String: PreparedImage] = [:]
        var publishedKeys: [String] = []
    }

    private let state = Mutex(State())

    var summaries: [UnwindImageSummary] {
        state.withLock { state in state.publishedKeys.compactMap { state.prepared[$0]?.summary } }
    }

    func prepare() {
        _ = pp_fault_recovery_enable()
        let images = LoadedImages.current()
        state.withLock { state in
            var keys: [String] = []
            for image in images {
                guard let range = Self.executableRange(of: image) else { continue }
                let key = "\(image.path)@\(image.loadBias)"
                keys.append(key)
                if state.prepared[key] == nil {
                    state.prepared[key] = Self.prepareImage(image, range: range)
                }
            }
            guard keys != state.publishedKeys else { return }
            var entries = keys.compactMap { state.prepared[$0]?.entry }
            entries.sort { $0.start < $1.start }
            // Images never overlap; if a stale entry would, keep the first.
            var disjoint: [pp_unwind_image] = []
            for entry in entries where disjoint.last.map({ $0.end <= entry.start }) ?? true {
                disjoint.append(entry)
            }
            let array = UnsafeMutablePointer<pp_unwind_image>.allocate(capacity: max(disjoint.count, 1))
            array.initialize(from: disjoint, count: disjoint.count)
            let tables = UnsafeMutablePointer<pp_unwind_tables>.allocate(capacity: 1)
            tables.initialize(to: pp_unwind_tables(image_count: UInt32(disjoint.count), images: array))
            pp_unwind_tables_publish(tables)
            state.publishedKeys = keys
        }
    }

    private static func executableRange(of image: LoadedImage) -> Range<UInt>? {
        guard let low = image.executableRanges.map(\.lowerBound).min(),
            let high = image.executableRanges.map(\.upperBound).max(), low < high
        else { return nil }
        return low..<high
    }

    // MARK: Building one image's tables

    private static func prepareImage(_ image: LoadedImage, range: Range<UInt>) -> PreparedImage {
        var summary = UnwindImageSummary(
            path: image.path,
            start: range.lowerBound,
            end: range.upperBound,
            rowCount: 0,
            framePointerFunctions: 0,
            otherFramedFunctions: 0,
            funcletCount: 0
        )
        var entry = pp_unwind_image()
        entry.start = range.lowerBound
        entry.end = range.upperBound
        let architecture = UnwindArchitecture.host
        var builder = RowTableBuilder(start: range.lowerBound, end: range.upperBound, architecture: architecture)
        do {
            if image.path == "[vdso]" {
                try VDSO.forEachFunction(architecture: architecture) { builder.add($0, loadBias: image.loadBias) }
            } else {
                let file = try ELFFile(path: image.path)
                guard file.machine == architecture.elfMachine else {
                    throw EHFrame.Malformed(reason: "machine \(file.machine) is not this process's")
                }
                try Self.forEachFunction(in: file, architecture: architecture) {
                    builder.add($0, loadBias: image.loadBias)
                }
                let funclets = AsyncFunclets.ranges(in: file, loadBias: image.loadBias, within: range)
                if !funclets.isEmpty {
                    summary.funcletCount = funclets.count
                    entry.funclet_count = UInt32(funclets.count)
                    entry.funclets = UnsafePointer(permanentCopy(funclets.flatMap { [$0.lowerBound, $0.upperBound] }))
                    entry.funclet_granules = UnsafePointer(
                        permanentCopy(
                            granuleBitmap(start: range.lowerBound, end: range.upperBound, ranges: funclets)
                        )
                    )
                }
            }
        } catch {
            summary.problem = "\(error)"
        }
        let table = builder.finish()
        summary.rowCount = table.addresses.count
        summary.framePointerFunctions = builder.framePointerFunctions
        summary.otherFramedFunctions = builder.otherFramedFunctions
        summary.rowGranules = table.rowGranules.reduce(0) { $0 + $1.nonzeroBitCount }
        summary.granules = Int((range.upperBound - range.lowerBound) >> UInt(PP_UNWIND_GRANULE_SHIFT)) + 1
        let bitmapBytes = (summary.granules + 7) / 8
        summary.tableBytes =
            table.addresses.count * 6 + table.ruleTable.count * MemoryLayout<pp_unwind_rule>.stride
            + table.index.count * 4 + table.rowGranules.count + Int(entry.funclet_count) * 8
            + (entry.funclet_granules == nil ? 0 : bitmapBytes)
        if !table.addresses.isEmpty {
            entry.row_count = UInt32(table.addresses.count)
            entry.row_addresses = UnsafePointer(permanentCopy(table.addresses))
            entry.row_rules = UnsafePointer(permanentCopy(table.rules))
            entry.rules = UnsafePointer(permanentCopy(table.ruleTable))
            entry.row_index = UnsafePointer(permanentCopy(table.index))
            entry.row_granules = UnsafePointer(permanentCopy(table.rowGranules))
        }
        return PreparedImage(entry: entry, summary: summary)
    }

    /// Every function of the file's `.eh_frame` (found by section name, or through the
    /// `PT_GNU_EH_FRAME` header when section headers are stripped).
    private static func forEachFunction(
        in file: ELFFile,
        architecture: UnwindArchitecture,
        _ body: (CFIFunction) -> Void
    ) throws {
        if let section = file.section(named: ".eh_frame"), section.type != ELFFile.sectionTypeNoBits {
            guard let bytes = file.slice(offset: section.offset, count: section.size) else {
                throw EHFrame.Malformed(reason: ".eh_frame outside the file")
            }
            try EHFrame(bytes: bytes, address: section.address, architecture: architecture).forEachFunction(body)
            return
        }
        let headerType: UInt32 = 0x6474_e550  // PT_GNU_EH_FRAME
        guard let header = file.programHeaders.first(where: { $0.type == headerType }),
            let headerBytes = file.slice(offset: header.offset, count: header.fileSize)
        else { return }
        let frameAddress = try EHFrame.frameAddress(fromHeader: headerBytes, headerAddress: header.virtualAddress)
        // .eh_frame runs from there to its terminator, inside the same loaded segment.
        guard
            let segment = file.programHeaders.first(where: {
                $0.type == ELFFile.programHeaderLoad && frameAddress >= $0.virtualAddress
                    && frameAddress < $0.virtualAddress + $0.fileSize
            }),
            let bytes = file.slice(
                offset: segment.offset + (frameAddress - segment.virtualAddress),
                count: segment.virtualAddress + segment.fileSize - frameAddress
            )
        else { throw EHFrame.Malformed(reason: ".eh_frame_hdr points outside the file") }
        try EHFrame(bytes: bytes, address: frameAddress, architecture: architecture).forEachFunction(body)
    }
}

/// Turns `.eh_frame` functions into the walker's compact, sorted rows with a lookup index, and
/// classifies each function as keeping a frame record or not.
struct RowTableBuilder {
    let start: UInt
    let end: UInt
    let architecture: UnwindArchitecture
    private(set) var framePointerFunctions = 0
    private(set) var otherFramedFunctions = 0

    private struct Function {
        var begin: UInt
        var end: UInt
        var rows: Range<Int>
        var needsRows: Bool
    }

    private var functions: [Function] = []
    private var rowAddresses: [UInt32] = []
    private var rowRules: [UInt16] = []
    private var rules: [pp_unwind_rule]
    private var ruleIDs: [UInt64: UInt16] = [:]

    init(start: UInt, end: UInt, architecture: UnwindArchitecture) {
        self.start = start
        self.end = end
        self.architecture = architecture
        var none = pp_unwind_rule()
        none.cfa_rule = UInt8(PP_CFA_NONE)
        var unsupported = pp_unwind_rule()
        unsupported.cfa_rule = UInt8(PP_CFA_UNSUPPORTED)
        rules = [none, unsupported]
        ruleIDs = [
            Self.key(none): UInt16(PP_UNWIND_RULE_NONE), Self.key(unsupported): UInt16(PP_UNWIND_RULE_UNSUPPORTED),
        ]
    }

    mutating func add(_ function: CFIFunction, loadBias: UInt) {
        let begin = UInt(truncatingIfNeeded: function.begin) &+ loadBias
        let functionEnd = UInt(truncatingIfNeeded: function.end) &+ loadBias
        guard begin >= start, functionEnd <= end, begin < functionEnd, let first = function.rows.first else { return }
        let firstRow = rowAddresses.count
        var hasFrameRecord = false
        var framed = false
        for (address, state) in function.rows {
            if keepsFrameRecord(state) { hasFrameRecord = true }
            if state != first.state { framed = true }
            rowAddresses.append(UInt32(truncatingIfNeeded: (UInt(truncatingIfNeeded: address) &+ loadBias) - start))
            rowRules.append(ruleID(compactRule(state, signal: function.isSignalFrame)))
        }
        if hasFrameRecord {
            framePointerFunctions += 1
        } else if framed {
            otherFramedFunctions += 1
        }
        functions.append(
            Function(
                begin: begin,
                end: functionEnd,
                rows: firstRow..<rowAddresses.count,
                needsRows: function.isSignalFrame || (framed && !hasFrameRecord)
            )
        )
    }

    /// x86_64 code with frame pointers bases its CFA on rbp; aarch64 code (GCC style) may keep the
    /// CFA on sp, but saves x29 right below x30 (the frame record).
    private func keepsFrameRecord(_ state: CFIState) -> Bool {
        if case .register(architecture.framePointer, _) = state.cfa { return true }
        if architecture.returnAddressStaysInRegister, case .offset(let fp) = state.framePointer,
            case .offset(let ra) = state.returnAddress, ra == fp + 8
        {
            return true
        }
        return false
    }

    private static func key(_ rule: pp_unwind_rule) -> UInt64 {
        UInt64(rule.cfa_rule) | UInt64(rule.flags) << 8 | UInt64(UInt16(bitPattern: rule.cfa_offset)) << 16
            | UInt64(UInt16(bitPattern: rule.fp_offset)) << 32 | UInt64(UInt16(bitPattern: rule.ra_offset)) << 48
    }

    private mutating func ruleID(_ rule: pp_unwind_rule) -> UInt16 {
        let key = Self.key(rule)
        if let id = ruleIDs[key] { return id }
        guard rules.count <= Int(UInt16.max) else { return UInt16(PP_UNWIND_RULE_UNSUPPORTED) }
        let id = UInt16(rules.count)
        rules.append(rule)
        ruleIDs[key] = id
        return id
    }

    private func compactRule(_ state: CFIState, signal: Bool) -> pp_unwind_rule {
        var rule = pp_unwind_rule()
        func words(_ bytes: Int64) -> Int16? {
            guard bytes % 8 == 0, let value = Int16(exactly: bytes / 8) else { return nil }
            return value
        }
        var unsupported = pp_unwind_rule()
        unsupported.cfa_rule = UInt8(PP_CFA_UNSUPPORTED)
        if signal {
            rule.cfa_rule = UInt8(PP_CFA_SIGNAL_FRAME)
            return rule
        }
        if state.returnAddress == .undefined {
            rule.cfa_rule = UInt8(PP_CFA_OUTERMOST)
            return rule
        }
        guard case .register(let register, let offset) = state.cfa, let cfaOffset = words(offset) else {
            return unsupported
        }
        switch register {
        case architecture.stackPointer: rule.cfa_rule = UInt8(PP_CFA_SP)
        case architecture.framePointer: rule.cfa_rule = UInt8(PP_CFA_FP)
        default: return unsupported
        }
        rule.cfa_offset = cfaOffset
        switch state.returnAddress {
        case .offset(let offset):
            guard let value = words(offset) else { return unsupported }
            rule.ra_offset = value
        case .unspecified where !architecture.returnAddressStaysInRegister:
            rule.ra_offset = -1  // where `call` left it
        case .unspecified, .sameValue:
            guard architecture.returnAddressStaysInRegister else { return unsupported }
            rule.flags |= UInt8(PP_ROW_RA_IN_LR)
        default:
            return unsupported
        }
        switch state.framePointer {
        case .offset(let offset):
            guard let value = words(offset) else { return unsupported }
            rule.fp_offset = value
            rule.flags |= UInt8(PP_ROW_FP_SAVED)
        case .unspecified, .sameValue, .undefined:
            break
        case .unsupported:
            return unsupported
        }
        return rule
    }

    struct Table {
        var addresses: [UInt32] = []
        var rules: [UInt16] = []
        var ruleTable: [pp_unwind_rule] = []
        var index: [UInt32] = []
        var rowGranules: [UInt8] = []
    }

    /// Sorted rows without repeats, with a "no information" row closing every gap between
    /// functions, the per-granule index and the bitmap of granules needing rows.
    func finish() -> Table {
        let sorted = functions.sorted { $0.begin < $1.begin }
        var table = Table()
        var needing: [Range<UInt32>] = []
        var coveredUpTo = start
        func append(_ address: UInt32, _ rule: UInt16) {
            if let last = table.addresses.last {
                if last == address {
                    table.rules[table.rules.count - 1] = rule
                    return
                }
                if table.rules.last == rule { return }
            }
            table.addresses.append(address)
            table.rules.append(rule)
        }
        for function in sorted where function.begin >= coveredUpTo {
            if function.begin > coveredUpTo, !table.addresses.isEmpty {
                append(UInt32(coveredUpTo - start), UInt16(PP_UNWIND_RULE_NONE))
            }
            for index in function.rows { append(rowAddresses[index], rowRules[index]) }
            coveredUpTo = function.end
            if function.needsRows {
                needing.append(UInt32(function.begin - start)..<UInt32(function.end - start))
            }
        }
        if !table.addresses.isEmpty, coveredUpTo < end {
            append(UInt32(coveredUpTo - start), UInt16(PP_UNWIND_RULE_NONE))
        }
        guard !table.addresses.isEmpty else { return Table() }
        table.ruleTable = rules
        // index[g] = the last row starting at or before granule g's first address.
        let granules = Int((end - start) >> UInt(PP_UNWIND_GRANULE_SHIFT)) + 2
        table.index = [UInt32](repeating: 0, count: granules)
        var row = 0
        for granule in 0..<granules {
            let granuleStart = UInt64(granule) << UInt64(PP_UNWIND_GRANULE_SHIFT)
            while row + 1 < table.addresses.count, UInt64(table.addresses[row + 1]) <= granuleStart { row += 1 }
            table.index[granule] = UInt32(row)
        }
        table.rowGranules = granuleBitmap(start: 0, end: end - start, ranges: needing)
        return table
    }
}

/// A bitmap with one bit per granule of [start, end), set for granules that `ranges` (offsets
/// from `start`) touch.
func granuleBitmap(start: UInt, end: UInt, ranges: [Range<UInt32>]) -> [UInt8] {
    let shift = UInt32(PP_UNWIND_GRANULE_SHIFT)
    let granules = Int((end - start) >> UInt(shift)) + 1
    var bitmap = [UInt8](repeating: 0, count: (granules + 7) / 8)
    for range in ranges where !range.isEmpty {
        for granule in Int(range.lowerBound >> shift)...Int((range.upperBound - 1) >> shift) where granule < granules {
            bitmap[granule >> 3] |= UInt8(1) << UInt8(granule & 7)
        }
    }
    return bitmap
}

/// Copies `values` into memory that is never freed (handed to the walker).
func permanentCopy<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
    let memory = UnsafeMutablePointer<T>.allocate(capacity: max(values.count, 1))
    memory.initialize(from: values, count: values.count)
    return memory
}

/// The vDSO has no file: its `.eh_frame` is read from memory, through its `PT_GNU_EH_FRAME`.
enum VDSO {
    static func forEachFunction(architecture: UnwindArchitecture, _ body: (CFIFunction) -> Void) throws {
        let base = UInt(pp_vdso_base())
        guard base != 0, let start = UnsafeRawPointer(bitPattern: base) else { return }
        // The ELF header says how many program headers follow; the whole image lies in its first
        // PT_LOAD, mapped from offset 0.
        let header = UnsafeRawBufferPointer(start: start, count: 64)
        var reader = ByteReader(header)
        reader.offset = 32
        let programHeaderOffset = Int(try reader.u64())
        reader.offset = 54
        let entrySize = Int(try reader.u16())
        let count = Int(try reader.u16())
        guard entrySize == 56, count > 0, count < 64, programHeaderOffset >= 64, programHeaderOffset < 4096 else {
            return
        }
        let headers = UnsafeRawBufferPointer(start: start + programHeaderOffset, count: entrySize * count)
        var loadSize: UInt64 = 0
        var frameHeader: (address: UInt64, size: UInt64)?
        for index in 0..<count {
            var entry = ByteReader(headers)
            entry.offset = index * entrySize
            let type = try entry.u32()
            _ = try entry.u32()
            let offset = try entry.u64()
            let address = try entry.u64()
            _ = try entry.u64()
            let fileSize = try entry.u64()
            if type == ELFFile.programHeaderLoad, offset == 0, address == 0 { loadSize = fileSize }
            if type == 0x6474_e550 { frameHeader = (address, fileSize) }
        }
        guard let frameHeader, loadSize > 0, frameHeader.address + frameHeader.size <= loadSize else { return }
        let headerBytes = UnsafeRawBufferPointer(start: start + Int(frameHeader.address), count: Int(frameHeader.size))
        let frameAddress = try EHFrame.frameAddress(fromHeader: headerBytes, headerAddress: frameHeader.address)
        guard frameAddress < loadSize else { return }
        let bytes = UnsafeRawBufferPointer(start: start + Int(frameAddress), count: Int(loadSize - frameAddress))
        try EHFrame(bytes: bytes, address: frameAddress, architecture: architecture).forEachFunction(body)
    }
}
