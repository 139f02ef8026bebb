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
    /// What its registers said of system calls when asked.
    var systemCall: ThreadProfiles.SystemCallEvidence = .noneSeen
    var labelTag: UInt64
}

/// Collects the stacks of the process's threads: each thread is signalled and records its own
/// stack from its signal handler (see `pp_thread_dump.h`).
@_spi(Internals) public enum ThreadDump {
    /// For benchmarks: dumps every thread and returns how many there were and how many answered.
    public static func captureAllThreads() throws -> (threads: Int, sampled: Int) {
        let samples = try capture()
        return (samples.count, samples.filter { $0.status == .sampled }.count)
    }

    /// Requests in flight at once.
    static let window = 32

    /// The stacks of `tids` (every thread of the process by default), in the same order.
    /// `prepareTables: false` is for callers that prepared the unwind tables themselves (the wall
    /// profiler, at start, instead of at each period).
    static func capture(
        threads tids: [Int32] = ProcessThreads.list(),
        timeout: Duration = .seconds(2),
        window: Int = Self.window,
        prepareTables: Bool = true
    ) throws -> [ThreadSample] {
        if prepareTables { UnwindTables.prepare() }
        guard !tids.isEmpty else { return [] }
        let output = UnsafeMutablePointer<pp_thread_stack>.allocate(capacity: tids.count)
        defer { output.deallocate() }
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        let result = tids.withUnsafeBufferPointer {
            pp_thread_dump($0.baseAddress, Int32($0.count), output, Int32(window), nanoseconds)
        }
        guard result == 0 else {
            throw PprofError.unavailable("thread dump: SIGPROF and every real-time signal belong to other handlers")
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
                systemCall: ThreadProfiles.SystemCallEvidence(entry.in_syscall),
                labelTag: entry.label_tag
            )
        }
    }
}

/// One thread in a `goroutine` profile.
struct ThreadRecord: Sendable {
    var tid: Int32
    /// `comm`, up to 15 bytes ("" unless details were asked for).
    var name: String
    /// The kernel's scheduling state, plus what the thread waits for when that shows.
    var state: String
    var sample: ThreadSample
    var labels: [(key: String, value: String)]
    /// The stack as profiles show it: sampled frames plus synthetic frames for what is missing.
    var stack: [UInt]
}

/// The `goroutine` (every thread's stack) and `threadcreate` profiles.
enum ThreadProfiles {
    // MARK: goroutine

    /// What Go counts for `goroutine`: here, the threads of the process.
    static var threadCount: Int { ProcessThreads.list().count }

    /// Every thread's stack, the calling thread first. `details` adds names and states (debug=2).
    /// Threads that exit during the dump are left out and counted.
    static func dump(details: Bool) throws -> (threads: [ThreadRecord], exited: Int) {
        let own = ProcessThreads.currentID
        var tids = ProcessThreads.list().filter { $0 != own }.sorted()
        tids.insert(own, at: 0)
        let kernelStates = details ? tids.map(kernelState(of:)) : []
        LabelTags.pin()
        defer { LabelTags.unpin() }
        let samples = try ThreadDump.capture(threads: tids)
        var threads: [ThreadRecord] = []
        var exited = 0
        for (index, sample) in samples.enumerated() {
            if sample.status == .exited {
                exited += 1
                continue
            }
            var record = ThreadRecord(
                tid: sample.tid,
                name: details ? ProcessThreads.name(of: sample.tid) ?? "" : "",
                state: "",
                sample: sample,
                labels: sample.status == .sampled ? threadLabels(of: sample) : [],
                stack: profileStack(of: sample)
            )
            if details {
                record.state = describeState(kernel: kernelStates[index], sample: sample, isCaller: index == 0)
            }
            threads.append(record)
        }
        return (threads, exited)
    }

    /// A sampled thread's profiler labels, and `pprof_internal` when it was doing the profiler's work.
    static func threadLabels(of sample: ThreadSample) -> [(key: String, value: String)] {
        var labels = LabelTags.labels(forTag: sample.labelTag)
        if sample.flags & UInt32(PP_STACK_PROFILER) != 0 { labels.append((ProfilerWork.labelKey, "true")) }
        return labels
    }

