import CPprof
import Glibc

/// Finds the separate debug file of an ELF image the way GDB does: by build ID under
/// `<debug dir>/.build-id/xx/yyyy.debug`, then by `.gnu_debuglink` next to the file, in its
/// `.debug/` directory and under `<debug dir>/<file's directory>/`. A candidate is used only if
/// its build ID matches the file's, and one found through the debug link only if its CRC32
/// matches the link's too (as GDB checks).
package enum DebugFiles {
    /// Where distributions install debug files (Debian's `*-dbg`/`*-dbgsym` packages, Fedora's
    /// `debuginfo`).
    package static let defaultDirectories = ["/usr/lib/debug"]

    static func find(for file: ELFFile, directories: [String] = defaultDirectories) -> ELFFile? {
        let buildID = file.buildID
        if let buildID, buildID.count > 2 {
            let prefix = buildID.prefix(2)
            let rest = buildID.dropFirst(2)
            for directory in directories {
                let candidate = "\(directory)/.build-id/\(prefix)/\(rest).debug"
                if let debug = open(candidate, for: file, buildID: buildID, crc: nil) { return debug }
            }
        }
        guard let link = file.debugLink, !link.name.isEmpty, !link.name.contains("/")
        else { return nil }
        let directory = parentDirectory(of: resolvedPath(file.path))
        var candidates = ["\(directory)/\(link.name)", "\(directory)/.debug/\(link.name)"]
        for root in directories { candidates.append("\(root)\(directory)/\(link.name)") }
        for candidate in candidates where candidate != file.path {
            if let debug = open(candidate, for: file, buildID: buildID, crc: link.crc) { return debug }
        }
        return nil
    }

    /// The dwz supplementary file a debug file names in `.gnu_debugaltlink`: at that path (relative
    /// to the debug file's directory unless absolute) or by its build ID; its build ID must match.
    static func findSupplementary(for file: ELFFile, directories: [String] = defaultDirectories) -> ELFFile? {
        guard let link = file.debugAltLink, !link.path.isEmpty, !link.buildID.isEmpty else { return nil }
        var candidates = [
            link.path.hasPrefix("/") ? link.path : parentDirectory(of: resolvedPath(file.path)) + "/" + link.path
        ]
        for directory in directories {
            candidates.append("\(directory)/.build-id/\(link.buildID.prefix(2))/\(link.buildID.dropFirst(2)).debug")
        }
        for candidate in candidates where candidate != file.path {
            guard access(candidate, R_OK) == 0, let supplementary = try? ELFFile(path: candidate),
                supplementary.buildID == link.buildID
            else { continue }
            return supplementary
        }
        return nil
    }

    private static func open(_ path: String, for file: ELFFile, buildID: String?, crc: UInt32?) -> ELFFile? {
        guard access(path, R_OK) == 0, let candidate = try? ELFFile(path: path), candidate.machine == file.machine
        else { return nil }
        if let buildID, candidate.buildID != buildID { return nil }
        if let crc, crc32(of: candidate.bytes) != crc { return nil }
        return buildID != nil || crc != nil ? candidate : nil
    }

    static func crc32(of bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: uLong = 0
        var offset = 0
        // zlib takes 32-bit lengths.
        while offset < bytes.count {
            let count = min(bytes.count - offset, 1 << 30)
            crc = CPprof.crc32(
                crc,
                bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: Bytef.self),
                uInt(count)
            )
            offset += count
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    private static func resolvedPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "" : String(path[..<slash])
    }
}
