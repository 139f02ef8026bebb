import CPprof
import Glibc

/// Allocation sampling and the `heap` profile — Go's `runtime.MemProfileRate` and
/// `pprof.WriteHeapProfile`.
///
/// The malloc family is sampled only when its hooks are installed: link the `PprofHooks` product
/// into the executable, or run an unmodified binary with `LD_PRELOAD=libPprofPreload.so`. Otherwise
/// writing `heap` or `allocs` throws ``PprofError/unavailable(_:)``.
///
/// Swift has no garbage collector, so unlike Go's (which is as of the last GC) the profile shows
/// memory as of the moment it is written: an object is in use from `malloc` until `free`.
public enum HeapProfile {
    /// The mean number of bytes allocated between samples (Go's `MemProfileRate`); 512 KiB by
    /// default, 1 to sample every allocation, 0 to switch sampling off. Negative values mean 0.
    ///
    /// Set it as early as possible (or with the environment variable `PPROF_HEAP_SAMPLE_RATE`,
    /// read before `main`): the profile scales every sample with the rate in force when it is
    /// written. The calling thread switches at once, other threads after their next sample.
    public static var sampleRate: Int {
        get { Int(pp_heap_sample_rate()) }
        set { pp_heap_set_sample_rate(Int64(newValue)) }
    }

    /// Whether the malloc hooks are installed and in effect in this process.
    public static var isInstalled: Bool { pp_heap_hooks_active(nil) != 0 }

    /// Writes the `heap` profile as gzip-compressed pprof protobuf, like Go's `WriteHeapProfile`.
    public static func write(to sink: some ProfileSink) throws {
        try HeapProfileWriter(kind: .heap).write(to: sink, debug: 0)
    }
}

/// The `heap` and `allocs` profiles: the same data, `allocs` defaulting to `alloc_space`.
struct HeapProfileWriter {
    enum Kind: String {
        case heap
        case allocs
    }

    var kind: Kind

    /// Go's `Profile.Count()` for `heap`: the number of (stack, size) records.
    static var recordCount: Int {
        guard HeapProfile.isInstalled else { return 0 }
        return ProfilerWork.run { HeapSnapshot.take(stacks: false).records.count }
    }

    func write(to sink: some ProfileSink, debug: Int) throws {
        try Self.whileSamplingPaused(for: kind) {
            let snapshot = HeapSnapshot.take()
            if debug > 0 {
                try sink.write(snapshot.legacyText())
            } else {
                try snapshot.profileData(defaultSampleType: kind == .allocs ? "alloc_space" : "").write(to: sink)
            }
        }
    }

    /// Runs `body` as the profiler's work (its allocations unsampled), so that a writer's own
    /// allocations (symbol tables, the encoded profile) do not flood the profile it writes. Throws
    /// the `kind` profile's error, and runs nothing, if the malloc hooks are not in effect.
    static func whileSamplingPaused<Result>(for kind: Kind, _ body: () throws -> Result) throws -> Result {
        var reason: UnsafePointer<CChar>?
        guard pp_heap_hooks_active(&reason) != 0 else {
            throw PprofError.unavailable("\(kind.rawValue) profile: " + (reason.map { String(cString: $0) } ?? ""))
        }
        return try ProfilerWork.run(body)
    }
}

/// The sampled allocations at one moment, read from the C tables.
struct HeapSnapshot {
    struct Record {
        /// Return addresses, leaf first, starting at the allocating function's caller of malloc.
        var stack: [UInt]
        var size: UInt64
        var allocObjects: Int64
        var allocBytes: Int64
        var freeObjects: Int64
        var freeBytes: Int64
        /// The id of the record's stack in the sampler's stack table (0: the stack was dropped).
        /// Never reused while the process lives, so with `size` it identifies the record.
        var stackID: UInt32 = 0
        // Counters are read one by one while other threads update them: never report a negative.
        var inuseObjects: Int64 { max(0, allocObjects - freeObjects) }
        var inuseBytes: Int64 { max(0, allocBytes - freeBytes) }
    }

