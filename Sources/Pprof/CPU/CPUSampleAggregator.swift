import CPprof

/// Accumulates drained CPU samples by (stack, label tag, thread) in first-seen order, as Go's
/// profile writer does, and turns them into the profile at the end.
struct CPUSampleAggregator {
    struct Key: Hashable {
        /// Return-address entries, leaf first, with a synthetic frame at the root if the walk was
        /// cut short.
        var stack: [UInt]
        var tag: UInt64
        /// 0 and "" unless thread labels are on.
        var threadID: Int64
        var threadName: String
    }

    private var keys: [Key] = []
    private var indices: [Key: Int] = [:]
    /// Per key: signals recorded and the sampling periods they stand for.
    private var counts: [(samples: Int64, periods: Int64)] = []
    private(set) var totalSamples: Int64 = 0

    mutating func add(_ record: pp_cpu_record, thread: pp_cpu_record_thread?, stack: UnsafeBufferPointer<UInt>) {
        var frames = Array(stack)
        let flags = UInt32(record.unwind_flags)
        if flags & UInt32(PP_STACK_TRUNCATED) != 0 {
            frames.append(SyntheticFrame.truncatedStack.rawValue)
        } else if flags & UInt32(PP_STACK_INCOMPLETE) != 0 {
            frames.append(SyntheticFrame.unwindStopped.rawValue)
        }
        var key = Key(stack: frames, tag: record.tag, threadID: 0, threadName: "")
        if let thread {
            key.threadID = thread.tid
            key.threadName = withUnsafeBytes(of: thread.name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        let index: Int
        if let known = indices[key] {
            index = known
        } else {
            index = keys.count
            keys.append(key)
            indices[key] = index
            counts.append((0, 0))
        }
        counts[index].samples += 1
        counts[index].periods += Int64(clamping: record.weight)
        totalSamples += 1
    }

    /// The profile: values `[samples, periods × period]` per key, the user's labels from each tag,
    /// thread labels if requested, and lost samples as one `pprof.lostSamples` sample.
    func build(
        periodNanos: Int64,
        startUnixNanos: Int64,
        durationNanos: Int64,
        lost: (samples: Int64, periods: Int64),
        threadLabels: Bool,
        functionNames: FunctionNameStyle = Profile.functionNames,
        comments: [String]
    ) -> ProfileData {
        var builder = ProfileBuilder(
            sampleTypes: [
                ProfileData.ValueType(type: "samples", unit: "count"),
                ProfileData.ValueType(type: "cpu", unit: "nanoseconds"),
            ],
            periodType: ProfileData.ValueType(type: "cpu", unit: "nanoseconds"),
            period: periodNanos,
            timeNanos: startUnixNanos,
            durationNanos: durationNanos,
            comments: comments
        )
        builder.functionNames = functionNames
        var tagLabels: [UInt64: [ProfileData.Label]] = [0: []]
        for (index, key) in keys.enumerated() {
            var labels: [ProfileData.Label]
            if let known = tagLabels[key.tag] {
                labels = known
            } else {
                labels = LabelTags.labels(forTag: key.tag).map { ProfileData.Label(key: $0.key, string: $0.value) }
                tagLabels[key.tag] = labels
            }
            if threadLabels {
                labels.append(ProfileData.Label(key: "thread_id", string: String(key.threadID)))
                labels.append(ProfileData.Label(key: "thread_name", string: key.threadName))
            }
            let count = counts[index]
            builder.addSample(
                stack: key.stack,
                values: [count.samples, count.periods &* periodNanos],
                labels: labels
            )
        }
        if lost.samples > 0 {
            builder.addSample(
                stack: [SyntheticFrame.lostSamples.rawValue],
                values: [lost.samples, lost.periods &* periodNanos]
            )
        }
        return builder.build()
    }
}
