import CPprof
import Glibc

/// One label as stored: key and value.
struct LabelPair: Sendable {
    let key: String
    let value: String
}

/// The immutable storage of a non-empty label set in one allocation: a header holding the C node
/// a signal handler reads (`pp_label_node`: the set's tag and its "sampled" mark), then the pairs,
/// sorted by the UTF-8 bytes of their keys, keys unique.
///
/// The handler reaches the node at a fixed offset from the object (`LabelRuntime.nodeOffset`) and
/// writes only the node's `sampled` and `next` fields, through C atomics; Swift touches the node
/// only through pointers, never through `header`.
///
/// `ManagedBuffer` cannot be `Sendable`; the storage is immutable once made, and is passed between
/// threads wrapped in `ProfileLabels` and `InForceLabels`.
final class LabelStorage: ManagedBuffer<LabelStorage.Header, LabelPair> {
    struct Header {
        var node: pp_label_node
        var count: Int
        var mergeCache = pp_label_merge_cache()
    }

    /// A storage holding `pairs`, which must already be sorted by key with unique keys.
    static func make(sortedUniquePairs pairs: some Collection<LabelPair>) -> LabelStorage {
        make(count: pairs.count) { elements in
            var next = elements
            for pair in pairs {
                next.initialize(to: pair)
                next += 1
            }
        }
    }

    /// A storage of `count` pairs, which `initialize` must initialize in key order.
    static func make(count: Int, initializingWith initialize: (UnsafeMutablePointer<LabelPair>) -> Void) -> LabelStorage
    {
        make(capacity: count) { elements in
            initialize(elements)
            return count
        }
    }

    /// A storage with room for `capacity` pairs, of which `initialize` initializes the first ones in
    /// key order and returns how many.
    static func make(
        capacity: Int,
        initializingWith initialize: (UnsafeMutablePointer<LabelPair>) -> Int
    ) -> LabelStorage {
        LabelRuntime.ensureInstalled()
        let storage = unsafeDowncast(
            create(minimumCapacity: capacity) { _ in
                Header(node: pp_label_node(tag: pp_labels_next_tag(), next: nil, sampled: 0, reserved: 0), count: 0)
            },
            to: LabelStorage.self
        )
        storage.withUnsafeMutablePointers { header, elements in header.pointee.count = initialize(elements) }
        return storage
    }

    /// `base`'s pairs with `overriding`'s added, `overriding` winning on equal keys; `nil` if that is
    /// just `base`. A set found in `base`'s merge cache when `base` was merged with the same labels
    /// before (a nested scope entered again), else a new one, kept in the cache if it has room.
    static func merged(_ base: LabelStorage, _ overriding: LabelStorage) -> LabelStorage? {
        retainedMerge(base, overriding)?.takeRetainedValue()
    }

    /// `merged(base, overriding)`, retained once for the caller (no other reference counting on a
    /// cache hit, which entering a nested scope again is).
    static func retainedMerge(_ base: LabelStorage, _ overriding: LabelStorage) -> Unmanaged<LabelStorage>? {
        let cache = base.mergeCachePointer
        for index in 0..<Int32(PP_LABEL_MERGE_CACHE_SLOTS) {
            // Slots are written once and released with `base`, which is alive here.
            guard let object = pp_label_merge_cache_get(cache, index) else { break }
            let candidate = Unmanaged<LabelStorage>.fromOpaque(object)
            if candidate._withUnsafeGuaranteedRef({ $0.wasMerged(from: overriding) }) {
                return candidate.retain()
            }
        }
        guard let merged = merge(base, overriding) else { return nil }
        let forCache = Unmanaged.passRetained(merged)
        if pp_label_merge_cache_publish(cache, forCache.toOpaque()) == 0 { forCache.release() }
        return Unmanaged.passRetained(merged)
    }

    /// Whether this set was made by merging exactly `other`'s labels into the set whose cache
    /// holds it: `other` itself, or the same pairs (compared as bytes).
    private func wasMerged(from other: LabelStorage) -> Bool {
        // Only these two fields: written before the set was published, never again (the slots
        // next to them may be changing).
        let cache = mergeCachePointer
        if cache.pointee.merged_in_tag == other.tag { return true }
        var positions = cache.pointee.merged_in_positions
        guard positions != 0, positions.nonzeroBitCount == other.count else { return false }
        return withUnsafeMutablePointerToElements { mine in
            other.withUnsafeMutablePointerToElements { theirs in
                var index = 0
                while positions != 0 {
                    let pair = mine[positions.trailingZeroBitCount]
                    guard compareUTF8(pair.key, theirs[index].key) == 0,
                        compareUTF8(pair.value, theirs[index].value) == 0
                    else { return false }
                    positions &= positions - 1
                    index += 1
                }
                return true
            }
        }
    }

