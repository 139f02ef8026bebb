import CPprof
import Glibc

/// An ELF image loaded in this process: the executable, a shared library or the vDSO.
package struct LoadedImage: Sendable, Hashable {
    /// The file the image was loaded from (the executable's real path for the main program);
    /// `[vdso]` for the vDSO.
    package var path: String
    /// Added to the file's virtual addresses to get run-time addresses.
    package var loadBias: UInt
    /// Run-time address ranges of the image's executable `PT_LOAD` segments.
    package var executableRanges: [Range<UInt>]
    package var isMainExecutable: Bool
    /// The GNU build ID read from the loaded image's own notes in memory: what is actually running,
    /// even if the file at `path` has since been replaced.
    package var buildID: String? = nil

    package func contains(_ address: UInt) -> Bool {
        executableRanges.contains { $0.contains(address) }
    }
}

package enum LoadedImages {
    /// All images currently loaded, from `dl_iterate_phdr` (never called in a handler: it locks).
    package static func current() -> [LoadedImage] {
        final class Collector {
            var images: [LoadedImage] = []
        }
        let collector = Collector()
        withExtendedLifetime(collector) {
            pp_for_each_image(
                { context, name, bias, headers, count in
                    guard let context else { return }
                    let collector = Unmanaged<Collector>.fromOpaque(context).takeUnretainedValue()
                    var ranges: [Range<UInt>] = []
                    var buildID: String?
                    if let headers {
                        let headers = UnsafeBufferPointer(start: headers, count: Int(max(count, 0)))
                        for header in headers {
                            guard header.p_type == UInt32(PT_LOAD), header.p_flags & UInt32(PF_X) != 0 else { continue }
                            let start = bias &+ UInt(header.p_vaddr)
                            ranges.append(start..<start &+ UInt(header.p_memsz))
                        }
                        buildID = LoadedImages.buildID(headers: headers, bias: bias)
                    }
                    let name = name.map { String(cString: $0) } ?? ""
                    let isMain = collector.images.isEmpty && name.isEmpty
                    let path: String
                    if isMain {
                        path = LoadedImages.executablePath()
                    } else if name.isEmpty || name.hasPrefix("linux-vdso") || name.hasPrefix("linux-gate") {
                        path = "[vdso]"
                    } else {
                        path = name
                    }
                    collector.images.append(
                        LoadedImage(
                            path: path,
                            loadBias: bias,
                            executableRanges: ranges,
                            isMainExecutable: isMain,
                            buildID: buildID
                        )
                    )
                },
                Unmanaged.passUnretained(collector).toOpaque()
            )
        }
        return collector.images
    }

    /// The build ID in a loaded image's `PT_NOTE` segments. Only notes that lie inside a readable
    /// `PT_LOAD` segment are read: those bytes are mapped for as long as the image is loaded, and
    /// the loader lock held by `dl_iterate_phdr` keeps it loaded while we read.
    private static func buildID(headers: UnsafeBufferPointer<Elf64_Phdr>, bias: UInt) -> String? {
        let loaded = headers.filter { $0.p_type == UInt32(PT_LOAD) && $0.p_flags & UInt32(PF_R) != 0 }
        for note in headers where note.p_type == UInt32(PT_NOTE) && note.p_memsz > 0 && note.p_memsz < 1 << 20 {
            let start = note.p_vaddr
            let (end, overflow) = start.addingReportingOverflow(note.p_memsz)
            guard !overflow,
                loaded.contains(where: { $0.p_vaddr <= start && end <= $0.p_vaddr &+ $0.p_filesz }),
                let base = UnsafeRawPointer(bitPattern: bias &+ UInt(start))
            else { continue }
            if let id = ELFFile.buildID(inNotes: UnsafeRawBufferPointer(start: base, count: Int(note.p_memsz))) {
                return id
            }
        }
        return nil
    }

    /// A copy of the vDSO's ELF image, read from memory: the `[vdso]` mapping that holds the
    /// address the kernel passed in `AT_SYSINFO_EHDR`. Only that readable mapping is copied (never
    /// the `[vvar]` data pages next to it).
    static func vdsoImage() -> [UInt8]? {
        let base = UInt64(pp_vdso_base())
        guard base != 0,
            let mapping = ProcessMaps.current().first(where: {
                $0.path == "[vdso]" && $0.start <= base && base < $0.limit && $0.permissions.hasPrefix("r")
            }),
            let pointer = UnsafeRawPointer(bitPattern: UInt(base))
        else { return nil }
        return Array(UnsafeRawBufferPointer(start: pointer, count: Int(mapping.limit - base)))
    }

    /// The real path of the running executable.
    static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments.first ?? "" }
        var path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if path.hasSuffix(" (deleted)") { path.removeLast(" (deleted)".count) }
        return path
    }
}
