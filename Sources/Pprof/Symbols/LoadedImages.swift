import CPprof
import Glibc

/// An ELF image loaded in this process: the executable, a shared library or the vDSO.
struct LoadedImage: Sendable, Hashable {
    /// The file the image was loaded from (the executable's real path for the main program);
    /// `[vdso]` for the vDSO.
    var path: String
    /// Added to the file's virtual addresses to get run-time addresses.
    var loadBias: UInt
    /// Run-time address ranges of the image's executable `PT_LOAD` segments.
    var executableRanges: [Range<UInt>]
    var isMainExecutable: Bool

    func contains(_ address: UInt) -> Bool {
        executableRanges.contains { $0.contains(address) }
    }
}

enum LoadedImages {
    /// All images currently loaded, from `dl_iterate_phdr` (never called in a handler: it locks).
    static func current() -> [LoadedImage] {
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
                    if let headers {
                        for index in 0..<Int(count) {
                            let header = headers[index]
                            guard header.p_type == UInt32(PT_LOAD), header.p_flags & UInt32(PF_X) != 0 else { continue }
                            let start = bias &+ UInt(header.p_vaddr)
                            ranges.append(start..<start &+ UInt(header.p_memsz))
                        }
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
                        LoadedImage(path: path, loadBias: bias, executableRanges: ranges, isMainExecutable: isMain)
                    )
                },
                Unmanaged.passUnretained(collector).toOpaque()
            )
        }
        return collector.images
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
