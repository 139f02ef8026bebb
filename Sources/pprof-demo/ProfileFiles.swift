import Foundation
import Pprof

/// The files `pprof-demo` writes into its output directory, one per profile kind.
struct ProfileFiles {
    let directory: URL

    /// What was written (or why not), in order, for the summary.
    private(set) var written: [(file: String, outcome: String)] = []

    init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func url(_ file: String) -> URL { directory.appendingPathComponent(file) }

    /// Opens `file` for writing, truncating it.
    func open(_ file: String) throws -> FileHandle {
        let path = url(file).path
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw PprofError.invalidArgument("cannot create \(path)")
        }
        return try FileHandle(forWritingTo: url(file))
    }

    /// Writes one profile with `write` into `file`, recording its size or the error (a profile that
    /// cannot be written is reported, never skipped silently).
    mutating func write(_ file: String, _ write: (FileHandle) throws -> Void) {
        do {
            let handle = try open(file)
            defer { try? handle.close() }
            try write(handle)
            let size = (try? FileManager.default.attributesOfItem(atPath: url(file).path)[.size] as? Int) ?? 0
            written.append((file, Self.byteCount(size)))
        } catch {
            written.append((file, "FAILED: \(error)"))
        }
    }

    /// Every profile kind but CPU (written by `CPUProfile.stop()`), while the service still runs its
    /// threads, so that the thread dump shows them.
    mutating func writeAll(deltas: DeltaProfilers) {
        for debug in [0, 1, 2] {
            let file = debug == 0 ? "goroutine.pb.gz" : "goroutine-debug\(debug).txt"
            write(file) { try Profile.lookup("goroutine")!.write(to: $0, debug: debug) }
        }
        for name in ["heap", "allocs", "threadcreate", "block", "mutex", ConnectionPool.profile.name] {
            write("\(name).pb.gz") { try Profile.lookup(name)!.write(to: $0, debug: 0) }
        }
        write("delta_heap.pb.gz") { try deltas.heap.profile(to: $0) }
        write("delta_block.pb.gz") { try deltas.block.profile(to: $0) }
        write("delta_mutex.pb.gz") { try deltas.mutex.profile(to: $0) }
    }

    mutating func noteCPU(_ outcome: String) {
        written.insert(("cpu.pb.gz", outcome), at: 0)
    }

    static func byteCount(_ bytes: Int) -> String {
        bytes < 10_240 ? "\(bytes) B" : "\(bytes / 1024) KiB"
    }
}

/// godeltaprof's profilers, created before the workload so that their deltas cover exactly it.
struct DeltaProfilers {
    let heap = DeltaHeapProfiler()
    let block = DeltaBlockProfiler()
    let mutex = DeltaMutexProfiler()

    /// Takes (and discards) the first delta of each, which reports everything since the process
    /// started; the next one then covers only what happened since.
    func markStart() throws {
        try heap.profile(to: ProfileBuffer())
        try block.profile(to: ProfileBuffer())
        try mutex.profile(to: ProfileBuffer())
    }
}