    /// `base`'s pairs with `overriding`'s added, `overriding` winning on equal keys; `nil` if that is
    /// just `base` (every pair of `overriding` is already in it). One pass, one allocation (sized for
    /// the worst case, which wastes a pair's space per key the two share).
    static func merge(_ base: LabelStorage, _ overriding: LabelStorage) -> LabelStorage? {
        base.withUnsafeMutablePointers { baseHeader, a in
            overriding.withUnsafeMutablePointers { overridingHeader, b in
                let aCount = baseHeader.pointee.count
                let bCount = overridingHeader.pointee.count
                var changed = false
                var fromOverriding: UInt64 = 0
                let merged = make(capacity: aCount + bCount) { out in
                    var i = 0
                    var j = 0
                    var next = out
                    while i < aCount || j < bCount {
                        let order = i == aCount ? 1 : j == bCount ? -1 : compareUTF8(a[i].key, b[j].key)
                        if order > 0 || (order == 0 && compareUTF8(a[i].value, b[j].value) != 0) { changed = true }
                        if order >= 0 && next - out < 64 { fromOverriding |= 1 << UInt64(next - out) }
                        next.initialize(to: order < 0 ? a[i] : b[j])
                        next += 1
                        if order <= 0 { i += 1 }
                        if order >= 0 { j += 1 }
                    }
                    return next - out
                }
                guard changed else { return nil }
                merged.withUnsafeMutablePointerToHeader { header in
                    header.pointee.mergeCache.merged_in_tag = overridingHeader.pointee.node.tag
                    header.pointee.mergeCache.merged_in_positions =
                        fromOverriding.nonzeroBitCount == bCount ? fromOverriding : 0
                }
                return merged
            }
        }
    }

    var count: Int { withUnsafeMutablePointerToHeader { $0.pointee.count } }

    var tag: UInt64 { withUnsafeMutablePointerToHeader { $0.pointee.node.tag } }

    subscript(index: Int) -> LabelPair {
        withUnsafeMutablePointerToElements { $0[index] }
    }

    var pairs: [(key: String, value: String)] {
        withUnsafeMutablePointers { header, elements in
            UnsafeBufferPointer(start: elements, count: header.pointee.count).map { ($0.key, $0.value) }
        }
    }

    var mergeCachePointer: UnsafeMutablePointer<pp_label_merge_cache> {
        withUnsafeMutablePointerToHeader { header in
            UnsafeMutableRawPointer(header).advanced(by: LabelRuntime.mergeCacheOffsetInHeader)
                .assumingMemoryBound(to: pp_label_merge_cache.self)
        }
    }

    var nodePointer: UnsafeMutablePointer<pp_label_node> {
        withUnsafeMutablePointerToHeader { header in
            UnsafeMutableRawPointer(header).advanced(by: LabelRuntime.nodeOffsetInHeader)
                .assumingMemoryBound(to: pp_label_node.self)
        }
    }

    deinit {
        // A goroutine dump may be marking this set sampled from a suspended task's binding.
        pp_labels_wait_for_dumps(Unmanaged.passUnretained(self).toOpaque())
        // A set a handler has seen must stay resolvable by tag (LabelTags); unsampled sets, the
        // common case, leave without taking any lock.
        if pp_label_node_sampled(nodePointer) != 0 {
            LabelTags.retire(self)
        }
        let cache = mergeCachePointer
        for index in 0..<Int32(PP_LABEL_MERGE_CACHE_SLOTS) {
            guard let object = pp_label_merge_cache_get(cache, index) else { break }
            Unmanaged<LabelStorage>.fromOpaque(object).release()
        }
        withUnsafeMutablePointers { header, elements in
            // Element by element: a specialized loop, cheaper than the runtime's generic array destroy.
            for index in 0..<header.pointee.count { (elements + index).deinitialize(count: 1) }
        }
    }
}

/// The handler-side wiring: the task-local the labels live in, and the one-time installation that
/// tells the C side where to find them.
@usableFromInline enum LabelRuntime {
    /// The task-local that `withProfileLabels` binds (through `bind(adding:)`); `nil` outside
    /// every scope. Never bound to `nil`. Binding and the handler pass the value as one word: the
    /// storage's address (checked at install).
    static let inForceLocal = TaskLocal<InForceLabels?>(wrappedValue: nil)