    static func writeGoroutine(to sink: some ProfileSink, debug: Int) throws {
        let (threads, exited) = try dump(details: debug >= 2)
        let tasks = suspendedTasks()
        if debug >= 2 {
            try sink.write(crashStyleDump(threads))
            switch tasks {
            case .listed(let list): try writeTaskDump(list, to: sink)
            case .unavailable(let reason): try sink.write("\n\(reason)\n")
            case .untracked: break
            }
            return
        }
        var comments: [String] = []
        let unsampled = threads.filter { $0.sample.status != .sampled }.count
        if unsampled > 0 { comments.append("\(unsampled) threads could not be sampled") }
        if exited > 0 { comments.append("\(exited) threads exited during the dump") }
        var records = threads.map { CountProfile.Record(stack: $0.stack, labels: $0.labels) }
        switch tasks {
        case .listed(let list): records += zip(list, TaskRegistry.waitKinds(of: list)).map(taskRecord)
        case .unavailable(let reason): comments.append(reason)
        case .untracked: break
        }
        let profile = CountProfile(
            name: "goroutine",
            records: records,
            comments: comments
        )
        try profile.write(to: sink, debug: debug)
    }

    /// The sampled stack with synthetic frames saying what is missing, or a synthetic frame
    /// saying why there is no stack.
    static func profileStack(of sample: ThreadSample) -> [UInt] {
        switch sample.status {
        case .sampled:
            var stack = sample.stack
            if sample.flags & UInt32(PP_STACK_TRUNCATED) != 0 { stack.append(SyntheticFrame.truncatedStack.rawValue) }
            if sample.flags & UInt32(PP_STACK_INCOMPLETE) != 0 { stack.append(SyntheticFrame.unwindStopped.rawValue) }
            return stack.isEmpty ? [SyntheticFrame.emptyStack.rawValue] : stack
        case .blocksSignal:
            return [SyntheticFrame.threadBlocksSignal.rawValue]
        case .noAnswer, .notAsked, .exited:
            return [SyntheticFrame.threadDidNotAnswer.rawValue]
        }
    }

    // MARK: debug=2

    /// One block per thread in the spirit of Go's crash dump:
    /// `thread <tid> "<name>" [<state>]:` then each frame's function and `\t<file>:<line> +0x<off>`.
    static func crashStyleDump(_ threads: [ThreadRecord], symbolizer: Symbolizer = .shared) -> String {
        var text = ""
        for thread in threads {
            if !text.isEmpty { text += "\n" }
            text += "thread \(thread.tid) \(LegacyText.goQuote(thread.name)) [\(thread.state)]"
            if !thread.labels.isEmpty { text += " " + LegacyText.labelString(thread.labels) }
            text += ":\n"
            switch thread.sample.status {
            case .sampled: break
            case .blocksSignal:
                text += "\tstack unavailable: the thread blocks the dump signal\n"
                continue
            case .noAnswer, .notAsked, .exited:
                text += "\tstack unavailable: the thread did not answer in time\n"
                continue
            }
            for entry in thread.stack {
                text += frameLines(entry, symbolizer: symbolizer)
            }
        }
        return text
    }

    private static func frameLines(_ entry: UInt, symbolizer: Symbolizer) -> String {
        if entry <= SyntheticFrame.maximumRawValue {
            return (SyntheticFrame(rawValue: entry)?.functionName ?? "pprof.unknownFrame") + "\n\t?:0\n"
        }
        let pc = entry - 1
        let frames = symbolizer.frames(at: pc)
        guard !frames.isEmpty else {
            guard let image = symbolizer.image(containing: pc) else { return "?\n\t? +0x\(hex(pc))\n" }
            return "?\n\t\(image.path) +0x\(hex(pc - image.loadBias))\n"
        }
        var text = ""
        for (index, frame) in frames.enumerated() {
            text += frame.displayName + "\n\t"
            text += frame.file.isEmpty ? "?" : frame.file
            text += ":\(frame.line)"
            // Like Go, only the physical (outermost) frame of an address carries the offset.
            if index == frames.count - 1, frame.entry != 0, pc >= frame.entry { text += " +0x\(hex(pc - frame.entry))" }
            text += "\n"
        }
        return text
    }

