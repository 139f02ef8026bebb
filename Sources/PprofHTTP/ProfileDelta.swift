import Pprof

/// The difference of two snapshots of a cumulative profile, as net/http/pprof's `?seconds=` computes
/// it: `after` merged with `before` scaled by −1, samples matched by stack and labels.
enum ProfileDelta {
    static func difference(from before: ProfileData, to after: ProfileData) throws -> ProfileData {
        // Pending: the format area's ProfileData scaling and merging (not on main yet).
        throw PprofError.unavailable("profile merging is not available in this build")
    }
}
