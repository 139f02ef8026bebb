import Foundation
import Glibc
import Pprof

/// Format scenarios that could end the process if the library got them wrong.
enum FormatScenarios {
    /// Writes a profile to a pipe whose reader is gone. Prints how the write ended and whether a
    /// SIGPIPE is left pending or blocked; a missing guard kills the process with SIGPIPE instead.
    static func writeToClosedPipe(_: [String]) throws {
        let profile = Profile(name: "helper.pipe")
        for value in 0..<2000 { profile.add(value) }
        let pipe = Pipe()
        try pipe.fileHandleForReading.close()
        do {
            // Big enough to overflow the pipe buffer on any kernel.
            for _ in 0..<50 { try profile.write(to: pipe.fileHandleForWriting, debug: 1) }
            print("write succeeded")
        } catch {
            let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
            print("write threw POSIX \(underlying?.code ?? -1)")
        }
        var pending = sigset_t()
        sigpending(&pending)
        var mask = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &mask)
        print("pending \(sigismember(&pending, SIGPIPE)) blocked \(sigismember(&mask, SIGPIPE))")
    }
}
