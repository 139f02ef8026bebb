import CPprof
import Glibc

/// The threads of this process, from `/proc/self/task`.
enum ProcessThreads {
    /// Thread IDs (tids) of every live thread, in no particular order.
    static func list() -> [Int32] {
        Directory()?.list() ?? []
    }

    /// `/proc/self/task`, kept open for listing the threads again and again (one `getdents64`
    /// per listing, no allocation per thread).
    final class Directory {
        private let descriptor: Int32
        private var buffer = [Int32](repeating: 0, count: 1024)

        init?() {
            descriptor = pp_thread_list_open()
            if descriptor < 0 { return nil }
        }

        deinit { close(descriptor) }

        func list() -> [Int32] {
            while true {
                let count = buffer.withUnsafeMutableBufferPointer {
                    Int(pp_thread_list_read(descriptor, $0.baseAddress, Int32($0.count)))
                }
                if count < 0 { return [] }
                if count < buffer.count { return Array(buffer[..<count]) }
                buffer = [Int32](repeating: 0, count: buffer.count * 2)
            }
        }
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
