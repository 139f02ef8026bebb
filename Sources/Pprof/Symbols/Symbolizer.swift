import CPprof
import Glibc
import Synchronization

/// One function at an address. Inlined code yields several, innermost first.
package struct SymbolFrame: Sendable, Hashable {
    /// Demangled name.
    package var name: String
    /// The linker symbol (mangled for Swift and C++).
    package var systemName: String
    /// Source file, "" when unknown.
    package var file: String
    /// Source line, 0 when unknown.
    package var line: Int
    /// First line of the function, 0 when unknown.
    package var startLine: Int
    /// Run-time entry address of the physical function containing the address, 0 when unknown.
    package var entry: UInt
}

/// Maps run-time addresses of this process to functions, files and lines, outside any handler.
///
/// Function names come from each image's ELF `.symtab` and `.dynsym` (not `dladdr`, which cannot
/// see Swift symbols in executables), including the vDSO read from memory; inlined frames, file,
/// line and start line from DWARF where the image or its separate debug file has it. Each image is
/// loaded once, on first use, and every address looked up is cached. Images loaded later (`dlopen`)
/// are picked up; after a `dlclose` the address cache starts afresh.
package final class Symbolizer: Sendable {
    package static let shared = Symbolizer()

    /// Where separate debug files are searched (see `DebugFiles`).
    package let debugDirectories: [String]

    private struct Images {
        var images: [LoadedImage] = []
        /// Executable ranges of `images`, with the image's index.
        var ranges = IntervalIndex<Int>([])
        var generation: UInt64 = .max
        var unloads: UInt64 = 0
        var slots: [ImageKey: ImageSlot] = [:]
    }

    private struct ImageKey: Hashable {
        var path: String
        var buildID: String?
    }

    private let images = Mutex(Images())
    private let cache = Mutex([UInt: [SymbolFrame]]())
    /// The address cache starts afresh beyond this many entries, bounding its memory.
    private let cacheLimit = 1 << 18

    /// Copy every function name to the heap, as this reader once did: `pprof-bench footprint`
    /// measures both ways in one run.
    package static let copiesSymbolNames = Atomic<Bool>(false)

    package init(debugDirectories: [String] = DebugFiles.defaultDirectories) {
        self.debugDirectories = debugDirectories
    }

    /// The frames at `address` (a call PC: a return address minus one, or an interrupted PC),
    /// innermost inlined frame first. Empty when the address is in no known image or no symbol
    /// covers it.
    package func frames(at address: UInt) -> [SymbolFrame] {
        frames(at: [address])[0]
    }

    /// The frames of each address, in the order given. Cheaper than one call per address: the
    /// loader is asked once whether images changed, and each image is locked once.
    package func frames(at addresses: [UInt]) -> [[SymbolFrame]] {
        // Image tables are loaded on first use, on whichever thread asks: never the service's work.
        pp_profiler_work_enter()
        defer { pp_profiler_work_leave() }
        refreshImagesIfChanged()
        var results = [[SymbolFrame]?](repeating: nil, count: addresses.count)
        cache.withLock { cache in
            for (index, address) in addresses.enumerated() { results[index] = cache[address] }
        }
        var missing: [(index: Int, address: UInt)] = []
        for (index, result) in results.enumerated() where result == nil {
            missing.append((index, addresses[index]))
        }
        if !missing.isEmpty {
            var resolved: [(address: UInt, frames: [SymbolFrame])] = []
            for (slot, image, group) in groupByImage(missing) {
                let fileAddresses = group.map { UInt64($0.address &- image.loadBias) }
                let found = slot.symbolizer(for: image, debugDirectories: debugDirectories)?
                    .frames(atFileAddresses: fileAddresses)
                for (position, item) in group.enumerated() {
                    var frames = found?[position] ?? []
                    for frame in frames.indices where frames[frame].entry != 0 {
                        frames[frame].entry &+= image.loadBias
                    }
                    results[item.index] = frames
                    resolved.append((item.address, frames))
                }
            }
            for item in missing where results[item.index] == nil {
                results[item.index] = []
                resolved.append((item.address, []))
            }
            cache.withLock { cache in
                if cache.count + resolved.count > cacheLimit { cache.removeAll(keepingCapacity: true) }
                for item in resolved { cache[item.address] = item.frames }
            }
        }
        return results.map { $0 ?? [] }
    }

    /// The loaded image whose executable segments contain `address`.
    package func image(containing address: UInt) -> LoadedImage? {
        refreshImagesIfChanged()
        return images.withLock { state in
            Self.imageIndex(containing: address, in: state).map { state.images[$0] }
        }
    }

    // MARK: Images

    /// Re-reads the image list when the loader's load/unload count moved; an unload also empties
    /// the address cache, since its addresses may now belong to another image.
    private func refreshImagesIfChanged() {
        var unloads: UInt64 = 0
        let generation = pp_image_generation(&unloads)
        let unloaded: Bool = images.withLock { state in
            guard state.generation != generation else { return false }
            let unloaded = state.generation != .max && unloads != state.unloads
            state.generation = generation
            state.unloads = unloads
            Self.load(LoadedImages.current(), into: &state)
            return unloaded
        }
        if unloaded { cache.withLock { $0.removeAll() } }
    }

    private static func load(_ loaded: [LoadedImage], into state: inout Images) {
        state.images = loaded
        state.ranges = IntervalIndex(
            loaded.enumerated().flatMap { index, image in
                image.executableRanges.map { (UInt64($0.lowerBound)..<UInt64($0.upperBound), index) }
            }
        )
        let live = Set(loaded.map { ImageKey(path: $0.path, buildID: $0.buildID) })
        state.slots = state.slots.filter { live.contains($0.key) }
    }

    private static func imageIndex(containing address: UInt, in state: Images) -> Int? {
        state.ranges.first(containing: UInt64(address))
    }

    private func groupByImage(
        _ items: [(index: Int, address: UInt)]
    ) -> [(ImageSlot, LoadedImage, [(index: Int, address: UInt)])] {
        images.withLock { state in
            var groups: [Int: [(index: Int, address: UInt)]] = [:]
            for item in items {
                guard let image = Self.imageIndex(containing: item.address, in: state) else { continue }
                groups[image, default: []].append(item)
            }
            return groups.map { image, group in
                let loaded = state.images[image]
                let key = ImageKey(path: loaded.path, buildID: loaded.buildID)
                let slot = state.slots[key] ?? ImageSlot()
                state.slots[key] = slot
                return (slot, loaded, group)
            }
        }
    }
}

