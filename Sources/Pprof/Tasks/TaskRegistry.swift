import CPprof

#if canImport(Glibc)
    import Glibc
#endif

/// One live Swift task as read from its memory (issue 14; layout facts in docs/tasks-research.md).
package struct TaskSnapshot: Sendable, Hashable {
    /// The task object's address.
    package var address: UInt
    /// The runtime's 64-bit task id.
    package var id: UInt64
    /// The job flags word: kind, priority and the child / future / group / async-let bits.
    package var jobFlags: UInt32
    /// The ActiveTaskStatus flags word (priority, cancelled, running, enqueued…).
    package var statusFlags: UInt32
    /// Resume addresses of the async frame chain, innermost first: where the task continues, then
    /// where each async caller continues. Empty when the task moved while it was read.
    package var resumeAddresses: [UInt]
    /// False when the task resumed while it was read: its frames were dropped, not guessed.
    package var consistent: Bool
    /// The name given with `Task(name:)` (SE-0469), nil when none (up to 255 bytes).
    package var name: String? = nil
    /// What the task waits on, from its innermost status record.
    package var dependency: TaskDependency = .none
    /// The kinds of the task's status records, innermost first (for diagnostics).
    package var recordKinds: [UInt8] = []
    /// The parent task's address, for a child task (task group, async let); nil otherwise.
    package var parent: UInt? = nil
    /// The profiler labels in force in the task (`withProfileLabels`), sorted by key.
    package var labels: [TaskLabel] = []
    /// How long the task has at most been in its current suspension: the time since it was created
    /// or last enqueued on the global or main executor (the task cannot have suspended before that).
    /// An upper bound, tight for tasks that resume there; loose for a task that resumes onto an actor,
    /// whose enqueue no hook sees. Nil when unknown (the process has run for over 497 days).
    package var suspendedAtMost: Duration? = nil

    package var priority: UInt8 { UInt8(truncatingIfNeeded: jobFlags >> 8) }
    package var isChildTask: Bool { jobFlags & (1 << 24) != 0 }
    package var isGroupChildTask: Bool { jobFlags & (1 << 26) != 0 }
    package var isAsyncLetTask: Bool { jobFlags & (1 << 28) != 0 }
    /// ActiveTaskStatus::IsCancelled (0x100; checked by the tests).
    package var isCancelled: Bool { statusFlags & 0x100 != 0 }
    /// ActiveTaskStatus::HasTaskDependency (0x4000): suspended waiting on a continuation, task or
    /// group (seen on tasks waiting on a continuation; the other bits are not checked yet).
    package var hasDependency: Bool { statusFlags & 0x4000 != 0 }
    /// ActiveTaskStatus::IsRunning (0x800): on a thread now, so its resume fields are stale; it is
    /// maintained on Linux too (checked by the tests with a spinning task).
    package var isRunning: Bool { statusFlags & 0x800 != 0 }
    /// ActiveTaskStatus::IsEnqueued (0x1000, from sources): runnable, waiting for a thread.
    package var isEnqueued: Bool { statusFlags & 0x1000 != 0 }
    /// The task's current (possibly escalated) priority.
    package var currentPriority: UInt8 { UInt8(truncatingIfNeeded: statusFlags) }
}

/// One profiler label of a task.
package struct TaskLabel: Sendable, Hashable {
    package var key: String
    package var value: String
}

/// What a suspended or enqueued task waits on: the runtime's `TaskDependencyStatusRecord`, the
/// innermost status record of a task that has one (ActiveTaskStatus::HasTaskDependency).
package enum TaskDependency: Sendable, Hashable {
    /// No dependency record (running, just created, or a runtime that keeps none for this wait).
    case none
    /// Awaiting another task's value (`await task.value`, an `async let`): that task's address.
    case task(UInt)
    /// Suspended on a continuation (`withCheckedContinuation`, `Task.sleep`, `AsyncStream`…): the
    /// continuation's context, which belongs to the task itself.
    case continuation(UInt)
    /// Awaiting a child of its task group (`next()`, `waitForAll()`): the group's address.
    case group(UInt)
    /// Enqueued on an executor, waiting to run: an actor's (identity non-zero) or the global one.
    case executor(identity: UInt, implementation: UInt)
    /// A dependency record of a kind this layout does not define: shown as unknown.
    case unrecognized(UInt32)
}