    private static func hex(_ value: UInt) -> String { String(value, radix: 16) }

    // MARK: Tasks (issue 14)

    enum TaskListing {
        /// PprofHooks is not linked (or no task was created): nothing to say.
        case untracked
        /// The runtime's layout is not one we know: said in the profile, no task shown.
        case unavailable(String)
        case listed([TaskSnapshot])
    }

    /// Tasks not on a thread now. A running task is left out: its thread's stack already shows it,
    /// joined to its async callers by the unwinder. Tasks that moved while read are left out too.
    static func suspendedTasks() -> TaskListing {
        guard let tasks = TaskRegistry.liveTasks() else {
            guard let reason = TaskRegistry.unavailableReason, TaskRegistry.isTracking else { return .untracked }
            return .unavailable(reason)
        }
        return .listed(tasks.filter { !$0.isRunning && $0.consistent && !$0.resumeAddresses.isEmpty })
    }

    static func taskState(_ task: TaskSnapshot) -> String {
        var state = task.isEnqueued ? "runnable" : "suspended"
        if task.isCancelled { state += ", cancelled" }
        return state
    }

    /// Resume points are function entries; count-profile stacks hold return-address-style entries.
    static func taskRecord(_ task: TaskSnapshot, wait: String) -> CountProfile.Record {
        var labels = [(key: "task", value: taskState(task)), (key: "wait", value: wait)]
        if let name = task.name { labels.append((key: "task name", value: name)) }
        if let child = TaskRegistry.childKind(of: task) { labels.append((key: "child of", value: child)) }
        labels += task.labels.map { (key: $0.key, value: $0.value) }
        return CountProfile.Record(stack: task.resumeAddresses.map { $0 + 1 }, labels: labels)
    }

    /// debug=2: one block per task after the threads,
    /// `task 0x<address> id <id> "<name>" [<state> ≤ <bound>, waiting on <what>]:` then its frames,
    /// then `child of task 0x<parent> id <id> (<task group|async let|task>)` for a child task. In
    /// id order, or with `longestFirst` by how long each may have been suspended (`TaskDump`).
    static func writeTaskDump(
        _ tasks: [TaskSnapshot],
        to sink: some ProfileSink,
        longestFirst: Bool = false,
        symbolizer: Symbolizer = .shared
    ) throws {
        let ids = Dictionary(tasks.map { ($0.address, $0.id) }, uniquingKeysWith: { first, _ in first })
        func task(_ address: UInt) -> String {
            "task 0x\(hex(address))" + (ids[address].map { " id \($0)" } ?? "")
        }
        // Many tasks wait at the same places: each resume address is symbolized and formatted once.
        var lines: [UInt: String] = [:]
        // Written in chunks: 10,000 tasks make megabytes of text, which one string would copy as
        // it grows and the sink would copy again.
        let chunkSize = 64 << 10
        var text = ""
        text.reserveCapacity(chunkSize + 4096)
        let sorted = longestFirst ? tasks.sorted(by: suspendedLonger) : tasks.sorted(by: { $0.id < $1.id })
        for (snapshot, wait) in zip(sorted, TaskRegistry.waitKinds(of: sorted, symbolizer: symbolizer)) {
            text += "\n\(task(snapshot.address))"
            if let name = snapshot.name { text += " " + LegacyText.goQuote(name) }
            var state = snapshot.isEnqueued ? "runnable" : "suspended"
            if let bound = snapshot.suspendedAtMost { state += " ≤ " + durationText(bound) }
            switch snapshot.dependency {
            case .task(let awaited): state += ", waiting on \(task(awaited))"
            case .group(let group): state += ", waiting on task group 0x\(hex(group))"
            case .executor(let identity, _) where identity != 0: state += ", waiting on actor 0x\(hex(identity))"
            default: if wait != "unknown" { state += ", waiting on \(wait)" }
            }
            if snapshot.isCancelled { state += ", cancelled" }
            text += " [\(state)]"
            if !snapshot.labels.isEmpty {
                text += " " + LegacyText.labelString(snapshot.labels.map { (key: $0.key, value: $0.value) })
            }
            text += ":\n"
            for address in snapshot.resumeAddresses {
                if let known = lines[address] {
                    text += known
                } else {
                    let formatted = frameLines(address + 1, symbolizer: symbolizer)
                    lines[address] = formatted
                    text += formatted
                }
            }
            if let child = TaskRegistry.childKind(of: snapshot) {
                text += "child of " + (snapshot.parent.map(task) ?? "a task") + " (\(child))\n"
            }
            if text.utf8.count >= chunkSize {
                try sink.write(text)
                text.removeAll(keepingCapacity: true)
            }
        }
        try sink.write(text)
    }

