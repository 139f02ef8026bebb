import CPprof
import Foundation
import Glibc
import Pprof
import Synchronization

// Allocation-sampling scenarios. This helper links PprofHooks, so its malloc is sampled. Each
// scenario writes its profiles into the directory given as its first argument and prints the ground
// truth as `truth <site> <size> <objects>` lines for the test to compare with.
enum HeapScenarios {
    /// `heap-sites <dir>`: objects of known sizes kept live from three call sites (≈ 800 MiB of
    /// address space, little of it resident), profiled, freed, profiled again.
    static func sites(_ arguments: [String]) throws {
        try heapSitesOuter(directory: arguments[0])
    }

    /// `heap-churn <dir>`: allocates and frees 4 GiB in objects of 48 B … 100 KB from one site.
    static func churn(_ arguments: [String]) throws {
        let bytes = heapSiteChurn(totalBytes: 4 << 30)
        print("truth churn 0 \(bytes)")
        try writeProfile("heap", debug: 0, to: arguments[0] + "/churn.pb.gz")
    }

    /// `heap-exact <dir>`: every allocation sampled (rate 1); known counts from every entry point.
    static func exact(_ arguments: [String]) throws {
        HeapProfile.sampleRate = 1
        var pointers: [UnsafeMutableRawPointer] = []
        let mallocs = heapExactMalloc(count: 1000, size: 100)
        for pointer in mallocs.prefix(300) { free(pointer) }
        print("truth heapExactMalloc 100 1000 700")
        let swiftObjects = heapExactSwiftAllocate(count: 500, size: 3000)
        for pointer in swiftObjects.prefix(100) { pointer.deallocate() }
        print("truth heapExactSwiftAllocate 3000 500 400")
        pointers += heapExactCalloc(count: 250, elements: 10, elementSize: 5000)
        print("truth heapExactCalloc 50000 250 250")
        let grown = heapExactRealloc(heapExactReallocSource(count: 64, size: 200), to: 400)
        print("truth heapExactReallocSource 200 64 0")
        print("truth heapExactRealloc 400 64 64")
        pointers += heapExactAligned()
        print("truth heapExactPosixMemalign 1000 32 32")
        print("truth heapExactAlignedAlloc 640 16 16")
        print("truth heapExactMemalign 384 8 8")
        print("truth heapExactValloc 5000 4 4")
        print("truth heapExactPvalloc 4096 2 2")
        try writeProfile("heap", debug: 0, to: arguments[0] + "/exact.pb.gz")
        try writeProfile("heap", debug: 1, to: arguments[0] + "/exact.txt")
        try writeProfile("allocs", debug: 0, to: arguments[0] + "/exact-allocs.pb.gz")
        for pointer in mallocs.dropFirst(300) + pointers + grown { free(pointer) }
        for pointer in swiftObjects.dropFirst(100) { pointer.deallocate() }
    }

