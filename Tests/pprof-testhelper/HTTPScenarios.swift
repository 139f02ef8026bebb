import Foundation
import Pprof
import PprofServer
import Synchronization

/// `http-serve [--stuck-pool] [--token T] [--contend]`: serves /debug/pprof on a free loopback port
/// in a process that links PprofHooks, prints `port=N`, and serves until its standard input closes.
/// With `--contend`, block and mutex profiling are on and two threads keep contending on a lock
/// (about 200 events a second, waits at `contendedWaitSite`).
/// With `--stuck-pool`, every thread of Swift's shared concurrency pool is blocked first (and
/// `pool-stuck=true` printed once a fresh task is seen not to run), to show that the server does
/// not need that pool.
enum HTTPScenarios {
    static let profileName = "helper.http.items"

    static func serve(_ arguments: [String]) throws {
        var configuration = PprofServer.Configuration(port: 0)
        if let flag = arguments.firstIndex(of: "--token"), flag + 1 < arguments.count {
            configuration.bearerToken = arguments[flag + 1]
        }
        let server = try PprofServer.start(configuration: configuration)
        let items = Profile(name: profileName)
        for item in 0..<5 { addItem(items, item) }

        if arguments.contains("--contend") {
            BlockProfile.rate = 1
            MutexProfile.fraction = 1
            startContention()
        }
        if arguments.contains("--stuck-pool") {
            print("pool-stuck=\(blockConcurrencyPool())")
        }
        print("port=\(server.port)")
        fflush(nil)
        // Serve until the test closes our standard input (or goes away).
        _ = FileHandle.standardInput.readDataToEndOfFile()
        exit(0)
    }

    @inline(never)
    static func addItem(_ profile: Profile, _ item: Int) {
        profile.add(item)
    }

    static func startContention() {
        let lock = NSLock()
        Thread {
            while true {
                lock.lock()
                usleep(2000)
                lock.unlock()
                usleep(3000)
            }
        }.start()
        Thread {
            while true {
                contendedWaitSite(lock)
                usleep(1000)
            }
        }.start()
    }

    @inline(never)
    static func contendedWaitSite(_ lock: NSLock) {
        lock.lock()
        lock.unlock()
    }

    /// Occupies every thread the shared pool may have, forever; true once a new task is seen not
    /// to start within a second.
    static func blockConcurrencyPool() -> Bool {
        let width = ProcessInfo.processInfo.activeProcessorCount * 4 + 8
        for _ in 0..<width {
            Task.detached {
                while true { sleep(3600) }
            }
        }
        usleep(200_000)
        let ran = Atomic<Bool>(false)
        let probe = Task.detached { ran.store(true, ordering: .releasing) }
        _ = probe
        usleep(1_000_000)
        return !ran.load(ordering: .acquiring)
    }
}
