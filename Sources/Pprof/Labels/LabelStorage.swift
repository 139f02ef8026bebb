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
    /// just `base` (every pair of `overriding` is already in it). One pass, one allocation (sized for
    /// the worst case, which wastes a pair's space per key the two share).
    static func merge(_ base: LabelStorage, _ overriding: LabelStorage) -> LabelStorage? {
        base.withUnsafeMutablePointers { baseHeader, a in
            overriding.withUnsafeMutablePointers { overridingHeader, b in
                let aCount = baseHeader.pointee.count
                let bCount = overridingHeader.pointee.count
                var changed = false
                let merged = make(capacity: aCount + bCount) { out in
                    var i = 0
                    var j = 0
                    var next = out
                    while i < aCount || j < bCount {
                        let order = i == aCount ? 1 : j == bCount ? -1 : compareUTF8(a[i].key, b[j].key)
                        if order > 0 || (order == 0 && compareUTF8(a[i].value, b[j].value) != 0) { changed = true }
                        next.initialize(to: order < 0 ? a[i] : b[j])
                        next += 1
                        if order <= 0 { i += 1 }
                        if order >= 0 { j += 1 }
                    }
                    return next - out
                }
                return changed ? merged : nil
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

    var nodePointer: UnsafeMutablePointer<pp_label_node> {
        withUnsafeMutablePointerToHeader { header in
            UnsafeMutableRawPointer(header).advanced(by: LabelRuntime.nodeOffsetInHeader)
                .assumingMemoryBound(to: pp_label_node.self)
        }
    }

    deinit {
        // A set a handler has seen must stay resolvable by tag (LabelTags); unsampled sets, the
        // common case, leave without taking any lock.
        if pp_label_node_sampled(nodePointer) != 0 {
            LabelTags.retire(self)
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
    /// The task-local that `withProfileLabels` binds; `nil` outside every scope. Never bound to
    /// `nil`. The handler reads the bound value as one word: the storage's address (checked at
    /// install). Declared without the `@TaskLocal` macro so that inlined callers can reach it.
    @usableFromInline static let inForceLocal = TaskLocal<InForceLabels?>(wrappedValue: nil)

    /// What a new scope binds: the labels in force merged with `labels`; `nil` if `labels` is
    /// empty (the scope changes nothing).
    @usableFromInline static func labelsToBind(adding labels: ProfileLabels) -> InForceLabels? {
        guard let added = labels.storage else { return nil }
        guard let outerObject = objectInForce() else { return InForceLabels(storage: added) }
        // The outer set is in force on this thread, so alive: read it without retaining it.
        let outer = Unmanaged<LabelStorage>.fromOpaque(outerObject)
        let merged = outer._withUnsafeGuaranteedRef { outer in
            outer === added ? nil : LabelStorage.merge(outer, added)
        }
        return InForceLabels(storage: merged ?? outer.takeUnretainedValue())
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
        // The handler reads the bound value as one object pointer; if that ever stopped being the
        // layout, handlers would read only threads' labels rather than misread tasks'.
        let oneWord = MemoryLayout<InForceLabels?>.size == MemoryLayout<UnsafeRawPointer>.size
        let key = oneWord ? UnsafeRawPointer(Unmanaged.passUnretained(inForceLocal).toOpaque()) : nil
        return pp_labels_install(key, nodeOffset) { object in
            Unmanaged<LabelStorage>.fromOpaque(object!).release()
        } != 0
    }()

    /// Makes `pp_labels_current()` able to see every label set created from now on.
    @inline(__always) static func ensureInstalled() {
        _ = taskLabelsReadable
    }
}

/// A label set in force, as the task-local holds it: exactly one object reference.
@usableFromInline struct InForceLabels: @unchecked Sendable {
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
