import CPprof
import Synchronization

/// A named collection of stack traces, like Go's `runtime/pprof.Profile`.
///
/// Custom profiles record, for each value added, the stack of the code that added it — for
/// example open connections and where they were opened. The predefined profiles (`goroutine`,
/// `heap`, `allocs`, `threadcreate`, `block`, `mutex`) are computed by the library; adding to or
/// removing from them traps. Every method is safe to call from any thread or task.
public final class Profile: Sendable, CustomStringConvertible {
    /// The profile's name, e.g. `"myapp.connections"`.
    public let name: String
    let kind: Kind
    /// The values of a custom profile and the stacks that added them.
    private let entries = Mutex<[EntryKey: [UInt]]>([:])

    enum Kind: Sendable {
        case custom
        case builtin(BuiltinProfile)
    }

    /// A value added to a custom profile.
    struct EntryKey: Hashable, @unchecked Sendable {
        // Only `Hashable & Sendable` values are ever wrapped (see `add`).
        let value: AnyHashable
    }

    /// The deepest stack a custom profile records.
    static let maximumStackDepth = 64

    /// Creates and registers a custom profile. Names should be unique per program; prefix them with
    /// your module or package name (`"myapp.openfiles"`).
    ///
    /// Traps if `name` is empty or already in use (including the predefined names), as Go panics.
    public convenience init(name: String) {
        self.init(name: name, kind: .custom)
        ProfileRegistry.register(self)
    }

    init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }

    /// The form of Swift function names in every profile written from now on: `.short`
    /// (`hcpu.hotB(_:_:)`, the default) or `.full` (the whole demangled signature). It applies to
    /// `/debug/pprof/symbol`'s answers and task headers too. A CPU profile can choose its own (`CPUProfile.Options.functionNames`). Either way each function's
    /// `system_name` is its mangled linker name, which `swift demangle` turns into the full form.
    public static var functionNames: FunctionNameStyle {
        get { functionNameStyle.load(ordering: .relaxed) == 0 ? .short : .full }
        set { functionNameStyle.store(newValue == .short ? 0 : 1, ordering: .relaxed) }
    }

    /// The profile with this name, predefined or custom, or `nil`.
    public static func lookup(_ name: String) -> Profile? {
        // The first lookup creates the registry: the profiler's allocations, not the service's.
        pp_profiler_work_enter()
        defer { pp_profiler_work_leave() }
        return ProfileRegistry.lookup(name)
    }

    /// Every profile, predefined and custom, sorted by name.
    public static var all: [Profile] {
        // The profiler's work from the start, a first call's generic metadata included.
        pp_profiler_work_enter()
        defer { pp_profiler_work_leave() }
        return ProfileRegistry.all
    }

    /// Adds `value` with the stack of the caller. `skip` counts further frames to leave out, as for
    /// Go's `runtime.Caller`: with 0 the stack begins in the function that calls `add`; a helper
    /// that adds on behalf of its caller passes 1.
    ///
    /// Traps if `value` is already in the profile or this is a predefined profile.
    @inline(never)
    public func add(_ value: some Hashable & Sendable, skip: Int = 0) {
        guard case .custom = kind else {
            fatalError("pprof: Add called on built-in Profile \(name)")
        }
        precondition(skip >= 0, "pprof: Profile.Add with negative skip \(skip)")
        // Captured directly in this frame (no closure in between), so entry 0 is the return
        // address into `add` and `skip + 1` starts at the caller.
        let buffer = UnsafeMutablePointer<UInt>.allocate(capacity: Profile.maximumStackDepth)
        defer { buffer.deallocate() }
        let count = pp_capture_stack(
            Int32(clamping: skip) &+ (skip < Int(Int32.max) ? 1 : 0),
            buffer,
            Int32(Profile.maximumStackDepth),
            nil
        )
        let stack = Array(UnsafeBufferPointer(start: buffer, count: Int(count)))
        let key = EntryKey(value: AnyHashable(value))
        let inserted = entries.withLock { entries in
            guard entries[key] == nil else { return false }
            entries[key] = stack
            return true
        }
        if !inserted { fatalError("pprof: Profile.Add of duplicate value") }
    }

    /// Removes `value`; does nothing if it is not in the profile. Traps on a predefined profile.
    public func remove(_ value: some Hashable & Sendable) {
        guard case .custom = kind else {
            fatalError("pprof: Remove called on built-in Profile \(name)")
        }
        let key = EntryKey(value: AnyHashable(value))
        _ = entries.withLock { $0.removeValue(forKey: key) }
    }

    /// The number of values in a custom profile; for a predefined one, what Go counts (threads for
    /// `goroutine`, sampled records for `heap`, …).
    public var count: Int {
        switch kind {
        case .custom: return entries.withLock { $0.count }
        case .builtin(let builtin): return builtin.count
        }
    }

    /// Writes the profile: `debug` 0 is gzip-compressed pprof protobuf, 1 the legacy text format
    /// with symbolized comments, 2 (for `goroutine`) a crash-style dump of every thread. Errors of
    /// the sink are rethrown.
    public func write(to sink: some ProfileSink, debug: Int = 0) throws {
        // The profiler's work from the start, a first call's generic metadata included.
        pp_profiler_work_enter()
        defer { pp_profiler_work_leave() }
        try writeProfile(to: sink, debug: debug)
    }

    private func writeProfile(to sink: some ProfileSink, debug: Int) throws {
        switch kind {
        case .custom:
            let stacks = entries.withLock { Array($0.values) }
            let records = stacks.map {
                CountProfile.Record(stack: $0.isEmpty ? [SyntheticFrame.emptyStack.rawValue] : $0)
            }
            try CountProfile(name: name, records: records).write(to: sink, debug: debug)
        case .builtin(let builtin):
            try builtin.write(to: sink, debug: debug)
        }
    }

    public var description: String { "Profile(\(name), count: \(count))" }
}

/// The process-wide table of profiles, created with the predefined ones.
enum ProfileRegistry {
    private static let profiles: Mutex<[String: Profile]> = {
        var table: [String: Profile] = [:]
        for builtin in BuiltinProfile.allCases {
            table[builtin.rawValue] = Profile(name: builtin.rawValue, kind: .builtin(builtin))
        }
        return Mutex(table)
    }()

    static func register(_ profile: Profile) {
        if profile.name.isEmpty { fatalError("pprof: NewProfile with empty name") }
        let added = profiles.withLock { table in
            guard table[profile.name] == nil else { return false }
            table[profile.name] = profile
            return true
        }
        if !added { fatalError("pprof: NewProfile name already in use: \(profile.name)") }
    }

    static func lookup(_ name: String) -> Profile? {
        profiles.withLock { $0[name] }
    }

    static var all: [Profile] {
        profiles.withLock { Array($0.values) }.sorted { Array($0.name.utf8).lexicographicallyPrecedes($1.name.utf8) }
    }
}

/// `Profile.functionNames`: 0 short, 1 full.
private let functionNameStyle = Atomic<UInt8>(0)
