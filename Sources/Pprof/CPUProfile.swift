/// CPU profiling, like Go's `StartCPUProfile`/`StopCPUProfile`. (Being built; this placeholder keeps
/// the fixed API so that other areas compile against it.)
public enum CPUProfile {
    public static func start(writingTo sink: some ProfileSink, rate: Int = 100) throws {
        throw PprofError.unavailable("CPU profiling is not implemented yet")
    }

    public static func stop() throws {}
}