    /// `heap-stress <dir> <seconds> <threads>`: threads allocate and free through every entry point
    /// while the main thread writes profiles; prints the live-pointer table's state at the end.
    static func stress(_ arguments: [String]) throws {
        let seconds = Double(arguments[1])!
        let threads = Int(arguments[2])!
        startWatchdog(seconds: seconds + 120)
        HeapProfile.sampleRate = 2048
        warmUpSymbols()
        let stop = StopFlag()
        let finished = DispatchSemaphore(value: 0)
        for worker in 0..<threads {
            Thread {
                // Below the profile writer: 64 busy threads on two cores would otherwise starve it.
                setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(pp_gettid()), 19)
                heapStressWorker(seed: UInt64(worker + 1), stop: stop)
                finished.signal()
            }.start()
        }
        var writes = 0
        var maximumLive: UInt64 = 0
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let proto = ProfileBuffer()
            try Profile.lookup("heap")!.write(to: proto, debug: 0)
            _ = try ProfileData(decoding: proto.bytes)
            _ = Profile.lookup("allocs")!.count
            writes += 1
            maximumLive = max(maximumLive, heapStats().live_entries)
            usleep(100_000)
        }
        stop.value.store(true, ordering: .relaxed)
        for _ in 0..<threads { finished.wait() }
        let stats = heapStats()
        print(
            "stats writes \(writes) live \(stats.live_entries) maxlive \(maximumLive) inserted \(stats.live_inserted) "
                + "capacity \(stats.live_capacity) untracked \(stats.untracked_objects) dropped \(stats.dropped_objects) "
                + "stacks \(stats.stacks) buckets_dropped \(stats.buckets_dropped)"
        )
        try writeProfile("heap", debug: 0, to: arguments[0] + "/stress.pb.gz")
    }

    /// `heap-lifecycle <dir>`: allocations in thread-exit destructors of short-lived threads, and in
    /// children forked while other threads allocate. Run it with PPROF_HEAP_SAMPLE_RATE=1 so that
    /// everything from before main to the last thread exit is sampled.
    static func lifecycle(_ arguments: [String]) throws {
        let directory = arguments[0]
        startWatchdog(seconds: 120)
        guard HeapProfile.sampleRate == 1 else { throw HelperError("run with PPROF_HEAP_SAMPLE_RATE=1") }
        heapThreadsWithExitDestructors(count: 100)
        print("truth heapThreadExitDestructor 777 100 100")
        warmUpSymbols()
        let stop = StopFlag()
        let finished = DispatchSemaphore(value: 0)
        for worker in 0..<4 {
            Thread {
                heapStressWorker(seed: UInt64(worker + 100), stop: stop)
                finished.signal()
            }.start()
        }
        var children: [pid_t] = []
        for child in 0..<4 {
            let pid = fork()
            if pid == 0 {
                heapForkChild(path: directory + "/child-\(child).pb.gz")
            }
            children.append(pid)
        }
        print("truth heapForkChildSite 123 10 10")
        var failures = 0
        for pid in children {
            var status: Int32 = 0
            var waited: Int32 = 0
            for _ in 0..<1800 {
                waited = waitpid(pid, &status, WNOHANG)
                if waited != 0 { break }
                usleep(50_000)
            }
            if waited == 0 {
                kill(pid, SIGKILL)
                print("child \(pid) hung")
                failures += 1
            } else if status != 0 {
                print("child \(pid) status \(status)")
                failures += 1
            }
        }
        stop.value.store(true, ordering: .relaxed)
        for _ in 0..<4 { finished.wait() }
        try writeProfile("heap", debug: 0, to: directory + "/lifecycle.pb.gz")
        if failures > 0 { throw HelperError("\(failures) forked children failed") }
    }
}

final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}

struct HelperError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func heapStats() -> pp_heap_stats {
    var stats = pp_heap_stats()
    pp_heap_get_stats(&stats)
    return stats
}

/// Writes the registered profile `name` to a new file at `path`.
func writeProfile(_ name: String, debug: Int, to path: String) throws {
    try writeProfile(Profile.lookup(name)!, debug: debug, to: path)
}

/// Writes `profile` to a new file at `path`.
func writeProfile(_ profile: Profile, debug: Int, to path: String) throws {
    let file = try CPUScenarios.createFile(path)
    try profile.write(to: file, debug: debug)
    try file.close()
}

/// Samples the stress workload on this thread for a moment and writes a profile, so that the symbol
/// tables it needs are loaded before 64 busy threads (or forked children) compete for the CPU.
func warmUpSymbols() {
    let stop = StopFlag()
    Thread {
        Thread.sleep(forTimeInterval: 0.2)
        stop.value.store(true, ordering: .relaxed)
    }.start()
    heapStressWorker(seed: 42, stop: stop)
    try? Profile.lookup("heap")!.write(to: ProfileBuffer(), debug: 0)
}

/// Ends the process if the scenario has not finished in time: a deadlock must fail, not hang.
func startWatchdog(seconds: Double) {
    Thread {
        Thread.sleep(forTimeInterval: seconds)
        let message = "watchdog: scenario still running after \(seconds) s (deadlock?)\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        _exit(3)
    }.start()
}

// MARK: - Sites (never inlined: the tests look for these names in the profiles)

@inline(never)
func heapSitesOuter(directory: String) throws {
    try heapSitesMiddle(directory: directory)
}

