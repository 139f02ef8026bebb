import Foundation
import Pprof

let usage = """
    usage: pprof-demo [--seconds N] [--output DIR]
             run a simulated service for N seconds (default 5), write every profile kind into
             DIR (default ./profiles) and print a summary of them
           pprof-demo serve [--port P] [--host H]
             keep the service running and serve /debug/pprof on H:P (default 127.0.0.1:6060;
             port 0 picks a free one) until interrupted
           pprof-demo cpu [path] [seconds]
             write only a CPU profile of two busy threads
    """

/// Options of the demo's command line.
struct Options {
    var seconds = 5.0
    var output = "profiles"
    var port = 6060
    var host = "127.0.0.1"

    init(_ arguments: ArraySlice<String>) throws {
        var arguments = arguments
        while let option = arguments.popFirst() {
            guard let value = arguments.popFirst() else { throw PprofError.invalidArgument("\(option) needs a value") }
            switch option {
            case "--seconds":
                guard let seconds = Double(value), seconds > 0, seconds <= 3_600 else {
                    throw PprofError.invalidArgument("--seconds must be a number of seconds in (0, 3600]")
                }
                self.seconds = seconds
            case "--output": output = value
            case "--port":
                guard let port = Int(value), (0...65_535).contains(port) else {
                    throw PprofError.invalidArgument("--port must be 0…65535")
                }
                self.port = port
            case "--host": host = value
            default: throw PprofError.invalidArgument("unknown option \(option)")
            }
        }
    }
}

/// Profiling settings for the demo: every kind on, sampling dense enough for a run of seconds.
enum DemoSettings {
    static let cpuRate = 250
    static let heapSampleRate = 64 * 1024
    static let blockRate = 10_000
    static let mutexFraction = 1

    static func apply() {
        HeapProfile.sampleRate = heapSampleRate
        BlockProfile.rate = blockRate
        MutexProfile.fraction = mutexFraction
    }
}

let arguments = CommandLine.arguments.dropFirst()
do {
    switch arguments.first {
    case "cpu":
        try CPUDemo.run(Array(arguments.dropFirst()))
    case "serve":
        try await ServeCommand.run(Options(arguments.dropFirst()))
    case "help", "-h", "--help":
        print(usage)
    default:
        try await RunCommand.run(Options(arguments))
    }
} catch {
    FileHandle.standardError.write(Data("pprof-demo: \(error)\n\n\(usage)\n".utf8))
    exit(1)
}
