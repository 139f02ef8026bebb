import CPprof

/// An immutable set of profiler labels: string keys with string values, like Go's
/// `pprof.LabelSet`. CPU samples and thread dumps carry the labels in force where they were taken,
/// so a profile can be filtered or grouped by them (`go tool pprof -tagfocus route=/users`).
///
/// Labels are kept sorted by key and iterate in that order (Go's `ForLabels`); keys are unique.
/// Keys and values are compared as UTF-8 bytes, as Go and the pprof format do.
///
/// ```swift
/// let labels: ProfileLabels = ["route": "/users", "tenant": "a"]
/// labels["route"]        // "/users"
/// for (key, value) in labels { ... }   // "route", then "tenant"
/// ```
public struct ProfileLabels: @unchecked Sendable {
    /// `nil` when empty. Immutable once made (see LabelStorage).
    let storage: LabelStorage?

    init(storage: LabelStorage?) {
        self.storage = storage
    }

    /// No labels.
    public init() {
        storage = nil
    }

    /// Labels from key/value pairs, such as a dictionary or an array of pairs. When a key occurs
    /// more than once, the later value wins.
    public init<Pairs: Sequence<(key: String, value: String)>>(_ pairs: Pairs) {
        storage = Self.storage(normalizing: ContiguousArray(pairs.lazy.map { ($0.key, $0.value) }))
    }

    /// Labels from key/value pairs. When a key occurs more than once, the later value wins.
    public init<Pairs: Sequence<(String, String)>>(_ pairs: Pairs) {
        storage =
            pairs.withContiguousStorageIfAvailable { Self.storage(normalizing: $0) }
            ?? Self.storage(normalizing: ContiguousArray(pairs))
    }

    /// Sorted storage for `pairs`, later pairs winning on equal keys. Pairs already in strictly
    /// ascending key order (one pair always is) are copied straight into the storage.
    private static func storage(
        normalizing pairs: some RandomAccessCollection<(String, String)>
    ) -> LabelStorage? {
        guard let first = pairs.first else { return nil }
        var previous = first.0
        var strictlyAscending = true
        for pair in pairs.dropFirst() {
            if compareUTF8(previous, pair.0) >= 0 {
                strictlyAscending = false
                break
            }
            previous = pair.0
        }
        if strictlyAscending {
            return LabelStorage.make(sortedUniquePairs: pairs.lazy.map { LabelPair(key: $0.0, value: $0.1) })
        }
        // Insert each pair in key order; a later pair replaces an earlier one with the same key.
        // Label sets are small, so insertion (binary search, then a shift) beats a general sort.
        var unique: [LabelPair] = []
        unique.reserveCapacity(pairs.count)
        for (key, value) in pairs {
            var low = 0
            var high = unique.count
            while low < high {
                let middle = (low + high) / 2
                if compareUTF8(unique[middle].key, key) < 0 { low = middle + 1 } else { high = middle }
            }
            if low < unique.count && compareUTF8(unique[low].key, key) == 0 {
                unique[low] = LabelPair(key: key, value: value)
            } else {
                unique.insert(LabelPair(key: key, value: value), at: low)
            }
        }
        return LabelStorage.make(sortedUniquePairs: unique)
    }

    /// The value for `key`, or `nil` (Go's `Label`).
    public subscript(key: String) -> String? {
        guard let storage else { return nil }
        var low = 0
        var high = storage.count
        while low < high {
            let middle = (low + high) / 2
            let pair = storage[middle]
            let order = compareUTF8(pair.key, key)
            if order == 0 { return pair.value }
            if order < 0 { low = middle + 1 } else { high = middle }
        }
        return nil
    }

    /// These labels with `other`'s added; where both have a key, `other`'s value wins (Go's
    /// `WithLabels`).
    public func merging(_ other: ProfileLabels) -> ProfileLabels {
        guard let mine = storage else { return other }
        guard let theirs = other.storage else { return self }
        if mine === theirs { return self }
        // Re-setting labels that are already in force keeps the existing set (and its tag).
        guard let merged = LabelStorage.merged(mine, theirs) else { return self }
        return ProfileLabels(storage: merged)
    }
}

extension ProfileLabels: RandomAccessCollection {
    public var startIndex: Int { 0 }
    public var endIndex: Int { storage?.count ?? 0 }

    /// The label at `position`, in key order.
    public subscript(position: Int) -> (key: String, value: String) {
        guard let storage, position >= 0, position < storage.count else {
            preconditionFailure("ProfileLabels index \(position) out of range")
        }
        let pair = storage[position]
        return (pair.key, pair.value)
    }
}

extension ProfileLabels: Hashable {
    public static func == (lhs: ProfileLabels, rhs: ProfileLabels) -> Bool {
        if lhs.storage === rhs.storage { return true }
        guard lhs.count == rhs.count else { return false }
        return zip(lhs, rhs).allSatisfy { a, b in compareUTF8(a.key, b.key) == 0 && compareUTF8(a.value, b.value) == 0 }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for (key, value) in self {
            hasher.combine(key)
            hasher.combine(value)
        }
    }
}

extension ProfileLabels: ExpressibleByDictionaryLiteral {
    /// `["route": "/users", "tenant": "a"]`; for a repeated key the later value wins.
    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }
}

extension ProfileLabels: CustomStringConvertible {
    /// Go's `LabelSet.String()` form: `{"route":"/users", "tenant":"a"}`.
    public var description: String { LegacyText.labelString(Array(self)) }
}

extension ProfileLabels {
    /// The labels in force here: inside `withProfileLabels`, the labels it set (merged with the
    /// outer ones); otherwise, in code that is not part of a Swift task, the thread's labels
    /// (`setForCurrentThread`); otherwise none.
    ///
    /// This is exactly what a CPU sample taken at this point records.
    public static var current: ProfileLabels {
        guard let object = LabelRuntime.objectInForce() else { return ProfileLabels() }
        return ProfileLabels(storage: Unmanaged<LabelStorage>.fromOpaque(object).takeUnretainedValue())
    }

    /// The calling thread's own labels, as set by `setForCurrentThread`, whether or not a
    /// `withProfileLabels` scope or a task overrides them.
    public static var forCurrentThread: ProfileLabels {
        guard let object = pp_labels_thread_get() else { return ProfileLabels() }
        return ProfileLabels(storage: Unmanaged<LabelStorage>.fromOpaque(object).takeUnretainedValue())
    }

    /// Sets the calling thread's own labels, replacing the previous ones (Go's
    /// `SetGoroutineLabels`), for code that manages its own threads.
    ///
    /// They apply to code on this thread that runs outside every Swift task and outside every
    /// `withProfileLabels` scope: a scope in force wins (its labels already include the thread's,
    /// merged when the scope began), and a task only ever carries its own scopes' labels, so labels
    /// set on a thread never leak into tasks that happen to run on it. To label a task, use
    /// `withProfileLabels`. The labels are released when the thread exits.
    public static func setForCurrentThread(_ labels: ProfileLabels) {
        LabelRuntime.ensureInstalled()
        let retained = labels.storage.map { Unmanaged.passRetained($0).toOpaque() }
        if let previous = pp_labels_thread_exchange(retained) {
            Unmanaged<LabelStorage>.fromOpaque(previous).release()
        }
    }
}
