import CPprof
import Synchronization

/// The bridge between label sets and the C side. A *tag* is a nonzero integer standing for one
/// immutable label set; `pp_labels_current()` (C, async-signal-safe) returns the tag in force on
/// the calling thread or task, and samples store tags, never pointers. Tags are never reused.
///
/// A tag a handler returned is resolvable while its label set is alive, and after the set dies
/// while a profiler holds a pin: bracket a profiling session with `pin()`/`unpin()` (pin before
/// the first sample, unpin after resolving the last tag).
///
/// Memory: the handler marks each set it returns as sampled and pushes it on a lock-free stack.
/// Only sampled sets are tracked (`live`, unretained, dropped when the set dies); the labels of
/// sampled sets that die while pinned are kept (`retired`) until the last unpin. Unsampled sets,
/// e.g. per-request labels no handler saw, cost nothing here and take no lock when they die.
enum LabelTags {
    private struct Registry {
        var pins = 0
        /// Sampled sets still alive: tag -> object address. Valid because a sampled set removes
        /// itself here (under the lock) before it is destroyed.
        var live: [UInt64: UnsafeMutableRawPointer] = [:]
        /// Labels of sampled sets that died while pinned.
        var retired: [UInt64: [(key: String, value: String)]] = [:]
    }

    private static let registry = Mutex(Registry())

    /// The labels a tag stands for, sorted by key; empty for tag 0 or an unknown tag.
    static func labels(forTag tag: UInt64) -> [(key: String, value: String)] {
        guard tag != 0 else { return [] }
        return registry.withLock { registry in
            absorbSampled(into: &registry)
            if let object = registry.live[tag] {
                return Unmanaged<LabelStorage>.fromOpaque(object)._withUnsafeGuaranteedRef { $0.pairs }
            }
            return registry.retired[tag] ?? []
        }
    }

    /// Keeps every tag that is retired from now on resolvable until the matching `unpin()`.
    /// Profilers pin from the moment they may record tags until they have resolved the last one.
    static func pin() {
        LabelRuntime.ensureInstalled()
        registry.withLock { $0.pins += 1 }
    }

    static func unpin() {
        registry.withLock { registry in
            registry.pins = max(0, registry.pins - 1)
            if registry.pins == 0 { registry.retired = [:] }
        }
    }

    /// Called by a sampled label set from its `deinit`.
    static func retire(_ storage: LabelStorage) {
        let tag = storage.tag
        registry.withLock { registry in
            absorbSampled(into: &registry)
            registry.live[tag] = nil
            if registry.pins > 0 { registry.retired[tag] = storage.pairs }
        }
    }

    /// What the registry holds now (for tests and diagnostics).
    static var statistics: (pins: Int, live: Int, retired: Int) {
        registry.withLock { registry in
            absorbSampled(into: &registry)
            return (registry.pins, registry.live.count, registry.retired.count)
        }
    }

    /// Moves the sets handlers have sampled since the last call into `live`. Every sampled set
    /// passes through here before it dies (`retire` absorbs first), so no dead node is ever read.
    private static func absorbSampled(into registry: inout Registry) {
        var next = pp_labels_take_sampled()
        while let node = next {
            registry.live[node.pointee.tag] = UnsafeMutableRawPointer(node) - LabelRuntime.nodeOffset
            next = node.pointee.next
        }
    }
}
