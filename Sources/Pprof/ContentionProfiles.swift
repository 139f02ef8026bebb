import CPprof

/// The block profile's sampling rate — Go's `runtime.SetBlockProfileRate`.
///
/// The `block` profile shows where threads wait: in pthread mutexes and rwlocks (`NSLock`,
/// `NSRecursiveLock`, `NIOLock`, most C libraries), conditions (`NSCondition`), POSIX semaphores and
/// `Synchronization.Mutex`, at the stack of the waiting thread. It needs the `PprofHooks` product
/// linked into the executable (or the `PprofPreload` library preloaded).
public enum BlockProfile {
    /// On average one event per `rate` nanoseconds spent blocked is recorded; an event lasting at
    /// least `rate` is always recorded, a shorter one with probability `duration / rate` and then
    /// weighted so the profile stays unbiased. `1` records every event; `0` or less turns the
    /// profile off (the default). Takes effect at once, on every thread.
    public static var rate: Int {
        get { Int(pp_contention_block_rate()) }
        set { _ = pp_contention_set_block_rate(Int64(clamping: newValue)) }
    }
}

/// The mutex profile's sampling fraction — Go's `runtime.SetMutexProfileFraction`.
///
/// The `mutex` profile shows who makes threads wait: each unlock of a contended lock is charged
/// with the time its waiters spent waiting while it was held (summed over waiters: a lock held for
/// 1 s while 5 threads wait reports 5 s), at the stack of the unlocking thread. It needs the
/// `PprofHooks` product linked into the executable (or the `PprofPreload` library preloaded).
public enum MutexProfile {
    /// On average 1 in `fraction` contended unlocks is recorded, and its values are multiplied by
    /// `fraction`. `1` records every one; `0` or less turns the profile off (the default). Takes
    /// effect at once, on every thread.
    public static var fraction: Int {
        get { Int(pp_contention_mutex_fraction()) }
        set { _ = pp_contention_set_mutex_fraction(Int64(clamping: newValue)) }
    }
}

/// The `block` and `mutex` profiles, read from the tables the lock hooks fill.
struct ContentionProfile {
    enum Kind {
        case block, mutex

        var cKind: pp_contention_kind { self == .block ? PP_CONTENTION_BLOCK : PP_CONTENTION_MUTEX }
        /// The profile's name in the registry.
        var name: String { self == .block ? "block" : "mutex" }
        /// The name in Go's debug=1 header (`--- contention:` for block).
        var legacyName: String { self == .block ? "contention" : "mutex" }
    }

    /// One stack and what was recorded for it, already scaled (Go's `BlockProfileRecord`).
    struct Record: Equatable {
        /// Return-address-style entries, leaf first.
        var stack: [UInt]
        var contentions: Int64
        var delayNanoseconds: Int64
        /// The record's key in the recording table (its stack's id): never reused while the process
        /// lives, so delta profiles match records by it.
        var key: UInt64 = 0

        /// Go's order: largest delay first (then by stack, so the order is stable).
        static func precedes(_ left: Record, _ right: Record) -> Bool {
            left.delayNanoseconds != right.delayNanoseconds
                ? left.delayNanoseconds > right.delayNanoseconds : left.stack.lexicographicallyPrecedes(right.stack)
        }
    }

    var kind: Kind
    /// Sorted by delay, largest first, as Go sorts them.
    var records: [Record]
    /// Stacks that could not be stored (their events are under `SyntheticFrame.lostSamples`).
    var droppedStacks: UInt64
    /// Waits the waiter table had no room for (mutex profile only): their waiting time is missing.
    var untrackedWaits: UInt64
    /// The setting in force when the snapshot was taken: rate (block) or fraction (mutex).
    var setting: Int
    /// Whether Synchronization.Mutex is covered (not when the stdlib is linked statically).
    var synchronizationMutexHooked = true

    static var hooksInstalled: Bool { pp_contention_hooks_installed() != 0 }

    /// What the hooks have recorded so far. Throws if the hooks are not linked into the process.
    /// Without `stacks`, records come in table order with empty stacks, for a caller that reads
    /// only the stacks it needs with `stack(forKey:kind:)`.
    static func snapshot(_ kind: Kind, stacks: Bool = true) throws -> ContentionProfile {
        guard hooksInstalled else {
            throw PprofError.unavailable(
                "the \(kind.name) profile needs the lock hooks, which are not installed in this process: "
                    + "link the PprofHooks product into the executable or preload libPprofPreload.so"
            )
        }
        let setting = Int(kind == .block ? pp_contention_block_rate() : pp_contention_mutex_fraction())
        let untracked = kind == .mutex ? pp_waiter_table_untracked(pp_waiter_table_shared()) : 0
        var snapshot = ContentionProfile(
            kind: kind,
            records: [],
            droppedStacks: 0,
            untrackedWaits: untracked,
            setting: setting,
            synchronizationMutexHooked: pp_contention_swift_mutex_hooked() != 0
        )
        if let profile = pp_contention_profile_get(kind.cKind) {
            snapshot.records = stacks ? records(of: profile, kind: kind) : unsortedRecords(of: profile, kind: kind)
            snapshot.droppedStacks =
                pp_stack_table_dropped(profile.pointee.stacks) + pp_bucket_table_dropped(profile.pointee.buckets)
        }
        return snapshot
    }