/// Loads one image's `ImageSymbolizer` once, outside the symbolizer's image-list lock, so that
/// loading a large image does not hold up lookups in others.
private final class ImageSlot: Sendable {
    private let loaded = Mutex<ImageSymbolizer??>(nil)

    func symbolizer(for image: LoadedImage, debugDirectories: [String]) -> ImageSymbolizer? {
        loaded.withLock { loaded in
            if let loaded { return loaded }
            let symbolizer = Self.load(image, debugDirectories: debugDirectories)
            loaded = .some(symbolizer)
            return symbolizer
        }
    }

    private static func load(_ image: LoadedImage, debugDirectories: [String]) -> ImageSymbolizer? {
        if image.path == "[vdso]" {
            guard let bytes = LoadedImages.vdsoImage(), let file = try? ELFFile(name: "[vdso]", contents: bytes) else {
                return nil
            }
            return ImageSymbolizer(file: file, debugDirectories: [])
        }
        guard !image.path.isEmpty else { return nil }
        func isRunning(_ file: ELFFile?) -> Bool {
            guard let file else { return false }
            guard let running = image.buildID, let onDisk = file.buildID else { return true }
            return running == onDisk
        }
        var file = try? ELFFile(path: image.path)
        if !isRunning(file), image.isMainExecutable {
            // Replaced or deleted on disk since it started (an upgrade in place): /proc/self/exe
            // still opens the file that is running.
            file = try? ELFFile(path: "/proc/self/exe")
        }
        // A file replaced on disk would name the wrong functions: better none.
        guard let file, isRunning(file) else { return nil }
        // Only the main executable's file stays mapped (see `ImageSymbolizer`).
        return ImageSymbolizer(
            file: file,
            debugDirectories: debugDirectories,
            keepsFileMapped: image.isMainExecutable,
            copiesSymbolNames: Symbolizer.copiesSymbolNames.load(ordering: .relaxed)
        )
    }
}