@inline(never)
func heapSitesMiddle(directory: String) throws {
    let swiftObjects = heapSiteSwiftAllocate(count: 1800, size: 256 << 10)
    let callocs = heapSiteCalloc(count: 200, size: 1 << 20)
    let aligned = heapSiteAligned(count: 40, size: 4 << 20)
    print("truth heapSiteSwiftAllocate \(256 << 10) 1800 1800")
    print("truth heapSiteCalloc \(1 << 20) 200 200")
    print("truth heapSiteAligned \(4 << 20) 40 40")
    try writeProfile("heap", debug: 0, to: directory + "/peak.pb.gz")
    try writeProfile("heap", debug: 1, to: directory + "/peak.txt")
    for pointer in swiftObjects { pointer.deallocate() }
    for pointer in callocs { free(pointer) }
    for pointer in aligned { pointer.deallocate() }
    try writeProfile("heap", debug: 0, to: directory + "/after.pb.gz")
}

@inline(never)
func heapSiteSwiftAllocate(count: Int, size: Int) -> [UnsafeMutableRawPointer] {
    (0..<count).map { _ in UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16) }
}

@inline(never)
func heapSiteCalloc(count: Int, size: Int) -> [UnsafeMutableRawPointer] {
    (0..<count).map { _ in calloc(1, size)! }
}

@inline(never)
func heapSiteAligned(count: Int, size: Int) -> [UnsafeMutableRawPointer] {
    (0..<count).map { _ in UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64) }
}

@inline(never)
func heapSiteChurn(totalBytes: Int) -> Int {
    let sizes = [48, 512, 4096, 30000, 100_000]
    var allocated = 0
    var index = 0
    while allocated < totalBytes {
        let size = sizes[index % sizes.count]
        index += 1
        let pointer = malloc(size)!
        pointer.storeBytes(of: UInt8(truncatingIfNeeded: index), as: UInt8.self)
        free(pointer)
        allocated += size
    }
    return allocated
}

@inline(never)
func heapExactMalloc(count: Int, size: Int) -> [UnsafeMutableRawPointer] {
    var pointers: [UnsafeMutableRawPointer] = []
    pointers.reserveCapacity(count)
    for _ in 0..<count { pointers.append(malloc(size)!) }
    return pointers
}

@inline(never)
func heapExactSwiftAllocate(count: Int, size: Int) -> [UnsafeMutableRawPointer] {
    var pointers: [UnsafeMutableRawPointer] = []
    pointers.reserveCapacity(count)
    for _ in 0..<count { pointers.append(UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)) }
    return pointers
}

@inline(never)
func heapExactCalloc(count: Int, elements: Int, elementSize: Int) -> [UnsafeMutableRawPointer] {
    var pointers: [UnsafeMutableRawPointer] = []
    pointers.reserveCapacity(count)
    for _ in 0..<count { pointers.append(calloc(elements, elementSize)!) }
    return pointers
}

@inline(never)
func heapExactReallocSource(count: Int, size: Int) -> [UnsafeMutableRawPointer] {
    var pointers: [UnsafeMutableRawPointer] = []
    pointers.reserveCapacity(count)
    for _ in 0..<count { pointers.append(malloc(size)!) }
    return pointers
}

@inline(never)
func heapExactRealloc(_ pointers: [UnsafeMutableRawPointer], to size: Int) -> [UnsafeMutableRawPointer] {
    var grown: [UnsafeMutableRawPointer] = []
    grown.reserveCapacity(pointers.count)
    for pointer in pointers { grown.append(realloc(pointer, size)!) }
    return grown
}

@inline(never)
func heapExactAligned() -> [UnsafeMutableRawPointer] {
    var pointers: [UnsafeMutableRawPointer] = []
    pointers.reserveCapacity(60)
    heapExactPosixMemalign(&pointers)
    heapExactAlignedAlloc(&pointers)
    heapExactMemalign(&pointers)
    heapExactValloc(&pointers)
    heapExactPvalloc(&pointers)
    return pointers
}

@inline(never)
func heapExactPosixMemalign(_ pointers: inout [UnsafeMutableRawPointer]) {
    for _ in 0..<32 {
        var pointer: UnsafeMutableRawPointer?
        precondition(posix_memalign(&pointer, 256, 1000) == 0)
        pointers.append(pointer!)
    }
}

@inline(never)
func heapExactAlignedAlloc(_ pointers: inout [UnsafeMutableRawPointer]) {
    for _ in 0..<16 { pointers.append(aligned_alloc(64, 640)!) }
}

