/// Errors the profiler reports. Write errors of a `ProfileSink` are rethrown unchanged.
public enum PprofError: Error, Equatable, CustomStringConvertible {
    /// `CPUProfile.start` while a CPU profile is running (Go: "cpu profiling already in use").
    case cpuProfilingAlreadyInUse
    /// `WallProfile.start` while a wall profile is running.
    case wallProfilingAlreadyInUse
    /// A rate or other setting outside its allowed range.
    case invalidArgument(String)
    /// Bytes that are not a pprof profile, or a profile that breaks the format's rules.
    case malformedProfile(String)
    /// The capability needs something this process lacks (hooks not linked, signal unavailable…).
    case unavailable(String)

    public var description: String {
        switch self {
        case .cpuProfilingAlreadyInUse: return "cpu profiling already in use"
        case .wallProfilingAlreadyInUse: return "wall profiling already in use"
        case .invalidArgument(let why): return "invalid argument: \(why)"
        case .malformedProfile(let why): return "malformed profile: \(why)"
        case .unavailable(let why): return why
        }
    }
}
