import Glibc

/// One line of `/proc/self/maps`.
struct MemoryMapping: Sendable, Hashable {
    var start: UInt64
    var limit: UInt64
    var permissions: String
    var fileOffset: UInt64
    var inode: UInt64
    /// The path, `[vdso]`-style name, or "" for anonymous memory; a trailing " (deleted)" is removed.
    var path: String

    var isExecutable: Bool {
        let perms = Array(permissions.utf8)
        return perms.count >= 4 && perms[2] == UInt8(ascii: "x")
    }
}

enum ProcessMaps {
    /// Parses maps text with Go's rules (`parseProcSelfMaps`): fields split on runs of spaces, the
    /// path is the rest of the line after the inode, lines that do not parse are skipped.
    static func parse(_ text: String) -> [MemoryMapping] {
        var result: [MemoryMapping] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if let mapping = parseLine(Substring(line)) { result.append(mapping) }
        }
        return result
    }

    private static func parseLine(_ line: Substring) -> MemoryMapping? {
        var rest = line[...]
        func nextField() -> Substring? {
            rest = rest.drop(while: { $0 == " " })
            guard !rest.isEmpty else { return nil }
            let field = rest.prefix(while: { $0 != " " })
            rest = rest[field.endIndex...]
            return field
        }
        guard let range = nextField(), let perms = nextField(), let offset = nextField(), nextField() != nil,
            let inode = nextField()
        else { return nil }
        let bounds = range.split(separator: "-")
        guard bounds.count == 2, let lo = UInt64(bounds[0], radix: 16), let hi = UInt64(bounds[1], radix: 16),
            let off = UInt64(offset, radix: 16)
        else { return nil }
        var path = String(rest.drop(while: { $0 == " " }))
        if path.hasSuffix(" (deleted)") { path.removeLast(" (deleted)".count) }
        return MemoryMapping(
            start: lo,
            limit: hi,
            permissions: String(perms),
            fileOffset: off,
            inode: UInt64(inode) ?? 0,
            path: path
        )
    }

    /// The current mappings of this process.
    static func current() -> [MemoryMapping] {
        parse(readTextFile("/proc/self/maps") ?? "")
    }

    /// The executable mappings a pprof profile lists, in file order (Go's `readMapping` rules):
    /// anonymous executable memory (inode 0, no name) is skipped; `[vdso]` is kept.
    static func executableMappings(_ mappings: [MemoryMapping]) -> [MemoryMapping] {
        mappings.filter { $0.isExecutable && !($0.inode == 0 && $0.path.isEmpty) }
    }
}

/// Reads a whole (small, possibly procfs) file; procfs files report size 0, so this reads until EOF.
func readTextFile(_ path: String) -> String? {
    guard let bytes = readFileBytes(path) else { return nil }
    return String(decoding: bytes, as: UTF8.self)
}

func readFileBytes(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if count == 0 { return result }
        result.append(contentsOf: chunk[0..<count])
    }
}
