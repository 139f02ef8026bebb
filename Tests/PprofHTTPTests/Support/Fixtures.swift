import Foundation
import Pprof
import PprofServer

/// A custom profile with three values added from a known function, registered once per process.
enum Fixtures {
    static let profileName = "pprofhttp.test.connections"

    static let profile: Profile = {
        let profile = Profile(name: profileName)
        for id in 0..<3 { openTestConnection(profile, id) }
        return profile
    }()

    @inline(never)
    static func openTestConnection(_ profile: Profile, _ id: Int) {
        profile.add(id)
    }

    /// The function names of each sample's stack, leaf first.
    static func stacks(_ data: ProfileData) -> [[String]] {
        data.resolvedSamples().map(\.functionNames)
    }

    /// The resident set size of this process, from /proc/self/status.
    static func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return kilobytes * 1024
        }
        return 0
    }
}

/// Runs `body` against a server on a free loopback port, shut down afterwards.
func withServer(
    _ configuration: PprofServer.Configuration = PprofServer.Configuration(),
    _ body: (PprofServer) async throws -> Void
) async throws {
    var configuration = configuration
    configuration.port = 0
    let server = try await PprofServer.start(configuration: configuration)
    do {
        try await body(server)
    } catch {
        await server.shutdown()
        throw error
    }
    await server.shutdown()
}