/// Finds the process's live tasks, recorded by the `swift_task_create` hook in `PprofHooks`.
package enum TaskRegistry {
    /// Why tasks cannot be shown, or nil when they can.
    package static var unavailableReason: String? {
        switch runtime {
        case .failure(let reason): return reason.message
        case .success:
            return pp_tasks_hooked() != 0 ? nil : "tasks unavailable: no task created since PprofHooks was linked"
        }
    }

    /// Runtime layout versions whose AsyncTask offsets `tasks.c` was written for and checked against.
    static let supportedLayoutVersions: Set<UInt32> = [1]

    /// sizeof(AsyncTask) with those offsets: Job (64) + ResumeContext, Reserved64, private storage.
    static let expectedTaskSize: UInt = 208

    struct Unavailable: Error { var message: String }

    /// The layout check, once: the runtime's own debug variables say which layout it has.
    static let runtime: Result<UInt, Unavailable> = {
        guard
            let version = dlsym(
                UnsafeMutableRawPointer(bitPattern: 0),
                "_swift_concurrency_debug_internal_layout_version"
            ),
            let metadata = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "_swift_concurrency_debug_asyncTaskMetadata")
        else {
            return .failure(Unavailable(message: "tasks unavailable on this runtime: no concurrency debug symbols"))
        }
        let layout = version.load(as: UInt32.self)
        guard MemoryLayout<UInt>.size == 8, supportedLayoutVersions.contains(layout) else {
            return .failure(Unavailable(message: "tasks unavailable on this runtime: task layout version \(layout)"))
        }
        // The same layout version has covered several AsyncTask sizes; the size pins this one.
        let size = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "_swift_concurrency_debug_asyncTaskSize")?
            .load(as: UInt.self)
        guard size == expectedTaskSize else {
            return .failure(
                Unavailable(
                    message: "tasks unavailable on this runtime: AsyncTask size \(size.map(String.init) ?? "unknown")"
                )
            )
        }
        let address = UInt(bitPattern: metadata.load(as: UnsafeRawPointer?.self))
        guard address != 0 else {
            return .failure(Unavailable(message: "tasks unavailable on this runtime: no task metadata"))
        }
        pp_tasks_set_task_metadata(address)
        return .success(address)
    }()

    /// The runtime's layout version, for diagnostics; nil without the debug symbol.
    package static var layoutVersion: UInt32? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), "_swift_concurrency_debug_internal_layout_version")?
            .load(as: UInt32.self)
    }

    /// The runtime's resume adapters: a task's ResumeTask may be one of them rather than code of
    /// its own, and they are no frame of the task.
    static let adapters: Set<UInt> = {
        var found: Set<UInt> = []
        for name in [
            "_swift_concurrency_debug_non_future_adapter", "_swift_concurrency_debug_future_adapter",
            "_swift_concurrency_debug_task_wait_throwing_resume_adapter",
            "_swift_concurrency_debug_task_future_wait_resume_adapter",
        ] {
            if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) {
                let address = UInt(bitPattern: symbol.load(as: UnsafeRawPointer?.self))
                if address != 0 { found.insert(address) }
            }
        }
        return found
    }()

    /// Arms the hook's dead-entry reuse early (it is also armed on the first dump).
    package static func prepare() { _ = runtime }

    /// Whether new tasks are recorded (on by default); tasks created while off are not listed.
    package static func setRecording(_ on: Bool) { pp_tasks_set_enabled(on ? 1 : 0) }

    /// True once the swift_task_create hook has seen a task (PprofHooks is linked).
    package static var isTracking: Bool { pp_tasks_hooked() != 0 }

    /// Tasks the registry could not hold.
    package static var dropped: UInt64 { pp_tasks_dropped() }

    /// The live tasks now, or nil with `unavailableReason` set. Every read is fault-tolerant; a
    /// task that finishes meanwhile is left out.
    package static func liveTasks(maximumFrames: Int = 128) -> [TaskSnapshot]? {
        guard case .success = runtime, pp_tasks_hooked() != 0 else { return nil }
        // Recovering loads instead of a page probe (a system call) per task and record: the dump
        // thread is an ordinary thread, so faults reach the recovery handler unless it blocks them.
        _ = pp_fault_recovery_enable()
        let recover = pp_faults_recoverable_here()
        var capacity = 4096
        var addresses: [UInt] = []
        var ids: [UInt32] = []
        var readyStamps: [UInt32] = []
        while true {
            addresses = [UInt](repeating: 0, count: capacity)
            ids = [UInt32](repeating: 0, count: capacity)
            readyStamps = [UInt32](repeating: 0, count: capacity)
            let count = pp_tasks_collect(&addresses, &ids, &readyStamps, capacity, recover)
            if count < capacity {
                addresses.removeSubrange(count...)
                ids.removeSubrange(count...)
                readyStamps.removeSubrange(count...)
                break
            }
            capacity *= 4
        }
        let memory = TaskMemory(recover: recover != 0)
        // Tags read from tasks stay resolvable while pinned, even if their sets die meanwhile.
        LabelTags.pin()
        defer { LabelTags.unpin() }
        var labelsByTag: [UInt64: [TaskLabel]] = [:]
        var result: [TaskSnapshot] = []
        result.reserveCapacity(addresses.count)
        var resultStamps: [UInt32] = []
        var frames = [UInt](repeating: 0, count: maximumFrames)
        var nameBuffer = [CChar](repeating: 0, count: 256)
        for (index, (address, id)) in zip(addresses, ids).enumerated() {
            var raw = pp_task_snapshot()
            var state = pp_task_read(address, id, &raw, &frames, UInt32(maximumFrames), recover)
            guard state != 0 else { continue }
            var snapshot = TaskSnapshot(
                address: address,
                id: UInt64(raw.id_high) << 32 | UInt64(raw.id_low),
                jobFlags: raw.job_flags,
                statusFlags: raw.status_flags,
                resumeAddresses: [],
                consistent: false,
                name: pp_task_read_name(address, id, &nameBuffer, nameBuffer.count, recover) > 0
                    ? String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    : nil
            )
            if state == 1 {
                (snapshot.dependency, snapshot.recordKinds) = statusRecords(from: raw.status_record, memory: memory)
                if snapshot.isChildTask { snapshot.parent = memory.word(at: address &+ childFragmentOffset) }
                let tag = pp_task_label_tag(address, recover)
                if tag != 0 {
                    if labelsByTag[tag] == nil {
                        labelsByTag[tag] = LabelTags.labels(forTag: tag).map { TaskLabel(key: $0.key, value: $0.value) }
                    }
                    snapshot.labels = labelsByTag[tag]!
                }
                // The records live in the task's allocator and go when it resumes: they count only
                // if the task is the same, at the same place, with the same records, afterwards.
                var again = pp_task_snapshot()
                if pp_task_read(address, id, &again, nil, 0, recover) != 1 || again.resume_task != raw.resume_task
                    || again.resume_context != raw.resume_context || again.status_record != raw.status_record
                    || again.status_flags != raw.status_flags
                {
                    state = 2
                    snapshot.dependency = .none
                    snapshot.parent = nil
                    snapshot.labels = []
                }
            }
            if state == 1 {
                snapshot.consistent = true
                snapshot.resumeAddresses = frames[0..<Int(raw.frame_count)].filter { !adapters.contains($0) }
            }
            result.append(snapshot)
            resultStamps.append(readyStamps[index])
        }
        // After every read: the clock is then never earlier than any moment a task was seen in.
        let now = pp_tasks_clock()
        for (index, stamp) in resultStamps.enumerated() {
            result[index].suspendedAtMost = suspensionBound(now: now, readySince: stamp)
        }
        return result
    }

    /// `now - stamp` on the stamp clock (centiseconds), or nil once 32-bit stamps may have wrapped.
    static func suspensionBound(now: UInt64, readySince stamp: UInt32) -> Duration? {
        guard now < 1 << 32, now >= UInt64(stamp) else { return nil }
        return .milliseconds(Int64(now - UInt64(stamp)) * 10)
    }

    /// Status record kinds (`TaskStatusRecordKind`, layout version 1): records are `{flags (kind in
    /// bits 0-7), parent record}` then the kind's own fields.
    enum RecordKind {
        static let dependency: UInt8 = 0
        static let recordLock: UInt8 = 192
    }

    /// Where a child task's fragment starts (right after the AsyncTask), its first word the parent.
    static let childFragmentOffset = expectedTaskSize

    /// What the task waits on, from its status records starting at `record` (the innermost); every
    /// read fault-tolerant. A `TaskDependencyStatusRecord` is `{flags, parent, DependentOn (a
    /// pointer, or an executor's identity and implementation words), DependencyKind (32 bits)}`, and
    /// is the innermost record but for a record lock.
    static func statusRecords(from record: UInt, memory: TaskMemory = TaskMemory()) -> (TaskDependency, [UInt8]) {
        var kinds: [UInt8] = []
        var dependency = TaskDependency.none
        var record = record
        while record != 0, kinds.count < 32 {
            guard let flags = memory.word(at: record), let parent = memory.word(at: record &+ 8) else { break }
            let kind = UInt8(truncatingIfNeeded: flags)
            if kind == RecordKind.dependency, kinds.allSatisfy({ $0 == RecordKind.recordLock }) {
                dependency = Self.dependency(at: record, memory: memory)
            }
            kinds.append(kind)
            if parent == record { break }
            record = parent
        }
        return (dependency, kinds)
    }

    static func dependency(at record: UInt, memory: TaskMemory = TaskMemory()) -> TaskDependency {
        guard let first = memory.word(at: record &+ 16), let second = memory.word(at: record &+ 24),
            let kindWord = memory.word(at: record &+ 32)
        else { return .none }
        let kind = UInt32(truncatingIfNeeded: kindWord)
        switch kind {
        case 1: return .task(first)
        case 2: return .continuation(first)
        case 3: return .group(first)
        case 4: return .executor(identity: first, implementation: second)
        default: return .unrecognized(kind)
        }
    }

    /// What the task waits on, a word: `continuation`, `sleep` (a continuation inside the runtime's
    /// `Task.sleep`), `task`, `group`, `actor` (enqueued on an actor's or another serial executor),
    /// `executor` (enqueued on the global executor, waiting for a thread), `unknown`.
    package static func waitKind(of task: TaskSnapshot, symbolizer: Symbolizer = .shared) -> String {
        waitKind(of: task) { isSleeping(task, symbolizer: symbolizer) }
    }

    /// `waitKind` of each task, the symbol lookup that tells `sleep` made once per innermost pair of
    /// resume addresses (a dump holds many tasks suspended at the same place).
    package static func waitKinds(of tasks: [TaskSnapshot], symbolizer: Symbolizer = .shared) -> [String] {
        var sleeping: [SIMD2<UInt>: Bool] = [:]
        return tasks.map { task in
            waitKind(of: task) {
                let addresses = task.resumeAddresses
                let key = SIMD2(addresses.first ?? 0, addresses.count > 1 ? addresses[1] : 0)
                if let known = sleeping[key] { return known }
                let found = isSleeping(task, symbolizer: symbolizer)
                sleeping[key] = found
                return found
            }
        }
    }

    static func waitKind(of task: TaskSnapshot, sleeping: () -> Bool) -> String {
        switch task.dependency {
        case .continuation: return sleeping() ? "sleep" : "continuation"
        case .task: return "task"
        case .group: return "group"
        case .executor(let identity, _): return identity != 0 ? "actor" : "executor"
        case .none, .unrecognized: return "unknown"
        }
    }

    /// A continuation awaited by the concurrency library's own sleep: `Task.sleep(for:)` and
    /// `Clock.sleep` end in `Task._sleep` (specialized per clock), innermost on the task;
    /// `Task.sleep(nanoseconds:)` waits in itself.
    static func isSleeping(_ task: TaskSnapshot, symbolizer: Symbolizer) -> Bool {
        symbolizer.frames(at: Array(task.resumeAddresses.prefix(2))).contains { frames in
            frames.contains { frame in
                frame.name.contains("(extension in Swift):Swift.Task<")
                    && (frame.name.contains("._sleep") || frame.name.contains(".sleep("))
            }
        }
    }

    /// What a child task belongs to: `task group`, `async let` or `task` (another structured
    /// child); nil for a task without a parent.
    package static func childKind(of task: TaskSnapshot) -> String? {
        guard task.isChildTask else { return nil }
        return task.isGroupChildTask ? "task group" : task.isAsyncLetTask ? "async let" : "task"
    }

    /// The function names of a task's async frames, innermost first (funclets are named as their
    /// function by the symbolizer). Resume addresses are funclet entry points, so they are looked
    /// up as they are.
    package static func functionNames(of task: TaskSnapshot, symbolizer: Symbolizer = .shared) -> [String] {
        symbolizer.frames(at: task.resumeAddresses).map { frames in
            frames.last?.displayName ?? "?"
        }
    }
}

/// Word reads of another task's memory that never fault (unreadable memory reads as nil).
struct TaskMemory {
    /// `pp_faults_recoverable_here()` of the reading thread: recovering loads rather than probes.
    var recover = false

    func word(at address: UInt) -> UInt? {
        var value: UInt = 0
        return pp_safe_read_word_recovering(address, &value, recover ? 1 : 0) != 0 ? value : nil
    }
}