// memalign and pvalloc are declared in <malloc.h>, which Swift does not import.
private typealias AlignedAllocator = @convention(c) (Int, Int) -> UnsafeMutableRawPointer?
private typealias Allocator = @convention(c) (Int) -> UnsafeMutableRawPointer?
private let memalignFunction = unsafeBitCast(
    dlsym(UnsafeMutableRawPointer(bitPattern: 0), "memalign")!,
    to: AlignedAllocator.self
)
private let pvallocFunction = unsafeBitCast(
    dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pvalloc")!,
    to: Allocator.self
)

@inline(never)
func heapExactMemalign(_ pointers: inout [UnsafeMutableRawPointer]) {
    for _ in 0..<8 { pointers.append(memalignFunction(128, 384)!) }
}

@inline(never)
func heapExactPvalloc(_ pointers: inout [UnsafeMutableRawPointer]) {
    for _ in 0..<2 { pointers.append(pvallocFunction(100)!) }
}

@inline(never)
func heapExactValloc(_ pointers: inout [UnsafeMutableRawPointer]) {
    for _ in 0..<4 { pointers.append(valloc(5000)!) }
}

/// Allocates and frees through every entry point until `stop`, keeping up to 64 objects live.
@inline(never)
func heapStressWorker(seed: UInt64, stop: StopFlag) {
    var random = seed &* 0x9e37_79b9_7f4a_7c15
    func next() -> UInt64 {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return random
    }
    var slots = [UnsafeMutableRawPointer?](repeating: nil, count: 64)
    var iteration = 0
    while iteration & 255 != 0 || !stop.value.load(ordering: .relaxed) {
        iteration += 1
        // Leave the profile writer some of the two cores 64 threads compete for.
        if iteration & 255 == 0 { usleep(1000) }
        let value = next()
        let slot = Int(value % 64)
        let size = Int((value >> 8) % 256 + 1) * 16
        switch (value >> 20) % 8 {
        case 0, 1, 2:
            free(slots[slot])
            slots[slot] = malloc(size)
        case 3:
            slots[slot] = realloc(slots[slot], size)
        case 4:
            free(slots[slot])
            slots[slot] = calloc(1, size)
        case 5:
            free(slots[slot])
            var pointer: UnsafeMutableRawPointer?
            _ = posix_memalign(&pointer, 64, size)
            slots[slot] = pointer
        case 6:
            // Swift's own allocations: an array and a string.
            let array = [Int](repeating: slot, count: size / 8)
            let string = String(repeating: "x", count: size / 16) + "\(array.count)"
            precondition(!string.isEmpty)
        default:
            free(slots[slot])
            slots[slot] = nil
        }
    }
    for pointer in slots { free(pointer) }
}

private let exitDestructorKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { value in
        heapThreadExitDestructor()
        free(value)
    }
    return key
}()

/// Runs in a pthread key destructor, during thread exit: its allocation stays live.
@inline(never)
func heapThreadExitDestructor() {
    _ = malloc(777)
}

@inline(never)
func heapThreadsWithExitDestructors(count: Int) {
    let key = exitDestructorKey
    for _ in 0..<(count / 10) {
        var threads: [pthread_t] = []
        for _ in 0..<10 {
            var thread = pthread_t()
            let created = pthread_create(
                &thread,
                nil,
                { _ in
                    pthread_setspecific(exitDestructorKey, malloc(55))
                    for size in 1..<50 { free(malloc(size * 24)) }
                    return nil
                },
                nil
            )
            precondition(created == 0)
            threads.append(thread)
        }
        for thread in threads { pthread_join(thread, nil) }
    }
    _ = key
}

/// A forked child: allocates at a known site, writes its own heap profile, exits.
func heapForkChild(path: String) -> Never {
    let pointers = heapForkChildSite()
    do {
        try writeProfile("heap", debug: 0, to: path)
    } catch {
        _exit(2)
    }
    withExtendedLifetime(pointers) {}
    // _exit: the parent's other threads may have held locks that exit handlers would need.
    _exit(0)
}

@inline(never)
func heapForkChildSite() -> [UnsafeMutableRawPointer] {
    var pointers: [UnsafeMutableRawPointer] = []
    pointers.reserveCapacity(10)
    for _ in 0..<10 { pointers.append(malloc(123)!) }
    return pointers
}
