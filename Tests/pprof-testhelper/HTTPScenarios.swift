import Foundation
import Pprof
import PprofServer
import Synchronization

/// `http-serve [--stuck-pool] [--token T] [--contend]`: serves /debug/pprof on a free loopback port
/// in a process that links PprofHooks, prints `port=N`, and serves until its standard input closes.
/// With `--contend`, block and mutex profiling are on and two threads keep contending on a lock
/// (about 200 events a second, waits at `contendedWaitSite`); with `--burn`, a thread keeps
/// burning CPU in `burnCPUForProfiling`; with `--allocate`, 32 MiB stay allocated by
/// `retainHeapForProfiling` and a thread keeps allocating and freeing 1 MiB blocks (about 100 MiB
/// a second) in `churnAllocations`. Closing standard input shuts the server down (answering
/// requests in progress, a CPU profile with what it recorded so far), then the helper exits.
/// With `--viewer`, what the profile viewer's browser tests look at: every allocation sampled, 24
/// MiB in 24 blocks kept by `retainBlocksForSearch` and 8 MiB in 8,192 blocks by
/// `retainBlocksForHome` (so space and object counts rank them oppositely), 64 KiB more a
/// second kept by `growHeapForDiff`, and threads parked with labels: six in `parkForSearch`
/// (`route=/search`), two in `parkForHome` (`route=/home`).
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
        if arguments.contains("--allocate") {
            retained = retainHeapForProfiling()
            Thread { churnAllocations() }.start()
        }
        if arguments.contains("--burn") {
            Thread { burnCPUForProfiling() }.start()
        }
        if arguments.contains("--viewer") { startViewerWorkload() }
        let poolStuck = arguments.contains("--stuck-pool")
        if poolStuck {
            print("pool-stuck=\(blockConcurrencyPool())")
        }
        print("port=\(server.port)")
        fflush(nil)
        // Serve until the test closes our standard input (or goes away).
        _ = FileHandle.standardInput.readDataToEndOfFile()
        // Shutting down takes a task; with the pool blocked there is no thread to run one.
        if poolStuck { exit(0) }
        Task.detached {
            await server.shutdown()
            print("shutdown=done")
            fflush(nil)
            exit(0)
        }
        while true { sleep(60) }
    }

    static func startViewerWorkload() {
        // The first thread dump prepares the unwind tables; with every allocation sampled (and
        // unwound) that would take most of a minute, so it is done before.
        try? Profile.lookup("goroutine")?.write(to: ProfileBuffer(), debug: 0)
        HeapProfile.sampleRate = 1
        retained += retainBlocksForSearch()
        retained += retainBlocksForHome()
        Thread { growHeapForDiff() }.start()
        for index in 0..<8 {
            Thread {
                let route = index < 6 ? "/search" : "/home"
                ProfileLabels.setForCurrentThread(["route": route])
                viewerThreadsParked.wrappingAdd(1, ordering: .relaxed)
                if index < 6 { parkForSearch(index) } else { parkForHome(index) }
            }.start()
        }
        while viewerThreadsParked.load(ordering: .relaxed) < 8 { usleep(1000) }
        usleep(50_000)
    }

    static let viewerThreadsParked = Atomic<Int>(0)

    @inline(never)
    static func retainBlocksForSearch() -> [UnsafeMutableRawPointer] {
        (0..<24).map { index in
            let block = malloc(1 << 20)!
            memset(block, Int32(index & 0x7f), 1 << 20)
            return block
        }
    }

    @inline(never)
    static func retainBlocksForHome() -> [UnsafeMutableRawPointer] {
        (0..<8192).map { index in
            let block = malloc(1024)!
            memset(block, Int32(index & 0x3f), 1024)
            return block
        }
    }

    nonisolated(unsafe) static var grown: [UnsafeMutableRawPointer] = []

    @inline(never)
    static func growHeapForDiff() {
        while true {
            let block = malloc(16 << 10)!
            memset(block, 3, 16 << 10)
            grown.append(block)
            usleep(250_000)
        }
    }

    @inline(never)
    static func parkForSearch(_ index: Int) {
        while true { sleep(UInt32(3600 + index)) }
    }

    @inline(never)
    static func parkForHome(_ index: Int) {
        while true { usleep(UInt32(3_000_000 + index * 1000)) }
    }

    /// Live for the whole run, so the heap profile shows it in use.
    nonisolated(unsafe) static var retained: [UnsafeMutableRawPointer] = []

    @inline(never)
    static func retainHeapForProfiling() -> [UnsafeMutableRawPointer] {
        (0..<32).map { _ in
            let block = malloc(1 << 20)!
            memset(block, 1, 1 << 20)
            return block
        }
    }

    @inline(never)
    static func churnAllocations() {
        while true {
            for _ in 0..<10 {
                let block = malloc(1 << 20)!
                memset(block, 2, 4096)
                free(block)
            }
            usleep(100_000)
        }
    }

    @inline(never)
    static func burnCPUForProfiling() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        while true {
            for _ in 0..<1_000_000 { state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407 }
            if state == 42 { print(state) }
        }
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