/// Demangles a Swift or C++ symbol; other names are returned unchanged. A Swift async function's
/// funclets (`(1) suspend resume partial function for f()`, `(2) await resume partial function for
/// f()`, mangled `…TY0_` / `…TQ1_`) are named as their function, `f()`: every frame of an async
/// stack reads as the function it is in (the linker symbol still tells the funclets apart).
package func demangle(_ name: String) -> String {
    if name.hasSuffix("@plt") { return demangle(String(name.dropLast(4))) + "@plt" }
    if let function = asyncFuncletFunction(mangled: name) {
        let base = demangleSymbol(function)
        if base != function { return base }
    }
    return foldingAsyncFunclet(demangleSymbol(name))
}

/// `(1) await resume partial function for f()` → `f()`; likewise `suspend resume` and the
/// unnumbered `resume partial function for`. Other names are returned unchanged.
package func foldingAsyncFunclet(_ name: String) -> String {
    var rest = Substring(name)
    if rest.hasPrefix("("), let close = rest.firstIndex(of: ")"),
        rest[rest.index(after: rest.startIndex)..<close].allSatisfy(\.isNumber),
        rest[rest.index(after: close)...].hasPrefix(" ")
    {
        rest = rest[rest.index(close, offsetBy: 2)...]
    }
    for prefix in ["await resume partial function for ", "suspend resume partial function for "]
    where rest.hasPrefix(prefix) {
        return String(rest.dropFirst(prefix.utf8.count))
    }
    let plain = "resume partial function for "
    if rest.hasPrefix(plain) { return String(rest.dropFirst(plain.utf8.count)) }
    return name
}

/// The mangled name of the function a mangled funclet name (`…TY<n>_`, `…TQ<n>_`, `…TY_`,
/// `…TQ_`) belongs to, or nil when `name` is no such funclet. A clone suffix LLVM put before the
/// funclet's (`….37TQ0_`) goes too.
func asyncFuncletFunction(mangled name: String) -> String? {
    let bytes = Array(name.utf8)
    guard bytes.count > 4, bytes.starts(with: "$s".utf8), bytes.last == UInt8(ascii: "_") else { return nil }
    var index = bytes.count - 2
    while index > 2, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index -= 1 }
    guard index > 3, bytes[index] == UInt8(ascii: "Y") || bytes[index] == UInt8(ascii: "Q"),
        bytes[index - 1] == UInt8(ascii: "T")
    else { return nil }
    var end = index - 1
    var digits = end
    while digits > 2, bytes[digits - 1] >= UInt8(ascii: "0"), bytes[digits - 1] <= UInt8(ascii: "9") { digits -= 1 }
    if digits < end, digits > 3, bytes[digits - 1] == UInt8(ascii: ".") { end = digits - 1 }
    return String(decoding: bytes[..<end], as: UTF8.self)
}

private func demangleSymbol(_ name: String) -> String {
    var bytes = name.utf8.makeIterator()
    let first = bytes.next()
    let second = bytes.next()
    let isSwift =
        (first == UInt8(ascii: "$")
            && (second == UInt8(ascii: "s") || second == UInt8(ascii: "S") || second == UInt8(ascii: "e")))
        || (first == UInt8(ascii: "_") && second == UInt8(ascii: "T") && bytes.next() == UInt8(ascii: "0"))
    if isSwift {
        let result = name.withCString { pp_swift_demangle($0, strlen($0)) }
        if let result {
            defer { free(result) }
            return String(cString: result)
        }
    } else if first == UInt8(ascii: "_"), second == UInt8(ascii: "Z") {
        if let result = name.withCString({ pp_cxx_demangle($0) }) {
            defer { free(result) }
            return String(cString: result)
        }
    }
    return name
}
