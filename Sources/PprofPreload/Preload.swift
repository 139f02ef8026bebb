// libPprofPreload.so: the allocation hooks and the library, for LD_PRELOAD into an unmodified binary.
// Profiles are written when the process exits (exit() or a return from main), where environment
// variables say:
//
//   PPROF_PROFILE_DIR=<dir>       every profile that has data, as <dir>/<name>.<pid>.pb.gz
//   PPROF_HEAP_PROFILE=<file>     the heap profile (inuse and alloc values, default inuse_space)
//   PPROF_ALLOCS_PROFILE=<file>   the allocs profile (the same data, default alloc_space)
//   PPROF_HEAP_SAMPLE_RATE=<n>    HeapProfile.sampleRate from the start (default 524288)
//   PPROF_BLOCK_PROFILE_RATE=<ns> BlockProfile.rate from the start (default 0: off)
//   PPROF_MUTEX_PROFILE_FRACTION=<n> MutexProfile.fraction from the start (default 0: off)
//
// In a file name, %p stands for the process ID. Errors go to standard error; they never change the
// process's exit status.
import CPprof
import Foundation
import Pprof
import PprofHooks

@_cdecl("pprof_preload_exit")
public func pprofPreloadExit() {
    // The writer's own allocations are not the program's: every profile shows the same moment.
    pp_profiler_work_enter()
    defer { pp_profiler_work_leave() }
    let environment = ProcessInfo.processInfo.environment
    let pid = String(getpid())
    var requests: [(profile: String, path: String)] = []
    if let directory = environment["PPROF_PROFILE_DIR"], !directory.isEmpty {
        for profile in Profile.all where profile.count > 0 {
            requests.append((profile.name, directory + "/" + profile.name + "." + pid + ".pb.gz"))
        }
    }
    for (variable, name) in [("PPROF_HEAP_PROFILE", "heap"), ("PPROF_ALLOCS_PROFILE", "allocs")] {
        if let path = environment[variable], !path.isEmpty {
            requests.append((name, path.replacingOccurrences(of: "%p", with: pid)))
        }
    }
    for request in requests {
        do {
            guard let profile = Profile.lookup(request.profile) else { continue }
            guard FileManager.default.createFile(atPath: request.path, contents: nil),
                let file = FileHandle(forWritingAtPath: request.path)
            else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: request.path]) }
            defer { try? file.close() }
            try profile.write(to: file, debug: 0)
        } catch {
            FileHandle.standardError.write(
                Data("pprof: cannot write \(request.profile) profile to \(request.path): \(error)\n".utf8)
            )
        }
    }
}