    /// The records of a profile's tables, sorted as Go sorts them (also used by tests on private
    /// tables).
    static func records(of profile: UnsafeMutablePointer<pp_contention_profile>, kind: Kind) -> [Record] {
        var records = unsortedRecords(of: profile, kind: kind)
        for index in records.indices { records[index].stack = stack(forKey: records[index].key, in: profile) }
        records.sort(by: Record.precedes)
        return records
    }

    /// The records of a profile's tables in table order, with their counters but empty stacks.
    static func unsortedRecords(of profile: UnsafeMutablePointer<pp_contention_profile>, kind: Kind) -> [Record] {
        var records: [Record] = []
        withUnsafeMutablePointer(to: &records) { list in
            pp_bucket_table_visit(
                profile.pointee.buckets,
                { context, key, counters in
                    guard let context, let counters, counters[PP_CONTENTION_COUNTER_COUNT] > 0 else { return }
                    context.assumingMemoryBound(to: [Record].self).pointee.append(
                        Record(
                            stack: [],
                            contentions: counters[PP_CONTENTION_COUNTER_COUNT] >> Int64(PP_CONTENTION_COUNT_SHIFT),
                            delayNanoseconds: counters[PP_CONTENTION_COUNTER_DELAY],
                            key: key
                        )
                    )
                },
                list
            )
        }
        // Go reports a block record's fractional count below one as 1 (mprof.go).
        if kind == .block {
            for index in records.indices where records[index].contentions == 0 { records[index].contentions = 1 }
        }
        return records
    }

    /// The stack of the record with `key` in the process-wide profile of `kind`.
    static func stack(forKey key: UInt64, kind: Kind) -> [UInt] {
        guard let profile = pp_contention_profile_get(kind.cKind) else { return [SyntheticFrame.lostSamples.rawValue] }
        return stack(forKey: key, in: profile)
    }

    /// Events whose stack could not be stored (or, impossibly, cannot be read back) are shown under
    /// a pseudo-frame rather than left out.
    static func stack(forKey key: UInt64, in profile: UnsafeMutablePointer<pp_contention_profile>) -> [UInt] {
        var frames: UnsafePointer<UInt>?
        let count =
            key == PP_CONTENTION_LOST_KEY
            ? 0 : pp_stack_table_get(profile.pointee.stacks, UInt32(truncatingIfNeeded: key), &frames)
        guard let frames, count > 0 else { return [SyntheticFrame.lostSamples.rawValue] }
        return Array(UnsafeBufferPointer(start: frames, count: Int(count)))
    }

    /// Notes for the profile's `comments`: whether it is on, and everything that was lost.
    var comments: [String] {
        var notes: [String] = []
        if setting <= 0 {
            notes.append(
                kind == .block
                    ? "block profiling is off: set BlockProfile.rate to a positive number of nanoseconds"
                    : "mutex profiling is off: set MutexProfile.fraction to a positive number"
            )
        }
        if !synchronizationMutexHooked {
            notes.append(
                "Synchronization.Mutex is not covered: its library is linked statically (--static-swift-stdlib), "
                    + "so its contended path cannot be interposed"
            )
        }
        if droppedStacks > 0 {
            notes.append("\(droppedStacks) stacks could not be stored; their events are under pprof.lostSamples")
        }
        if untrackedWaits > 0 {
            notes.append(
                "\(untrackedWaits) waits found no slot in the waiter table; their waiting time is missing from this profile"
            )
        }
        return notes
    }

    func write(to sink: some ProfileSink, debug: Int) throws {
        if debug > 0 {
            try sink.write(legacyText())
        } else {
            try profileData().write(to: sink)
        }
    }

    /// Go's `printCountCycleProfile`: contentions/count and delay/nanoseconds, period 1. The delta
    /// profilers pass the time the records cover as `durationNanos`.
    func profileData(
        timeNanos: Int64 = currentUnixNanos(),
        durationNanos: Int64 = 0,
        symbolizer: Symbolizer = .shared
    ) -> ProfileData {
        let contentions = ProfileData.ValueType(type: "contentions", unit: "count")
        var builder = ProfileBuilder(
            sampleTypes: [contentions, ProfileData.ValueType(type: "delay", unit: "nanoseconds")],
            periodType: contentions,
            period: 1,
            timeNanos: timeNanos,
            durationNanos: durationNanos,
            comments: comments,
            symbolizer: symbolizer
        )
        for record in records {
            builder.addSample(stack: record.stack, values: [record.contentions, record.delayNanoseconds])
        }
        return builder.build()
    }

    /// Go's debug=1 layout; delays are nanoseconds, so cycles/second is 1e9.
    func legacyText(symbolizer: Symbolizer = .shared) -> String {
        var text = "--- \(kind.legacyName):\ncycles/second=1000000000\n"
        if kind == .mutex { text += "sampling period=\(setting)\n" }
        for record in records {
            text += "\(record.delayNanoseconds) \(record.contentions) \(LegacyText.addressList(record.stack))\n"
            text += LegacyText.stackRecord(record.stack, allFrames: true, symbolizer: symbolizer)
        }
        return TabWriter.format(text)
    }
}