    /// The order of `tasks?longest=N`: larger suspension bound first, then lower id.
    static func suspendedLonger(_ first: TaskSnapshot, than second: TaskSnapshot) -> Bool {
        (first.suspendedAtMost ?? .zero, second.id) > (second.suspendedAtMost ?? .zero, first.id)
    }

    /// A suspension bound as Go writes durations, to the precision that matters: `850ms`, `12.3s`,
    /// `3m12s`, `2h05m`, `3d04h`.
    static func durationText(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        func twoDigits(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        switch milliseconds {
        case ..<1000: return "\(milliseconds)ms"
        case ..<60_000: return "\(milliseconds / 1000).\(milliseconds % 1000 / 100)s"
        case ..<3_600_000: return "\(milliseconds / 60_000)m\(twoDigits(milliseconds / 1000 % 60))s"
        case ..<86_400_000: return "\(milliseconds / 3_600_000)h\(twoDigits(milliseconds / 60_000 % 60))m"
        default: return "\(milliseconds / 86_400_000)d\(twoDigits(milliseconds / 3_600_000 % 24))h"
        }
    }

    // MARK: Thread states

    /// The state letter of /proc/self/task/<tid>/stat as a word, or nil if the thread is gone.
    static func kernelState(of tid: Int32) -> String? {
        guard let stat = readTextFile("/proc/self/task/\(tid)/stat"),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let rest = stat[stat.index(after: close)...].drop { $0 == " " }
        switch rest.first {
        case "R": return "running"
        case "S": return "sleeping"
        case "D": return "disk sleep"
        case "T": return "stopped"
        case "t": return "tracing stop"
        case "Z": return "zombie"
        case "X": return "dead"
        case "I": return "idle"
        case let letter?: return String(letter)
        case nil: return nil
        }
    }

    /// "sleeping, cond wait": the kernel state, and the wait reason when the system call the thread
    /// was interrupted in and its innermost frames show one.
    static func describeState(kernel: String?, sample: ThreadSample, isCaller: Bool) -> String {
        if isCaller { return "running" }
        var parts = [kernel ?? "unknown"]
        switch sample.status {
        case .sampled:
            if let reason = waitReason(syscall: sample.syscall, stack: sample.stack) { parts.append(reason) }
        case .blocksSignal: parts.append("blocks the dump signal")
        case .noAnswer, .notAsked: parts.append("did not answer")
        case .exited: parts.append("exited")
        }
        return parts.joined(separator: ", ")
    }

    /// What a thread waits for: from the functions innermost on its stack when they say it (a
    /// futex can be a condition, a semaphore or a lock), else from the system call it was in.
    static func waitReason(syscall: Int?, stack: [UInt], symbolizer: Symbolizer = .shared) -> String? {
        let names = stack.prefix(8).flatMap { entry -> [String] in
            entry <= SyntheticFrame.maximumRawValue ? [] : symbolizer.frames(at: entry - 1).map(\.name)
        }
        for name in names {
            if name.contains("pthread_cond_") || name.contains("NSCondition.wait") { return "cond wait" }
            if name.contains("sem_wait") || name.contains("sem_timedwait") || name.contains("sema4") {
                return "semaphore wait"
            }
            if name.contains("pthread_mutex_") || name.contains("pthread_rwlock_") || name.contains("_lockSlow") {
                return "mutex lock"
            }
            if name.contains("pthread_join") || name.contains("pthread_clockjoin") || name.contains("pthread_timedjoin")
            {
                return "join"
            }
            if name.hasPrefix("nanosleep") || name.hasPrefix("clock_nanosleep") || name.hasPrefix("usleep")
                || name.contains("Thread.sleep(") || name.contains("Task.sleep(")
            {
                return "sleep"
            }
            if name.hasPrefix("epoll_") || name.hasPrefix("poll") || name.hasPrefix("ppoll") || name.hasPrefix("select")
            {
                return "IO wait"
            }
        }
        guard let syscall, let call = BlockingSystemCall(number: syscall) else { return nil }
        return call.reason
    }

    /// What a sampled thread's registers said of system calls.
    enum SystemCallEvidence: Hashable {
        /// Blocked in one (also when `syscall` could not tell which).
        case blocked
        /// One had just returned: a woken thread not yet back in its caller (or waiting for a CPU).
        case returned
        /// Neither: interrupted in ordinary code, or where a kernel or sandbox shows no trace of the call.
        case noneSeen

        init(_ raw: Int32) {
            switch Int(raw) {
            case Int(PP_IN_SYSCALL): self = .blocked
            case Int(PP_RETURNED_FROM_SYSCALL): self = .returned
            default: self = .noneSeen
            }
        }
    }

    /// libc's wrappers of blocking system calls, by the start of their names less `_`, `__GI_` or
    /// `__libc_` prefixes.
    static let blockingCallWrappers = [
        "clock_nanosleep", "nanosleep", "epoll_wait", "epoll_pwait", "poll", "ppoll", "select", "pselect",
        "futex_abstimed_wait", "futex_wait", "lll_lock_wait", "sem_wait", "sem_timedwait", "pause",
        "sigwait", "sigtimedwait", "sigsuspend", "wait4", "waitpid", "waitid", "accept", "recv", "recvfrom", "recvmsg",
        "read", "pread",
        "syscall",
    ]

    /// Whether the interrupted instruction (the stack's leaf) lies in a blocking call's libc wrapper.
    /// Where the registers show no trace of a call (a kernel or sandbox that reports an interrupted
    /// call differently: no rewind onto `syscall`, no -EINTR after it), that is the evidence of a
    /// wait: a thread spends next to no time in such a wrapper outside its system call.
    static func leafIsBlockingCallWrapper(_ stack: [UInt], symbolizer: Symbolizer) -> Bool {
        guard let leaf = stack.first, leaf > SyntheticFrame.maximumRawValue,
            let name = symbolizer.frames(at: leaf - 1).first?.name
        else { return false }
        return isBlockingCallWrapper(name)
    }

    /// "clock_nanosleep", "__GI___clock_nanosleep", "__libc_read", "__futex_abstimed_wait_common64";
    /// not "readdir" or "pollster".
    static func isBlockingCallWrapper(_ name: String) -> Bool {
        var bare = Substring(name)
        for prefix in ["_", "GI_", "_", "libc_"] {
            while bare.hasPrefix(prefix) { bare = bare.dropFirst(prefix.count) }
        }
        return blockingCallWrappers.contains { stem in
            bare.hasPrefix(stem) && (bare.dropFirst(stem.count).first.map { !$0.isLetter } ?? true)
        }
    }

    // MARK: threadcreate

    /// Threads created so far through the pthread_create hook (0 without it).
    static var threadCreateCount: Int { Int(pp_thread_create_total()) }

    static func writeThreadCreate(to sink: some ProfileSink, debug: Int) throws {
        guard pp_thread_events_hooked() != 0 else {
            throw PprofError.unavailable(
                "the threadcreate profile needs the pthread_create hook, which is not installed: "
                    + "link the PprofHooks product into the executable (or LD_PRELOAD libPprofPreload.so)"
            )
        }
        var records = threadCreateRecords()
        let dropped = Int(pp_thread_create_dropped())
        records += Array(repeating: CountProfile.Record(stack: [SyntheticFrame.lostSamples.rawValue]), count: dropped)
        let comments = dropped > 0 ? ["\(dropped) thread creations lost (creation-stack table full)"] : []
        try CountProfile(name: "threadcreate", records: records, comments: comments).write(to: sink, debug: debug)
    }

    /// One record per thread created, with the creating stack.
    static func threadCreateRecords() -> [CountProfile.Record] {
        final class Collector {
            var records: [CountProfile.Record] = []
        }
        let collector = Collector()
        withExtendedLifetime(collector) {
            pp_thread_create_visit(
                { context, pcs, depth, count, flags in
                    let collector = Unmanaged<Collector>.fromOpaque(context!).takeUnretainedValue()
                    var stack = pcs.map { Array(UnsafeBufferPointer(start: $0, count: Int(depth))) } ?? []
                    if flags & UInt32(PP_STACK_TRUNCATED) != 0 { stack.append(SyntheticFrame.truncatedStack.rawValue) }
                    if flags & UInt32(PP_STACK_INCOMPLETE) != 0 { stack.append(SyntheticFrame.unwindStopped.rawValue) }
                    if stack.isEmpty { stack = [SyntheticFrame.emptyStack.rawValue] }
                    // Threads the profiler started for itself carry its label.
                    let labels: [(key: String, value: String)] =
                        flags & UInt32(PP_STACK_PROFILER) != 0 ? [(ProfilerWork.labelKey, "true")] : []
                    for _ in 0..<count {
                        collector.records.append(CountProfile.Record(stack: stack, labels: labels))
                    }
                },
                Unmanaged.passUnretained(collector).toOpaque()
            )
        }
        return collector.records
    }
}

/// System calls threads block in, by kernel number on this architecture, and the wait reason each
/// stands for in a thread dump.
enum BlockingSystemCall: CaseIterable {
    case futex, sleep, poll, read, accept, wait, signalWait, restart

