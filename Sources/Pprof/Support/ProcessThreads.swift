import CPprof
import Glibc

/// The threads of this process, from `/proc/self/task`.
enum ProcessThreads {
    /// Thread IDs (tids) of every live thread, in no particular order.
    static func list() -> [Int32] {
        guard let directory = opendir("/proc/self/task") else { return [] }
        defer { closedir(directory) }
        var tids: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let tid = Int32(name) { tids.append(tid) }
        }
        return tids
    }

    /// The thread's name (`comm`, at most 15 bytes), or `nil` if it has exited.
    static func name(of tid: Int32) -> String? {
        guard var text = readTextFile("/proc/self/task/\(tid)/comm") else { return nil }
        if text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    /// The calling thread's kernel thread ID.
    static var currentID: Int32 { pp_gettid() }
}
