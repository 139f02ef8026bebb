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
        var capacity = 4096
        var addresses: [UInt] = []
        var ids: [UInt32] = []
        while true {
            addresses = [UInt](repeating: 0, count: capacity)
            ids = [UInt32](repeating: 0, count: capacity)
            let count = pp_tasks_collect(&addresses, &ids, capacity)
            if count < capacity {
                addresses.removeSubrange(count...)
                ids.removeSubrange(count...)
                break
            }
            capacity *= 4
        }
        var result: [TaskSnapshot] = []
        result.reserveCapacity(addresses.count)
        var frames = [UInt](repeating: 0, count: maximumFrames)
        var nameBuffer = [CChar](repeating: 0, count: 256)
        for (address, id) in zip(addresses, ids) {
            var raw = pp_task_snapshot()
            let state = pp_task_read(address, id, &raw, &frames, UInt32(maximumFrames))
            guard state != 0 else { continue }
            result.append(
                TaskSnapshot(
                    address: address,
                    id: UInt64(raw.id_high) << 32 | UInt64(raw.id_low),
                    jobFlags: raw.job_flags,
                    statusFlags: raw.status_flags,
                    resumeAddresses: state == 1
                        ? frames[0..<Int(raw.frame_count)].filter { !adapters.contains($0) } : [],
                    consistent: state == 1,
                    name: pp_task_read_name(address, id, &nameBuffer, nameBuffer.count) > 0
                        ? String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                        : nil
                )
            )
        }
        return result
    }

    /// The function names of a task's async frames, innermost first, funclets folded to their
    /// function. Resume addresses are funclet entry points, so they are looked up as they are.
    package static func functionNames(of task: TaskSnapshot, symbolizer: Symbolizer = .shared) -> [String] {
        symbolizer.frames(at: task.resumeAddresses).map { frames in
            frames.last.map { foldFuncletName($0.name) } ?? "?"
        }
    }

    /// "(1) await resume partial function for f()" → "f()".
    package static func foldFuncletName(_ name: String) -> String {
        guard let range = name.range(of: " partial function for ") else { return name }
        return String(name[range.upperBound...])
    }
}
