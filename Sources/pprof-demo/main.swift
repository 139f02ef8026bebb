import Foundation
import Pprof

let arguments = Array(CommandLine.arguments.dropFirst())
do {
    switch arguments.first {
    case "cpu":
        try CPUDemo.run(Array(arguments.dropFirst()))
    default:
        print("pprof-demo")
        print("usage: pprof-demo cpu [path] [seconds]   write a CPU profile of a demo workload")
    }
} catch {
    FileHandle.standardError.write(Data("pprof-demo: \(error)\n".utf8))
    exit(1)
}