    var records: [Record]
    var stats: pp_heap_stats
    var rate: Int64 { stats.sample_rate }

    /// The records and statistics now. Without `stacks`, records have empty stacks, for a caller
    /// that reads only the stacks it needs with `stack(forID:)`.
    static func take(stacks: Bool = true) -> HeapSnapshot {
        var stats = pp_heap_stats()
        var buckets: [pp_heap_bucket] = []
        buckets.reserveCapacity(1024)
        withUnsafeMutablePointer(to: &buckets) { pointer in
            pp_heap_visit_buckets(
                { context, bucket in
                    guard let context, let bucket else { return }
                    context.assumingMemoryBound(to: [pp_heap_bucket].self).pointee.append(bucket.pointee)
                },
                pointer
            )
        }
        pp_heap_get_stats(&stats)
        var records: [Record] = []
        records.reserveCapacity(buckets.count)
        for bucket in buckets where bucket.alloc_objects > 0 {
            records.append(
                Record(
                    stack: stacks ? stack(forID: bucket.stack_id) : [],
                    size: bucket.size,
                    allocObjects: bucket.alloc_objects,
                    allocBytes: bucket.alloc_bytes,
                    freeObjects: bucket.free_objects,
                    freeBytes: bucket.free_bytes,
                    stackID: bucket.stack_id
                )
            )
        }
        return HeapSnapshot(records: records, stats: stats)
    }

    /// The frames of a sampled stack; a dropped one (id 0) is shown under a pseudo-frame.
    static func stack(forID id: UInt32) -> [UInt] {
        var frames: UnsafePointer<UInt>?
        let count = id == 0 ? 0 : pp_heap_stack(id, &frames)
        guard count > 0, let frames else { return [SyntheticFrame.lostSamples.rawValue] }
        return Array(UnsafeBufferPointer(start: frames, count: Int(count)))
    }

    /// Go's `scaleHeapSample`: the unbiased estimate of what `count` sampled objects totalling
    /// `bytes` stand for, each of average size s having been sampled with probability 1 − e^(−s/rate).
    static func scale(count: Int64, bytes: Int64, rate: Int64) -> (count: Int64, bytes: Int64) {
        if count == 0 || bytes == 0 { return (0, 0) }
        if rate <= 1 { return (count, bytes) }
        let average = Double(bytes) / Double(count)
        let factor = 1 / (1 - exp(-average / Double(rate)))
        return (Int64(Double(count) * factor), Int64(Double(bytes) * factor))
    }

    /// Leading frames that are allocator machinery rather than the program, as Go hides leading
    /// `runtime.` frames: the Swift runtime's allocation entry points and C++ `operator new`.
    static func isAllocatorFrame(_ name: String) -> Bool {
        var name = Substring(name)
        if name.hasPrefix("swift::") { name = name.dropFirst("swift::".count) }
        return allocatorFramePrefixes.contains { name.hasPrefix($0) }
    }

    private static let allocatorFramePrefixes = [
        "swift_slowAlloc", "swift_allocObject", "_swift_allocObject_", "__swift_allocObject_", "swift_allocBox",
        "swift_allocEmptyBox", "swift_coroFrameAlloc", "swift_task_alloc", "StackAllocator<", "operator new",
    ]

    /// `stack` without its leading allocator frames; the whole stack if nothing else is left.
    static func trimmingAllocatorFrames(_ stack: [UInt], symbolizer: Symbolizer = .shared) -> [UInt] {
        var start = 0
        while start < stack.count {
            let frames = LegacyText.frames(forEntry: stack[start], symbolizer: symbolizer)
            guard !frames.isEmpty, frames.allSatisfy({ isAllocatorFrame($0.name) }) else { break }
            start += 1
        }
        return start == stack.count ? stack : Array(stack[start...])
    }

