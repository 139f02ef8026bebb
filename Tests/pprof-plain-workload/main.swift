// An allocation-heavy Swift program that does not link swift-pprof:
// `pprof-plain-workload [rounds]` builds and drops dictionaries of class instances, strings and
// arrays, then prints the seconds its work took (`elapsed <s>`) and a checksum. The LD_PRELOAD
// tests profile it unmodified, and the heap benchmark compares it under heaptrack.
// `pprof-plain-workload idle` does one round, prints `ready` and waits for its input to close: an
// idle service, whose memory `pprof-bench footprint` reads with and without the library preloaded.
import Foundation
import PprofWorkload

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "idle" {
    FileHandle.standardOutput.write(Data("ready \(runAllocationWorkload(rounds: 1))\n".utf8))
    _ = FileHandle.standardInput.readDataToEndOfFile()
    exit(0)
}
let rounds = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 20 : 20
let start = DispatchTime.now().uptimeNanoseconds
let checksum = runAllocationWorkload(rounds: rounds)
// Still live at exit, so the heap profile has something in use to show.
let retained = keepLargeBuffers(8)
let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
print("elapsed \(elapsed)")
print("checksum \(checksum) \(retained.count)")
