// The soak's service without swift-pprof: the baseline `pprof-bench soak` compares against.
import SoakService

let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 0 : 0
try await SoakService.run(port: port)