    /// One sample of a heap profile: its stack (allocator frames not yet trimmed), values as the
    /// profile shows them, and the allocation size for the `bytes` label (0: no label).
    struct Sample {
        var stack: [UInt]
        var allocated: CounterPair
        var inUse: CounterPair
        var size: Int64
    }

    /// A record's allocated and in-use pairs as the profile shows them: Go's unbiased estimates at
    /// this snapshot's rate. Bytes are objects × the record's size, as godeltaprof computes them:
    /// the same as the byte counters, except that counters read while another thread updates them
    /// cannot disagree, so a record's values only grow with its object counts.
    func sample(of record: Record, stack: [UInt]) -> Sample {
        let size = Int64(clamping: record.size)
        let allocated = Self.scale(count: record.allocObjects, bytes: record.allocObjects &* size, rate: rate)
        let inUse = Self.scale(count: record.inuseObjects, bytes: record.inuseObjects &* size, rate: rate)
        return Sample(
            stack: stack,
            allocated: CounterPair(count: allocated.count, amount: allocated.bytes),
            inUse: CounterPair(count: inUse.count, amount: inUse.bytes),
            size: size
        )
    }

    /// The sampled allocations that could not be recorded, as allocated under a pseudo-frame.
    var droppedSample: Sample? {
        guard stats.dropped_objects > 0 else { return nil }
        let lost = Self.scale(count: Int64(stats.dropped_objects), bytes: Int64(stats.dropped_bytes), rate: rate)
        return Sample(
            stack: [SyntheticFrame.lostSamples.rawValue],
            allocated: CounterPair(count: lost.count, amount: lost.bytes),
            inUse: .zero,
            size: 0
        )
    }

    /// The `heap` (or, with `alloc_space` as the default type, `allocs`) profile of every record.
    func profileData(defaultSampleType: String, symbolizer: Symbolizer = .shared) -> ProfileData {
        var samples = records.map { sample(of: $0, stack: $0.stack) }
        if let droppedSample { samples.append(droppedSample) }
        return profileData(samples: samples, defaultSampleType: defaultSampleType, symbolizer: symbolizer)
    }

    /// A heap profile of `samples` with this snapshot's sample types, period and notes; leading
    /// allocator frames are trimmed from every stack. The delta profiler builds its profiles here
    /// too, from the changes of the samples.
    func profileData(
        samples: [Sample],
        defaultSampleType: String,
        timeNanos: Int64 = currentUnixNanos(),
        symbolizer: Symbolizer = .shared
    ) -> ProfileData {
        var comments: [String] = []
        if stats.dropped_objects > 0 {
            comments.append(
                "\(stats.dropped_objects) sampled allocations (\(stats.dropped_bytes) bytes) were not recorded "
                    + "(tables full or allocation inside the sampler); they appear under pprof.lostSamples"
            )
        }
        if stats.untracked_objects > 0 {
            comments.append(
                "\(stats.untracked_objects) sampled allocations could not be tracked until freed "
                    + "(live-pointer table full); they count as allocated but not in use"
            )
        }
        if stats.stacks_dropped > 0 {
            comments.append("\(stats.stacks_dropped) stacks did not fit the stack table; shown as pprof.lostSamples")
        }
        var builder = ProfileBuilder(
            sampleTypes: [
                .init(type: "alloc_objects", unit: "count"), .init(type: "alloc_space", unit: "bytes"),
                .init(type: "inuse_objects", unit: "count"), .init(type: "inuse_space", unit: "bytes"),
            ],
            periodType: .init(type: "space", unit: "bytes"),
            period: rate,
            defaultSampleType: defaultSampleType,
            timeNanos: timeNanos,
            comments: comments,
            symbolizer: symbolizer
        )
        for sample in samples {
            builder.addSample(
                stack: Self.trimmingAllocatorFrames(sample.stack, symbolizer: symbolizer),
                values: [sample.allocated.count, sample.allocated.amount, sample.inUse.count, sample.inUse.amount],
                labels: sample.size != 0 ? [ProfileData.Label(key: "bytes", number: sample.size)] : []
            )
        }
        return builder.build()
    }

