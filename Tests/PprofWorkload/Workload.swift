// The allocation-heavy Swift workload shared by `pprof-plain-workload` (a program that does not link
// swift-pprof: the LD_PRELOAD tests and the heaptrack comparison run it) and the heap benchmark
// (which times it in process with sampling off and on). It knows nothing of swift-pprof.

public final class Record {
    public let id: Int
    public let name: String
    public var tags: [String]

    public init(id: Int, name: String, tags: [String]) {
        self.id = id
        self.name = name
        self.tags = tags
    }
}

/// Builds a dictionary of `count` class instances, each with a string and an array of strings.
@inline(never)
public func buildRecords(_ count: Int, round: Int) -> [Int: Record] {
    var records: [Int: Record] = [:]
    for id in 0..<count {
        let name = "record-\(round)-\(id)"
        records[id] = Record(id: id, name: name, tags: [name + ".a", name + ".b"])
    }
    return records
}

/// Reads every record back, joining its tags (more strings).
@inline(never)
public func summarize(_ records: [Int: Record]) -> Int {
    var total = 0
    for (_, record) in records {
        let joined = record.tags.joined(separator: ",")
        total &+= joined.utf8.count &+ record.id
    }
    return total
}

/// `rounds` rounds of building and dropping 20,000 records; returns a checksum.
@inline(never)
public func runAllocationWorkload(rounds: Int) -> Int {
    var checksum = 0
    for round in 0..<rounds {
        checksum &+= summarize(buildRecords(20_000, round: round))
    }
    return checksum
}

/// Large buffers kept by the caller (still live when a profile is written at exit).
@inline(never)
public func keepLargeBuffers(_ count: Int) -> [[UInt8]] {
    (0..<count).map { [UInt8](repeating: UInt8(truncatingIfNeeded: $0), count: 1 << 20) }
}
