import Synchronization

/// Two cumulative counters of one profile record: contentions and delay, or objects and bytes.
struct CounterPair: Hashable, Sendable {
    var count: Int64
    var amount: Int64

    static let zero = CounterPair(count: 0, amount: 0)

    var isZero: Bool { count == 0 && amount == 0 }

    static func + (left: CounterPair, right: CounterPair) -> CounterPair {
        CounterPair(count: left.count &+ right.count, amount: left.amount &+ right.amount)
    }

    static func - (left: CounterPair, right: CounterPair) -> CounterPair {
        CounterPair(count: left.count &- right.count, amount: left.amount &- right.amount)
    }
}

/// What a delta profiler last reported for each key (a stack, or a stack and a size), so that each
/// call reports only what changed since — godeltaprof's `prev` maps.
///
/// It keeps one entry per distinct key ever reported and never removes one, as the recording tables
/// never forget a stack either: its size grows with the number of distinct stacks, not with time or
/// events.
struct DeltaBaseline<Key: Hashable & Sendable>: Sendable {
    /// One record of a cumulative profile: counters to report as a change, and counters to report
    /// as they are (a heap profile's in-use pair).
    struct Entry {
        var key: Key
        var cumulative: CounterPair
        var absolute: CounterPair = .zero
    }

    /// What to report for one key.
    struct Change {
        var key: Key
        /// The first entry with this key (for what else the caller reports with it: its stack…).
        var entryIndex: Int
        var change: CounterPair
        var absolute: CounterPair

        var isZero: Bool { change.isZero && absolute.isZero }
    }

    private var reported: [Key: CounterPair] = [:]

    /// Distinct keys remembered.
    var count: Int { reported.count }

    /// Each key's change since it was last reported, in the order keys first appear in `entries`.
    /// Entries with equal keys are summed first: one key recorded twice is one key (godeltaprof
    /// #103). A key whose counters went down (counters read while being updated, or a heap profile
    /// rescaled by a lowered sample rate) reports no change and keeps its baseline, so a later call
    /// catches up and the changes always add up to the cumulative counters.
    ///
    /// Returns the changes and the baseline to keep once they have been delivered.
    func changes(to entries: [Entry]) -> (changes: [Change], next: DeltaBaseline) {
        var changes: [Change] = []
        changes.reserveCapacity(entries.count)
        var position: [Key: Int] = [:]
        position.reserveCapacity(entries.count)
        var cumulative: [CounterPair] = []
        cumulative.reserveCapacity(entries.count)
        for (index, entry) in entries.enumerated() {
            if let known = position[entry.key] {
                cumulative[known] = cumulative[known] + entry.cumulative
                changes[known].absolute = changes[known].absolute + entry.absolute
            } else {
                position[entry.key] = changes.count
                cumulative.append(entry.cumulative)
                changes.append(Change(key: entry.key, entryIndex: index, change: .zero, absolute: entry.absolute))
            }
        }
        var next = self
        for index in changes.indices {
            let key = changes[index].key
            let change = cumulative[index] - (reported[key] ?? .zero)
            if change.count < 0 || change.amount < 0 || change.isZero { continue }
            changes[index].change = change
            next.reported[key] = cumulative[index]
        }
        return (changes, next)
    }
}

/// A delta profiler's state behind the lock that serializes its calls. A call's baseline is kept
/// only once its profile has been written: after a failed write the next call reports the same
/// change again (and more), so nothing is lost.
final class DeltaSession<Key: Hashable & Sendable>: Sendable {
    private struct State: Sendable {
        var baseline = DeltaBaseline<Key>()
        var previousCallNanos: Int64?
    }

    private let state = Mutex(State())

    /// Distinct keys remembered (for tests and documentation of the memory use).
    var rememberedKeys: Int { state.withLock { $0.baseline.count } }

    /// One call: `delta` gets the baseline and the start of the interval the profile covers (the
    /// previous call, or the process start for the first one) and returns the profile and the
    /// baseline that includes it.
    func profile(
        to sink: some ProfileSink,
        _ delta: (_ baseline: DeltaBaseline<Key>, _ sinceNanos: Int64) throws -> (ProfileData, DeltaBaseline<Key>)
    ) throws {
        try state.withLock { state in
            let since = state.previousCallNanos ?? processStartUnixNanos ?? currentUnixNanos()
            let (profile, next) = try delta(state.baseline, since)
            try profile.write(to: sink)
            state.baseline = next
            state.previousCallNanos = profile.timeNanos
        }
    }
}
