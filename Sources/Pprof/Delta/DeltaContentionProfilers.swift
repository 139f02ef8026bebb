/// The block profile as deltas — godeltaprof's `BlockProfiler`.
///
/// Each call of ``profile(to:)`` writes what was recorded since this instance's previous call (the
/// first call: everything since the process started), as an ordinary pprof profile with the block
/// profile's sample types (`contentions/count`, `delay/nanoseconds`), stacks and symbols. Stacks
/// with nothing new are left out, so a continuous-profiling agent sends small, additive profiles:
/// summing successive deltas gives the cumulative `block` profile. The profile's `duration_nanos`
/// is the time since the previous call.
///
/// Instances are independent: give each consumer its own, or two consumers split one stream.
/// Calls on one instance are serialized. Like the `block` profile, it needs the `PprofHooks`
/// product (or the preload library) and ``BlockProfile/rate`` set; without the hooks it throws
/// ``PprofError/unavailable(_:)``.
public final class DeltaBlockProfiler: Sendable {
    private let session = DeltaSession<UInt64>()

    public init() {}

    /// Writes the change since this instance's previous call as gzip-compressed pprof protobuf.
    /// If `sink` throws, the error is rethrown and the next call reports this change again.
    public func profile(to sink: some ProfileSink) throws {
        try ProfilerWork.run { try ContentionProfile.profileDelta(.block, session: session, to: sink) }
    }
}

/// The mutex profile as deltas — godeltaprof's `MutexProfiler`.
///
/// Each call of ``profile(to:)`` writes what was recorded since this instance's previous call (the
/// first call: everything since the process started), as an ordinary pprof profile with the mutex
/// profile's sample types (`contentions/count`, `delay/nanoseconds`, already scaled by
/// ``MutexProfile/fraction``), stacks and symbols. Stacks with nothing new are left out; summing
/// successive deltas gives the cumulative `mutex` profile. The profile's `duration_nanos` is the
/// time since the previous call.
///
/// Instances are independent: give each consumer its own, or two consumers split one stream.
/// Calls on one instance are serialized. Like the `mutex` profile, it needs the `PprofHooks`
/// product (or the preload library) and ``MutexProfile/fraction`` set; without the hooks it throws
/// ``PprofError/unavailable(_:)``.
public final class DeltaMutexProfiler: Sendable {
    private let session = DeltaSession<UInt64>()

    public init() {}

    /// Writes the change since this instance's previous call as gzip-compressed pprof protobuf.
    /// If `sink` throws, the error is rethrown and the next call reports this change again.
    public func profile(to sink: some ProfileSink) throws {
        try ProfilerWork.run { try ContentionProfile.profileDelta(.mutex, session: session, to: sink) }
    }
}

extension ContentionProfile {
    /// godeltaprof's count-cycle delta: per stack, contentions and delay since the previous call.
    static func profileDelta(_ kind: Kind, session: DeltaSession<UInt64>, to sink: some ProfileSink) throws {
        try session.profile(to: sink) { baseline, since in
            // Stacks are read only for the records that changed.
            let snapshot = try ContentionProfile.snapshot(kind, stacks: false)
            let now = currentUnixNanos()
            let (delta, next) = snapshot.change(since: baseline) { ContentionProfile.stack(forKey: $0.key, kind: kind) }
            return (delta.profileData(timeNanos: now, durationNanos: max(0, now - since)), next)
        }
    }

    /// This snapshot's change since `baseline`: the same profile with, per record, what was recorded
    /// since (records with nothing new left out), and the baseline that includes it. `stack` gives
    /// a changed record's stack (by default the one it has).
    func change(
        since baseline: DeltaBaseline<UInt64>,
        stack: (Record) -> [UInt] = \.stack
    ) -> (profile: ContentionProfile, next: DeltaBaseline<UInt64>) {
        let (changes, next) = baseline.changes(
            to: records.map {
                .init(key: $0.key, cumulative: CounterPair(count: $0.contentions, amount: $0.delayNanoseconds))
            }
        )
        var delta = self
        delta.records = changes.filter { !$0.isZero }.map {
            Record(
                stack: stack(records[$0.entryIndex]),
                contentions: $0.change.count,
                delayNanoseconds: $0.change.amount,
                key: $0.key
            )
        }
        delta.records.sort(by: Record.precedes)
        return (delta, next)
    }
}