    init?(number: Int) {
        guard let match = Self.numbers.first(where: { $0.value.contains(number) }) else { return nil }
        self = match.key
    }

    var reason: String {
        switch self {
        case .futex: return "futex wait"
        case .sleep: return "sleep"
        case .poll: return "IO wait"
        case .read: return "read"
        case .accept: return "accept"
        case .wait: return "child wait"
        case .signalWait: return "signal wait"
        case .restart: return "sleep or timed wait"
        }
    }

    #if arch(x86_64)
        private static let numbers: [BlockingSystemCall: Set<Int>] = [
            .futex: [202],
            .sleep: [35, 230, 34],  // nanosleep, clock_nanosleep, pause
            // poll, select, epoll_*, pselect6, ppoll, io_uring_enter, io_getevents
            .poll: [7, 23, 232, 270, 271, 281, 441, 426, 208],
            .read: [0, 17, 19, 45, 47, 299],  // read, pread64, readv, recvfrom, recvmsg, recvmmsg
            .accept: [43, 288],
            .wait: [61, 247],  // wait4, waitid
            .signalWait: [128, 130],  // rt_sigtimedwait, rt_sigsuspend
            .restart: [219],  // restart_syscall
        ]
    #else
        private static let numbers: [BlockingSystemCall: Set<Int>] = [
            .futex: [98],
            .sleep: [101, 115],  // nanosleep, clock_nanosleep
            .poll: [72, 73, 22, 441, 426, 4],  // pselect6, ppoll, epoll_pwait(2), io_uring_enter, io_getevents
            .read: [63, 67, 65, 207, 212, 243],  // read, pread64, readv, recvfrom, recvmsg, recvmmsg
            .accept: [202, 242],
            .wait: [260, 95],  // wait4, waitid
            .signalWait: [137, 133],  // rt_sigtimedwait, rt_sigsuspend
            .restart: [128],  // restart_syscall
        ]
    #endif
}
