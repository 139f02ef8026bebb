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
        case .heap, .allocs:
            return HeapProfileWriter.recordCount
        case .goroutine, .threadcreate, .block, .mutex:
            return 0
        }
    }

    func write(to sink: some ProfileSink, debug: Int) throws {
        switch self {
        case .heap:
            try HeapProfileWriter(kind: .heap).write(to: sink, debug: debug)
        case .allocs:
            try HeapProfileWriter(kind: .allocs).write(to: sink, debug: debug)
        case .goroutine, .threadcreate, .block, .mutex:
            throw PprofError.unavailable("the \(rawValue) profile is not implemented yet")
        }
    }
}
