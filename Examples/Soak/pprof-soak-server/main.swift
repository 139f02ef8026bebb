// The soak's service with everything on, as production would run it: the malloc/lock hooks
// (PprofHooks is linked), heap sampling at the default rate, block and mutex profiles at Go-like
// rates, profile labels per route, and the debug server on a port of its own, which the soak
// scrapes as Alloy would (CPU in back-to-back 10 s windows, the other kinds every 10 s).
// `pprof-soak-server [port [debug-port]]`.
import Foundation
import Pprof
import PprofServer
import SoakService

func serve() async throws {
    let arguments = CommandLine.arguments.dropFirst().map { Int($0) ?? 0 }
    let port = arguments.first ?? 0
    let debugPort = arguments.dropFirst().first ?? 0

    // Go services commonly set these: block events of ≥ 10 µs, one mutex contention in 5.
    BlockProfile.rate = 10_000
    MutexProfile.fraction = 5

    let debugServer = try await PprofServer.start(configuration: .init(port: debugPort))
    FileHandle.standardOutput.write(Data("debug server on \(debugServer.port)\n".utf8))
    try await SoakService.run(port: port) { route, body in
        try await withProfileLabels(["route": route]) { try await body() }
    }
}

try await serve()
