import Pprof

extension PprofHandler {
    // MARK: wall

    /// `wall?seconds=N[&rate=Hz][&include_idle=1][&threads=<name part>][&max_threads=K]`: a
    /// wall-clock profile over N seconds (30 when missing or not positive, as for `profile`).
    /// `threads` keeps only threads whose name contains it; `max_threads` caps the threads
    /// sampled per period. A wall profile already running is a 500.
    func wallProfile(_ query: QueryParameters) async -> Response {
        var seconds = QueryParameters.int64(query["seconds"]) ?? 0
        if seconds <= 0 { seconds = Self.defaultCPUProfileSeconds }
        if let tooLong = rejectDuration(seconds) { return tooLong }

        var rate = configuration.cpuProfileRate
        if !query["rate"].isEmpty {
            guard let requested = Int(query["rate"], radix: 10), requested > 0 else {
                return Self.error(400, #"invalid value for "rate" - must be a positive integer"#)
            }
            rate = requested
        }
        var options = WallProfile.Options()
        options.includeIdle = ["1", "true"].contains(query["include_idle"])
        if !query["max_threads"].isEmpty {
            guard let cap = Int(query["max_threads"], radix: 10), cap > 0 else {
                return Self.error(400, #"invalid value for "max_threads" - must be a positive integer"#)
            }
            options.maxThreadsPerPeriod = cap
        }
        let namePart = query["threads"]
        if !namePart.isEmpty { options.threadFilter = { $0.contains(namePart) } }
        if Task.isCancelled { return Self.error(500, "request canceled") }

        let buffer = ProfileBuffer()
        do {
            try WallProfile.start(writingTo: buffer, rate: rate, options: options)
        } catch PprofError.invalidArgument(let why) {
            return Self.error(400, "Could not enable wall profiling: \(why)")
        } catch {
            return Self.error(500, "Could not enable wall profiling: \(error)")
        }
        try? await clock.sleep(for: .seconds(seconds))
        do {
            try WallProfile.stop()
        } catch {
            return Self.error(500, "Could not write wall profile: \(error)")
        }
        return Self.profileDownload(buffer.bytes, filename: "wall")
    }
}
