import CPprof
import Glibc
import Synchronization

/// One function at an address. Inlined code yields several, innermost first.
struct SymbolFrame: Sendable, Hashable {
    /// Demangled name.
    var name: String
    /// The linker symbol (mangled for Swift and C++).
    var systemName: String
    /// Source file, "" when unknown.
    var file: String
    /// Source line, 0 when unknown.
    var line: Int
    /// First line of the function, 0 when unknown.
    var startLine: Int
    /// Run-time entry address of the physical function containing the address, 0 when unknown.
    var entry: UInt
}

/// Maps run-time addresses of this process to functions, files and lines, outside any handler.
///
/// Symbols come from each image's ELF `.symtab` and `.dynsym` (not `dladdr`, which cannot see
/// Swift symbols in executables). Per-image tables are loaded once and cached, as is every
/// address looked up.
final class Symbolizer: Sendable {
    static let shared = Symbolizer()

    private struct State {
        var images: [LoadedImage] = []
        var tables: [String: ImageSymbols] = [:]
        var cache: [UInt: [SymbolFrame]] = [:]
    }

    private let state = Mutex(State())

    init() {}

    /// The frames at `address` (a call PC: a return address minus one, or an interrupted PC).
    /// Empty when the address is in no known image or no symbol covers it.
    func frames(at address: UInt) -> [SymbolFrame] {
        state.withLock { state in
            if let cached = state.cache[address] { return cached }
            let frames = Self.lookUp(address, in: &state)
            state.cache[address] = frames
            return frames
        }
    }

    /// The loaded image whose executable segments contain `address`.
    func image(containing address: UInt) -> LoadedImage? {
        state.withLock { state in
            if let image = state.images.first(where: { $0.contains(address) }) { return image }
            state.images = LoadedImages.current()
            return state.images.first(where: { $0.contains(address) })
        }
    }

    private static func lookUp(_ address: UInt, in state: inout State) -> [SymbolFrame] {
        var image = state.images.first(where: { $0.contains(address) })
        if image == nil {
            state.images = LoadedImages.current()
            image = state.images.first(where: { $0.contains(address) })
        }
        guard let image else { return [] }
        let table: ImageSymbols
        if let cached = state.tables[image.path] {
            table = cached
        } else {
            table = ImageSymbols(path: image.path)
            state.tables[image.path] = table
        }
        guard let symbol = table.symbol(containing: UInt64(address &- image.loadBias)) else { return [] }
        return [
            SymbolFrame(
                name: demangle(symbol.name),
                systemName: symbol.name,
                file: "",
                line: 0,
                startLine: 0,
                entry: UInt(symbol.start) &+ image.loadBias
            )
        ]
    }
}

/// The function symbols of one ELF file, sorted by address for binary search.
final class ImageSymbols: Sendable {
    struct Entry: Sendable {
        var start: UInt64
        var size: UInt64
        var name: String
    }

    let path: String
    let entries: [Entry]

    init(path: String) {
        self.path = path
        guard path != "[vdso]", let file = try? ELFFile(path: path) else {
            self.entries = []
            return
        }
        var entries: [Entry] = []
        var seen = Set<UInt64>()
        for dynamic in [false, true] {
            try? file.forEachSymbol(dynamic: dynamic) { symbol, strings in
                guard symbol.isFunction, symbol.value != 0, symbol.sectionIndex != 0, !seen.contains(symbol.value),
                    let name = cString(in: strings, at: Int(symbol.nameOffset)), !name.isEmpty
                else { return }
                seen.insert(symbol.value)
                entries.append(Entry(start: symbol.value, size: symbol.size, name: name))
            }
        }
        entries.sort { $0.start < $1.start }
        self.entries = entries
    }

    /// The symbol whose range holds `fileAddress`; a zero-size symbol covers up to the next one.
    func symbol(containing fileAddress: UInt64) -> Entry? {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].start <= fileAddress { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let candidate = entries[low - 1]
        if candidate.size > 0 { return fileAddress < candidate.start + candidate.size ? candidate : nil }
        return candidate
    }
}

/// Demangles a Swift or C++ symbol; other names are returned unchanged.
func demangle(_ name: String) -> String {
    let isSwift = name.hasPrefix("$s") || name.hasPrefix("$S") || name.hasPrefix("_T0") || name.hasPrefix("$e")
    if isSwift {
        let result = name.withCString { pp_swift_demangle($0, strlen($0)) }
        if let result {
            defer { free(result) }
            return String(cString: result)
        }
    } else if name.hasPrefix("_Z") {
        if let result = name.withCString({ pp_cxx_demangle($0) }) {
            defer { free(result) }
            return String(cString: result)
        }
    }
    return name
}
