// An allocation-heavy Swift program that does not link swift-pprof:
// `pprof-plain-workload [rounds]` builds and drops dictionaries of class instances, strings and
// arrays, then prints the seconds its work took (`elapsed <s>`) and a checksum. The LD_PRELOAD
// tests profile it unmodified, and the heap benchmark compares it under heaptrack.
import Foundation

final class Record {
    let id: Int
    let name: String
    var tags: [String]

    init(id: Int, name: String, tags: [String]) {
        self.id = id
        self.name = name
        self.tags = tags
    }
}

@inline(never)
func buildRecords(_ count: Int, round: Int) -> [Int: Record] {
    var records: [Int: Record] = [:]
    for id in 0..<count {
        let name = "record-\(round)-\(id)"
        records[id] = Record(id: id, name: name, tags: [name + ".a", name + ".b"])
    }
    return records
}

@inline(never)
func summarize(_ records: [Int: Record]) -> Int {
    var total = 0
    for (_, record) in records {
        let joined = record.tags.joined(separator: ",")
        total &+= joined.utf8.count &+ record.id
    }
    return total
}

@inline(never)
func keepLargeBuffers(_ count: Int) -> [[UInt8]] {
    (0..<count).map { [UInt8](repeating: UInt8(truncatingIfNeeded: $0), count: 1 << 20) }
}

let rounds = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 20 : 20
let start = DispatchTime.now().uptimeNanoseconds
var checksum = 0
for round in 0..<rounds {
    checksum &+= summarize(buildRecords(20_000, round: round))
}
// Still live at exit, so the heap profile has something in use to show.
let retained = keepLargeBuffers(8)
let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
print("elapsed \(elapsed)")
print("checksum \(checksum) \(retained.count)")
