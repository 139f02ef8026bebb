/// The heap profile as deltas — godeltaprof's `HeapProfiler`.
///
/// Each call of ``profile(to:)`` writes, per stack and allocation size, what was allocated since
/// this instance's previous call (`alloc_objects`, `alloc_space`; the first call: everything since
/// the process started) and what is in use now (`inuse_objects`, `inuse_space`, absolute, not a
/// difference), as an ordinary pprof profile with the heap profile's sample types, period
/// (``HeapProfile/sampleRate``), scaling, stacks and symbols, and no default sample type. Stacks
/// that allocated nothing since and have nothing in use are left out. Summing the `alloc_*` values
/// of successive deltas gives the cumulative profile's; the last delta's `inuse_*` values are the
/// cumulative profile's.
///
/// Instances are independent: give each consumer its own, or two consumers split one stream.
/// Calls on one instance are serialized. Like the `heap` profile, it needs the malloc hooks (the
/// `PprofHooks` product, or the preload library); without them it throws
/// ``PprofError/unavailable(_:)``.
public final class DeltaHeapProfiler: Sendable {
    private let session = DeltaSession<HeapSnapshot.DeltaKey>()

    public init() {}

    /// Writes the change since this instance's previous call as gzip-compressed pprof protobuf.
    /// If `sink` throws, the error is rethrown and the next call reports this change again.
    public func profile(to sink: some ProfileSink) throws {
        try HeapProfileWriter.whileSamplingPaused(for: .heap) {
            try session.profile(to: sink) { baseline, _ in
                // Stacks are read only for the records that are reported.
                let snapshot = HeapSnapshot.take(stacks: false)
                let now = currentUnixNanos()
                let (samples, next) = snapshot.change(since: baseline) { HeapSnapshot.stack(forID: $0.stackID) }
                return (snapshot.profileData(samples: samples, defaultSampleType: "", timeNanos: now), next)
            }
        }
    }
}

extension HeapSnapshot {
    /// What identifies a heap record between delta calls.
    enum DeltaKey: Hashable, Sendable {
        /// The record of a stack and an allocation size.
        case record(stackID: UInt32, size: UInt64)
        /// The sampled allocations that could not be recorded at all.
        case dropped
    }

    /// godeltaprof's heap delta: per record, the allocations since `baseline` and what is in use
    /// now, as the profile's samples (all-zero ones left out), and the baseline that includes them.
    ///
    /// The change is taken between *scaled* values: what this snapshot's profile shows minus what
    /// was reported before. So the changes add up to the cumulative profile exactly at any sample
    /// rate (godeltaprof scales each difference, and its truncations accumulate). `stack` gives a
    /// reported record's stack (by default the one it has).
    func change(
        since baseline: DeltaBaseline<DeltaKey>,
        stack: (Record) -> [UInt] = \.stack
    ) -> (samples: [Sample], next: DeltaBaseline<DeltaKey>) {
        var cumulative = records.map { sample(of: $0, stack: []) }
        var keys = records.map { DeltaKey.record(stackID: $0.stackID, size: $0.size) }
        if let droppedSample {
            cumulative.append(droppedSample)
            keys.append(.dropped)
        }
        let (changes, next) = baseline.changes(
            to: zip(keys, cumulative).map { .init(key: $0, cumulative: $1.allocated, absolute: $1.inUse) }
        )
        let samples = changes.filter { !$0.isZero }.map { change in
            var sample = cumulative[change.entryIndex]
            sample.stack = change.entryIndex < records.count ? stack(records[change.entryIndex]) : sample.stack
            sample.allocated = change.change
            sample.inUse = change.absolute
            return sample
        }
        return (samples, next)
    }
}
