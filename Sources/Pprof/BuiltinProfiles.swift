/// The predefined profiles and where each one's count and writer live. Each profile kind plugs in
/// here, and nowhere else in the registry.
enum BuiltinProfile: String, CaseIterable, Sendable {
    case goroutine
    case threadcreate
    case heap
    case allocs
    case block
    case mutex

    var count: Int {
        switch self {
        case .goroutine:
            return ThreadProfiles.threadCount
        case .threadcreate:
            return ThreadProfiles.threadCreateCount
        case .heap, .allocs:
            return HeapProfileWriter.recordCount
        case .block:
            return (try? ContentionProfile.snapshot(.block, stacks: false))?.records.count ?? 0
        case .mutex:
            return (try? ContentionProfile.snapshot(.mutex, stacks: false))?.records.count ?? 0
        }
    }

    func write(to sink: some ProfileSink, debug: Int) throws {
        switch self {
        case .goroutine:
            try ThreadProfiles.writeGoroutine(to: sink, debug: debug)
        case .threadcreate:
            try ThreadProfiles.writeThreadCreate(to: sink, debug: debug)
        case .heap:
            try HeapProfileWriter(kind: .heap).write(to: sink, debug: debug)
        case .allocs:
            try HeapProfileWriter(kind: .allocs).write(to: sink, debug: debug)
        case .block:
            try ContentionProfile.snapshot(.block).write(to: sink, debug: debug)
        case .mutex:
            try ContentionProfile.snapshot(.mutex).write(to: sink, debug: debug)
        }
    }
}
