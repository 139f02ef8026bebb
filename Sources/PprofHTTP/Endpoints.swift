import Glibc
import Pprof

extension PprofHandler {
    /// The cumulative profiles `seconds=N` turns into a difference (Go's `profileSupportsDelta`).
    static let profilesSupportingDelta: Set<String> = ["allocs", "block", "goroutine", "heap", "mutex", "threadcreate"]

    /// Go's default CPU profile length, used when `seconds` is absent, not a number or not positive.
    static let defaultCPUProfileSeconds: Int64 = 30

    // MARK: cmdline

    /// The program's arguments joined by NUL bytes, no trailing newline (Go's `os.Args`).
    func commandLine() -> Response {
        Self.text(CommandLine.arguments.joined(separator: "\u{0}"))
    }

    // MARK: profile (CPU)

    /// `profile?seconds=N[&rate=Hz]`: a CPU profile over N seconds. As in Go, a missing, non-numeric
    /// or non-positive N means 30; beyond the configured maximum is a 400; a profile already running
    /// (started by another request or by the program) is a 500 "cpu profiling already in use".
    /// When the request is cancelled (the client went away) the profile stops at once.
    func cpuProfile(_ query: QueryParameters) async -> Response {
        var seconds = QueryParameters.int64(query["seconds"]) ?? 0
        if seconds <= 0 { seconds = Self.defaultCPUProfileSeconds }
        if let tooLong = rejectDuration(seconds) { return tooLong }

        var rate = configuration.cpuProfileRate
        let rateText = query["rate"]
        if !rateText.isEmpty {
            guard let requested = Int(rateText, radix: 10), requested > 0 else {
                return Self.error(400, #"invalid value for "rate" - must be a positive integer"#)
            }
            rate = requested
        }
        if Task.isCancelled { return Self.error(500, "request canceled") }

        let buffer = ProfileBuffer()
        do {
            try CPUProfile.start(writingTo: buffer, rate: rate)
        } catch PprofError.invalidArgument(let why) {
            return Self.error(400, "Could not enable CPU profiling: \(why)")
        } catch {
            return Self.error(500, "Could not enable CPU profiling: \(error)")
        }
        // Like Go, a client that goes away ends the wait; the profile is stopped either way.
        try? await clock.sleep(for: .seconds(seconds))
        do {
            try CPUProfile.stop()
        } catch {
            return Self.error(500, "Could not write CPU profile: \(error)")
        }
        return Self.profileDownload(buffer.bytes, filename: "profile")
    }

    /// A 400 when `seconds` exceeds the configured maximum, else nil.
    func rejectDuration(_ seconds: Int64) -> Response? {
        let limit = configuration.maximumDuration.components.seconds
        guard seconds > limit else { return nil }
        return Self.error(400, "profile duration exceeds server's limit of \(limit) seconds")
    }

    // MARK: symbol

    /// Go's `Symbol`: addresses separated by `+` (the raw query of a GET or the body of a POST, as
    /// `go tool pprof` sends them), each answered with `0x<addr> <function>` when some function
    /// covers it; unknown addresses are left out. The first line tells pprof symbols exist.
    /// `tasks?longest=N`: the N suspended tasks with the largest suspension bounds (TaskDump).
    func longestSuspendedTasks(_ query: QueryParameters) -> Response {
        var limit = 20
        if !query["longest"].isEmpty {
            guard let requested = Int(query["longest"], radix: 10), requested > 0 else {
                return Self.error(400, #"invalid value for "longest" - must be a positive integer"#)
            }
            limit = requested
        }
        let buffer = ProfileBuffer()
        do {
            try TaskDump.writeLongestSuspended(limit, to: buffer)
        } catch {
            return Self.error(500, "Could not list tasks: \(error)")
        }
        return Self.text(buffer.text)
    }

    func symbols(_ input: [UInt8]) -> Response {
        var addresses: [UInt] = []
        for word in input.split(separator: UInt8(ascii: "+"), omittingEmptySubsequences: true) {
            guard let address = QueryParameters.uint64AnyBase(word), address != 0 else { continue }
            addresses.append(UInt(address))
        }
        let names = ProcessSymbols.functionNames(containing: addresses)
        var output = "num_symbols: 1\n"
        for address in addresses {
            guard let name = names[address] else { continue }
            output += "0x\(String(address, radix: 16)) \(name)\n"
        }
        return Self.text(output)
    }

    // MARK: named profiles

    /// `/<name>?debug=N`: a registered profile (predefined or custom). debug=0 is the gzip'd
    /// protobuf as a download, other values text. `gc` is accepted and ignored: Swift frees memory
    /// when the last reference goes, so there is no collector to run first. With `seconds=N`, the
    /// difference of a cumulative profile over N seconds.
    func namedProfile(_ name: String, _ query: QueryParameters) async -> Response {
        guard let profile = Profile.lookup(name) else { return Self.error(404, "Unknown profile") }
        let secondsText = query["seconds"]
        if !secondsText.isEmpty { return await deltaProfile(profile, secondsText, query) }

        // Go takes a non-number as 0; a negative level would label binary output as text.
        let debug = max(0, Int(query["debug"], radix: 10) ?? 0)
        let buffer = ProfileBuffer()
        do {
            try profile.write(to: buffer, debug: debug)
        } catch {
            return Self.error(500, "Could not write profile \(name): \(error)")
        }
        if debug != 0 {
            return Self.text(buffer.text)
        }
        return Self.profileDownload(buffer.bytes, filename: name)
    }

    /// `/<name>?seconds=N`, as Go's `serveDeltaProfile`: take the profile, wait N seconds, take it
    /// again, and serve the second minus the first (samples that did not change drop out), with
    /// `duration_nanos` the time between the two.
    func deltaProfile(_ profile: Profile, _ secondsText: String, _ query: QueryParameters) async -> Response {
        guard let seconds = QueryParameters.int64(secondsText), seconds > 0 else {
            return Self.error(400, #"invalid value for "seconds" - must be a positive integer"#)
        }
        guard Self.profilesSupportingDelta.contains(profile.name) else {
            return Self.error(400, #""seconds" parameter is not supported for this profile type"#)
        }
        if let tooLong = rejectDuration(seconds) { return tooLong }
        if (Int(query["debug"], radix: 10) ?? 0) != 0 {
            return Self.error(400, "seconds and debug params are incompatible")
        }

        switch await snapshots(of: profile, seconds: seconds) {
        case .failure(let error):
            return error.response
        case .success(let pair):
            do {
                // Sets time_nanos to the second snapshot's and duration_nanos to the time between.
                let delta = try pair.after.delta(since: pair.before)
                return Self.profileDownload(try delta.encoded(), filename: profile.name + "-delta")
            } catch {
                return Self.error(500, "failed to compute delta: \(error)")
            }
        }
    }

    /// The profile now and `seconds` later (a delta's or a diff's two ends), at most
    /// `maximumConcurrentDeltaRequests` waiting at once.
    func snapshots(
        of profile: Profile,
        seconds: Int64
    ) async -> Result<(before: ProfileData, after: ProfileData), ErrorResponse> {
        let waiting = deltaRequestsInFlight.wrappingAdd(1, ordering: .relaxed).newValue
        defer { deltaRequestsInFlight.wrappingSubtract(1, ordering: .relaxed) }
        if waiting > configuration.maximumConcurrentDeltaRequests {
            return .failure(ErrorResponse(response: Self.error(503, "too many concurrent delta profile requests")))
        }
        let before: ProfileData
        do {
            before = try Self.collect(profile)
        } catch {
            return .failure(ErrorResponse(response: Self.error(500, "failed to collect profile: \(error)")))
        }
        do {
            try await clock.sleep(for: .seconds(seconds))
        } catch {
            return .failure(ErrorResponse(response: Self.error(500, "request canceled")))
        }
        do {
            return .success((before, try Self.collect(profile)))
        } catch {
            return .failure(ErrorResponse(response: Self.error(500, "failed to collect profile: \(error)")))
        }
    }

    /// The profile as written now and decoded, stamped with the time it was taken.
    static func collect(_ profile: Profile) throws -> ProfileData {
        let buffer = ProfileBuffer()
        try profile.write(to: buffer, debug: 0)
        var data = try ProfileData(decoding: buffer.bytes)
        data.timeNanos = unixNanoseconds()
        return data
    }

    static func unixNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