    /// Go's debug=1 heap text: unscaled sampled counts, records by in-use bytes (largest first, as
    /// Go before 1.23), then — instead of `runtime.MemStats` — glibc's malloc statistics and RSS.
    func legacyText(symbolizer: Symbolizer = .shared) -> String {
        let sorted = records.sorted {
            if $0.inuseBytes != $1.inuseBytes { return $0.inuseBytes > $1.inuseBytes }
            if $0.allocBytes != $1.allocBytes { return $0.allocBytes > $1.allocBytes }
            return $0.stack.lexicographicallyPrecedes($1.stack)
        }
        var total = (inuseObjects: Int64(0), inuseBytes: Int64(0), allocObjects: Int64(0), allocBytes: Int64(0))
        for record in sorted {
            total.inuseObjects += record.inuseObjects
            total.inuseBytes += record.inuseBytes
            total.allocObjects += record.allocObjects
            total.allocBytes += record.allocBytes
        }
        // Go's convention: equal in-use and allocated totals would read as a two-column profile.
        let headerAllocBytes = total.allocBytes == total.inuseBytes ? total.allocBytes + 1 : total.allocBytes
        var text =
            "heap profile: \(total.inuseObjects): \(total.inuseBytes) [\(total.allocObjects): \(headerAllocBytes)] @ heap/\(2 * rate)\n"
        for record in sorted {
            text +=
                "\(record.inuseObjects): \(record.inuseBytes) [\(record.allocObjects): \(record.allocBytes)] \(LegacyText.addressList(record.stack))\n"
            text += LegacyText.stackRecord(
                record.stack,
                allFrames: false,
                symbolizer: symbolizer,
                isHiddenLeadingFrame: Self.isAllocatorFrame
            )
        }
        return TabWriter.format(text) + "\n" + trailer()
    }

    /// The debug=1 trailer: glibc's `mallinfo2`, the resident set size and the sampler's state.
    private func trailer() -> String {
        var lines: [(String, String)] = []
        var info = pp_malloc_info()
        if pp_heap_malloc_info(&info) != 0 {
            lines += [
                ("Arena", "\(info.arena)"), ("Ordblks", "\(info.ordblks)"), ("Smblks", "\(info.smblks)"),
                ("Hblks", "\(info.hblks)"), ("Hblkhd", "\(info.hblkhd)"), ("Usmblks", "\(info.usmblks)"),
                ("Fsmblks", "\(info.fsmblks)"), ("Uordblks", "\(info.uordblks)"), ("Fordblks", "\(info.fordblks)"),
                ("Keepcost", "\(info.keepcost)"), ("InUse", "\(info.uordblks + info.hblkhd)"),
            ]
        }
        lines.append(("RSS", "\(Self.residentBytes())"))
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        lines.append(("MaxRSS", "\(Int64(usage.ru_maxrss) * 1024)"))
        lines += [
            ("SampleRate", "\(rate)"), ("SampledLiveObjects", "\(stats.live_entries)"),
            ("DroppedSamples", "\(stats.dropped_objects)"), ("UntrackedSamples", "\(stats.untracked_objects)"),
        ]
        return "# malloc statistics (glibc mallinfo2) and RSS\n" + lines.map { "# \($0.0) = \($0.1)\n" }.joined()
    }

    /// Resident set size in bytes, from /proc/self/statm; 0 if unreadable.
    static func residentBytes() -> Int64 {
        guard let text = readTextFile("/proc/self/statm") else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count >= 2, let pages = Int64(fields[1]) else { return 0 }
        return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
    }
}