    /// Binds the labels in force merged with `labels` to `inForceLocal` for the current task (or
    /// the thread, outside tasks) until the matching `unbind()`, as `TaskLocal.withValue` would;
    /// `false`, binding nothing, if `labels` is empty (the scope changes nothing).
    @usableFromInline static func bind(adding labels: ProfileLabels) -> Bool {
        // Unmanaged throughout: the compiler would otherwise retain and release each reference
        // several times, which costs more than the rest of the scope.
        guard let added = labels.storage.map(Unmanaged.passUnretained) else { return false }
        var inForce = added
        if let outerObject = objectInForce() {
            // The outer set is in force on this thread, so alive.
            let outer = Unmanaged<LabelStorage>.fromOpaque(outerObject)
            inForce = outer
            if outerObject != added.toOpaque(),
                let merged = outer._withUnsafeGuaranteedRef({ outer in
                    added._withUnsafeGuaranteedRef { LabelStorage.retainedMerge(outer, $0) }
                })
            {
                inForce = merged
            } else {
                _ = inForce.retain()
            }
        } else {
            _ = inForce.retain()
        }
        pp_labels_bind(inForce.toOpaque())
        return true
    }

    /// Ends the scope of the latest `bind(adding:)` that returned `true`.
    @usableFromInline static func unbind() {
        pp_labels_unbind()
    }

    /// The address of the label set in force here (not retained), or `nil`; see `ProfileLabels.current`.
    static func objectInForce() -> UnsafeMutableRawPointer? {
        // One C call doing what the handler does; cheaper than TaskLocal.get() and a task check.
        taskLabelsReadable ? pp_labels_object_in_force() : objectInForceThroughTaskLocal()
    }

    /// The same lookup through the Swift API, for when handlers cannot read task labels.
    static func objectInForceThroughTaskLocal() -> UnsafeMutableRawPointer? {
        if let scope = inForceLocal.get() { return Unmanaged.passUnretained(scope.storage).toOpaque() }
        return pp_labels_task_running() != 0 ? nil : pp_labels_thread_get()
    }

    static let nodeOffsetInHeader = MemoryLayout<LabelStorage.Header>.offset(of: \.node)!
    static let mergeCacheOffsetInHeader = MemoryLayout<LabelStorage.Header>.offset(of: \.mergeCache)!

    /// Offset from a label-set object's address to its `pp_label_node` (the same for every object).
    static let nodeOffset: Int = {
        let probe = LabelStorage.create(minimumCapacity: 0) { _ in
            LabelStorage.Header(node: pp_label_node(), count: 0)
        }
        let object = Unmanaged.passUnretained(probe).toOpaque()
        return probe.withUnsafeMutablePointerToHeader { header in
            UnsafeMutableRawPointer(header) - object + nodeOffsetInHeader
        }
    }()

    /// Whether handlers can read task labels (else only thread labels); installs on first use.
    static let taskLabelsReadable: Bool = {
        // A bound value is one object pointer, as `pp_labels_bind` passes it and handlers read it
        // (a single-reference struct in an Optional; nil is a null pointer).
        precondition(MemoryLayout<InForceLabels?>.size == MemoryLayout<UnsafeRawPointer>.size)
        return pp_labels_install(
            Unmanaged.passUnretained(inForceLocal).toOpaque(),
            unsafeBitCast(InForceLabels?.self as Any.Type, to: UnsafeRawPointer.self),
            nodeOffset
        ) { object in
            Unmanaged<LabelStorage>.fromOpaque(object!).release()
        } != 0
    }()

    /// Makes `pp_labels_current()` able to see every label set created from now on.
    @inline(__always) static func ensureInstalled() {
        _ = taskLabelsReadable
    }
}

/// A label set in force, as the task-local holds it: exactly one object reference.
struct InForceLabels: @unchecked Sendable {
    let storage: LabelStorage
}

/// Three-way comparison of the UTF-8 bytes of two strings (Go's string order).
@inline(__always) func compareUTF8(_ a: String, _ b: String) -> Int {
    let fast = a.utf8.withContiguousStorageIfAvailable { x in
        b.utf8.withContiguousStorageIfAvailable { y -> Int in
            let common = min(x.count, y.count)
            if common > 0 {
                let order = memcmp(x.baseAddress!, y.baseAddress!, common)
                if order != 0 { return Int(order) }
            }
            return x.count - y.count
        }
    }
    if let order = fast ?? nil { return order }
    if a.utf8.elementsEqual(b.utf8) { return 0 }
    return a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : 1
}
