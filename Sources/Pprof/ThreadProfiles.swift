import CPprof
import Glibc

/// One thread's answer to a thread dump.
struct ThreadSample: Sendable {
    enum Status: Sendable, Equatable {
        case sampled
        /// Did not answer before the deadline.
        case noAnswer
        /// Blocks the dump signal, so it cannot answer.
        case blocksSignal
        /// Exited before it answered.
        case exited
        /// Was not asked (the signal could not be queued, or the dump ran out of time).
        case notAsked
    }

    var tid: Int32
    var status: Status
    /// Return-address-style entries, leaf first (empty unless sampled).
    var stack: [UInt]
    /// `PP_STACK_*` flags of the walk.
    var flags: UInt32
    /// The system call the thread was blocked in, if any (kernel number).
    var syscall: Int?
    var labelTag: UInt64
}

/// Collects the stacks of the process's threads: each thread is signalled and records its own
/// stack from its signal handler (see `pp_thread_dump.h`).
enum ThreadDump {
    /// Requests in flight at once.
    static let window = 32

    /// The stacks of `tids` (every thread of the process by default), in the same order.
    static func capture(
        threads tids: [Int32] = ProcessThreads.list(),
        timeout: Duration = .seconds(2)
    ) throws -> [ThreadSample] {
        UnwindTables.prepare()
        guard !tids.isEmpty else { return [] }
        let output = UnsafeMutablePointer<pp_thread_stack>.allocate(capacity: tids.count)
        defer { output.deallocate() }
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        let result = tids.withUnsafeBufferPointer {
            pp_thread_dump($0.baseAddress, Int32($0.count), output, Int32(window), nanoseconds)
        }
        guard result == 0 else {
            throw PprofError.unavailable("thread dump: every real-time signal is taken by other handlers")
        }
        return (0..<tids.count).map { index in
            var entry = output[index]
            let depth = Int(max(0, min(entry.depth, PP_THREAD_STACK_MAX)))
            let stack = withUnsafeBytes(of: &entry.pcs) { raw in
                Array(raw.bindMemory(to: UInt.self).prefix(depth))
            }
            let status: ThreadSample.Status
            switch entry.status {
            case Int32(PP_THREAD_SAMPLED): status = .sampled
            case Int32(PP_THREAD_BLOCKS_SIGNAL): status = .blocksSignal
            case Int32(PP_THREAD_EXITED): status = .exited
            case Int32(PP_THREAD_NO_ANSWER): status = .noAnswer
            default: status = .notAsked
            }
            return ThreadSample(
                tid: entry.tid,
                status: status,
                stack: stack,
                flags: entry.flags,
                syscall: entry.syscall >= 0 ? Int(entry.syscall) : nil,
                labelTag: entry.label_tag
            )
        }
    }
}
