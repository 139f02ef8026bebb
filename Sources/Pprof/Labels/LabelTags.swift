/// The bridge between label sets and the C side. A *tag* is a nonzero integer standing for one
/// immutable label set; `pp_labels_current()` (C, async-signal-safe) returns the tag in force on
/// the calling thread or task, and samples store tags, never pointers.
///
/// Tags are resolvable while they are in force somewhere or while a profiler holds a pin, so a tag
/// a handler recorded can always be resolved by the reader that drains it.
enum LabelTags {
    /// The labels a tag stands for, sorted by key; empty for tag 0 or an unknown tag.
    static func labels(forTag tag: UInt64) -> [(key: String, value: String)] {
        []
    }

    /// Keeps every tag that is retired from now on resolvable until the matching `unpin()`.
    /// Profilers pin from the moment they may record tags until they have resolved the last one.
    static func pin() {}

    static func unpin() {}
}
