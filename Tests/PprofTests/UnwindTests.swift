import CPprof
import Foundation
import Synchronization
import Testing

@_spi(Internals) @testable import Pprof

/// Symbolized names of a captured stack, leaf first (entries are return addresses: look up entry - 1),
/// with inlined frames expanded (glibc's debug file, when installed, shows `msort_with_tmp` inlined
/// into `qsort_r`).
func symbolNames(_ stack: [UInt]) -> [String] {
    stack.flatMap { entry -> [String] in
        if entry <= SyntheticFrame.maximumRawValue { return ["<synthetic \(entry)>"] }
        let frames = Symbolizer.shared.frames(at: entry - 1).map(\.name)
        return frames.isEmpty ? ["0x\(String(entry, radix: 16))"] : frames
    }
}

/// The stack captured by the qsort comparator (a C callback cannot capture context).
nonisolated(unsafe) var comparatorStack: [UInt] = []

@inline(never) func sortWithLibc(_ values: inout [Int32]) {
    comparatorStack = []
    values.withUnsafeMutableBufferPointer { buffer in
        qsort(buffer.baseAddress!, buffer.count, MemoryLayout<Int32>.stride) { a, b in
            if comparatorStack.isEmpty {
                var pcs = [UInt](repeating: 0, count: 64)
                let count = pp_capture_stack(0, &pcs, 64, nil)
                comparatorStack = Array(pcs[0..<Int(count)])
            }
            let x = a!.load(as: Int32.self)
            let y = b!.load(as: Int32.self)
            return x < y ? -1 : (x > y ? 1 : 0)
        }
    }
}

let copyThreadID = Atomic<Int32>(0)
let stopCopying = Atomic<Bool>(false)

/// Spins in glibc's memcpy (no frame pointers, no frame of its own) on big buffers.
@inline(never) func copyBuffersUntilStopped() {
    let size = 16 << 20
    let source = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    let destination = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    defer {
        source.deallocate()
        destination.deallocate()
    }
    memset(source, 1, size)
    unblockAllSignals()
    copyThreadID.store(pp_gettid(), ordering: .releasing)
    while !stopCopying.load(ordering: .relaxed) {
        memcpy(destination, source, size)
    }
}

let asyncThreadID = Atomic<Int32>(0)
let stopBurning = Atomic<Bool>(false)

@inline(never) func asyncInner() async -> Int {
    await Task.yield()
    unblockAllSignals()
    asyncThreadID.store(pp_gettid(), ordering: .releasing)
    var x = 0
    while !stopBurning.load(ordering: .relaxed) { x &+= 1 }
    return x
}

@inline(never) func asyncMiddle() async -> Int {
    let value = await asyncInner()
    return value &+ 1
}

@inline(never) func asyncOuter() async -> Int {
    let value = await asyncMiddle()
    return value &+ 1
}

/// `swift test` starts the test process with most signals blocked, and threads inherit that mask;
/// the threads these tests sample unblock them, as threads of an ordinary process have them.
func unblockAllSignals() {
    var none = sigset_t()
    sigemptyset(&none)
    pthread_sigmask(SIG_SETMASK, &none, nil)
}

/// Waits until `id` is set by the thread it names.
func waitForThread(_ id: borrowing Atomic<Int32>) -> Int32 {
    while id.load(ordering: .acquiring) == 0 { usleep(1000) }
    return id.load(ordering: .acquiring)
}

/// The stack captured by a signal handler (preallocated: nothing may allocate in there).
nonisolated(unsafe) let handlerStack = UnsafeMutablePointer<UInt>.allocate(capacity: 64)
nonisolated(unsafe) var handlerStackDepth: Int32 = 0
nonisolated(unsafe) var handlerStackFlags: UInt32 = 0

@inline(never) func interruptedByOwnSignal() {
    pthread_kill(pthread_self(), SIGUSR1)
}

@Suite(.serialized) struct UnwindTests {
    init() { UnwindTables.prepare() }

    @Test func preparedTablesCoverLibcAndTheSwiftRuntime() throws {
        let images = UnwindTables.images
        let libc = try #require(images.first { $0.path.hasSuffix("/libc.so.6") })
        #expect(libc.rowCount > 1000)
        // Debian's glibc is built without frame pointers; the Swift runtime with them.
        #expect(libc.framePointerShare < 0.5)
        let core = try #require(images.first { $0.path.hasSuffix("/libswiftCore.so") })
        #expect(core.framePointerShare > 0.9)
        let concurrency = try #require(images.first { $0.path.hasSuffix("/libswift_Concurrency.so") })
        #expect(concurrency.funcletCount > 0)
        // Nothing changed: preparing again is cheap and publishes nothing new.
        let clock = ContinuousClock()
        let elapsed = clock.measure { UnwindTables.prepare() }
        #expect(elapsed < .milliseconds(50))
    }

    @Test func prepareLaterPicksUpNewlyLoadedImages() throws {
        let before = Set(UnwindTables.images.map(\.path))
        // Some library of the base system that this process has not loaded yet.
        let candidates = ["libbz2.so.1.0", "libexpat.so.1", "liblzma.so.5", "libcrypt.so.1", "libanl.so.1"]
        guard
            let (name, handle) = candidates.lazy.filter({ name in !before.contains { $0.hasSuffix("/" + name) } })
                .compactMap({ name in dlopen(name, RTLD_NOW).map { (name, $0) } }).first
        else {
            print("no unloaded system library to dlopen; skipping")
            return
        }
        defer { dlclose(handle) }
        UnwindTables.prepare()
        let image = try #require(UnwindTables.images.first { $0.path.hasSuffix("/" + name) })
        #expect(image.rowCount > 0)
    }

    @Test func qsortComparatorShowsTheSwiftCallerOfQsort() throws {
        var values: [Int32] = (0..<512).map { Int32(($0 * 7919) % 512) }
        sortWithLibc(&values)
        let names = symbolNames(comparatorStack)
        // comparator → glibc's merge sort (no frame pointers) → qsort_r → the Swift closure that
        // called it → sortWithLibc → the test.
        let qsortIndex = try #require(names.firstIndex { $0.hasPrefix("qsort") })
        #expect(names[0].contains("closure #1 (Swift.Optional<Swift.UnsafeRawPointer>"))
        #expect(names[qsortIndex + 1].hasPrefix("closure #1 (inout") && names[qsortIndex + 1].contains("sortWithLibc"))
        let callerIndex = try #require(names.firstIndex { $0.hasPrefix("PprofTests.sortWithLibc(") })
        #expect(callerIndex > qsortIndex)
        #expect(names[callerIndex + 1].contains("qsortComparatorShowsTheSwiftCallerOfQsort"))
    }

    @Test func captureInsideASignalHandlerContinuesThroughTheSignalFrame() throws {
        var action = sigaction()
        action.__sigaction_handler.sa_sigaction = { _, _, _ in
            var flags: UInt32 = 0
            handlerStackDepth = pp_capture_stack(0, handlerStack, 64, &flags)
            handlerStackFlags = flags
        }
        action.sa_flags = SA_SIGINFO
        var previous = sigaction()
        sigaction(SIGUSR1, &action, &previous)
        defer { sigaction(SIGUSR1, &previous, nil) }
        let done = DispatchSemaphore(value: 0)
        Thread {
            unblockAllSignals()
            interruptedByOwnSignal()
            done.signal()
        }.start()
        done.wait()
        let stack = Array(UnsafeBufferPointer(start: handlerStack, count: Int(handlerStackDepth)))
        let names = symbolNames(stack)
        let libc = try #require(UnwindTables.images.first { $0.path.hasSuffix("/libc.so.6") })
        // handler → the signal trampoline (glibc's __restore_rt, a signal frame: the interrupted
        // context is read from the ucontext it holds) → the interrupted pc in glibc's pthread_kill
        // → interruptedByOwnSignal → the thread's closure. A frame-pointer walk would skip from
        // the trampoline straight to the closure.
        let interrupted = try #require(names.firstIndex { $0.hasPrefix("PprofTests.interruptedByOwnSignal()") })
        #expect(interrupted >= 3, "\(names)")
        #expect(libc.start..<libc.end ~= stack[interrupted - 1] - 1, "\(names)")
        #expect(libc.start..<libc.end ~= stack[interrupted - 2] - 1, "\(names)")
        #expect(names[interrupted + 1].contains("captureInsideASignalHandler"), "\(names)")
        #expect(handlerStackFlags & UInt32(PP_STACK_INCOMPLETE) == 0, "\(names)")
    }

    /// A thread interrupted on the first instructions of a function (before its frame record
    /// exists) must not lose that function's caller: the leaf is unwound with .eh_frame rows.
    @Test func leafInAPrologueKeepsItsCaller() throws {
        var captured = [UInt](repeating: 0, count: 2)
        _ = pp_capture_stack(0, &captured, 2, nil)
        // A real function entry (the test's own function) and two real return addresses.
        let entry = try #require(Symbolizer.shared.frames(at: captured[0] - 1).first?.entry)
        let callerReturn = captured[0]
        let outerReturn = captured[1]
        let words = UnsafeMutablePointer<UInt>.allocate(capacity: 8)
        defer { words.deallocate() }
        let fakeStack = UInt(bitPattern: words)
        // The outer caller's frame record: {no further frame, its return address}.
        words[4] = 0
        words[5] = outerReturn
        let outerFrame = fakeStack + 4 * 8

        // At the entry: the return address is on top of the stack, fp is still the caller's.
        words[0] = callerReturn
        var regs = pp_regs(pc: entry, sp: fakeStack, fp: outerFrame, lr: 0)
        var pcs = [UInt](repeating: 0, count: 8)
        var flags: UInt32 = 0
        var count = pp_unwind(&regs, UInt32(PP_UNWIND_FROM_SIGNAL), &pcs, 8, &flags)
        #expect(Array(pcs[0..<Int(count)]) == [entry + 1, callerReturn, outerReturn])
        #expect(flags == 0)

        // After `push %rbp` (x86_64): saved fp on top, then the return address.
        let firstByte = UnsafePointer<UInt8>(bitPattern: entry)!.pointee
        #if arch(x86_64)
            #expect(firstByte == 0x55, "Swift functions built by SwiftPM start with push %rbp")
            words[0] = outerFrame
            words[1] = callerReturn
            regs = pp_regs(pc: entry + 1, sp: fakeStack, fp: outerFrame, lr: 0)
            count = pp_unwind(&regs, UInt32(PP_UNWIND_FROM_SIGNAL), &pcs, 8, &flags)
            #expect(Array(pcs[0..<Int(count)]) == [entry + 2, callerReturn, outerReturn])
            #expect(flags == 0)
        #endif
    }

    @Test func memcpySampledBySignalShowsItsSwiftCaller() throws {
        stopCopying.store(false, ordering: .relaxed)
        copyThreadID.store(0, ordering: .relaxed)
        let thread = Thread { copyBuffersUntilStopped() }
        thread.start()
        let tid = waitForThread(copyThreadID)
        defer { stopCopying.store(true, ordering: .relaxed) }
        let libc = try #require(UnwindTables.images.first { $0.path.hasSuffix("/libc.so.6") })
        var inMemcpy = 0
        for _ in 0..<200 where inMemcpy < 20 {
            let sample = try #require(try ThreadDump.capture(threads: [tid]).first)
            #expect(sample.status == .sampled)
            guard let leaf = sample.stack.first, libc.start..<libc.end ~= leaf - 1 else { continue }
            inMemcpy += 1
            let names = symbolNames(sample.stack)
            #expect(names.count > 1 && names[1].hasPrefix("PprofTests.copyBuffersUntilStopped()"), "\(names)")
            #expect(sample.flags & UInt32(PP_STACK_INCOMPLETE) == 0, "\(names)")
            usleep(2000)
        }
        #expect(inMemcpy >= 5)
    }

    @Test func asyncChainSampledBySignalShowsItsAsyncCallers() async throws {
        stopBurning.store(false, ordering: .relaxed)
        asyncThreadID.store(0, ordering: .relaxed)
        let task = Task.detached { await asyncOuter() }
        let tid = waitForThread(asyncThreadID)
        var withCallers = 0
        var samples = 0
        for _ in 0..<20 {
            let sample = try #require(try ThreadDump.capture(threads: [tid]).first)
            guard sample.status == .sampled else { continue }
            samples += 1
            let names = symbolNames(sample.stack)
            guard let inner = names.firstIndex(where: { $0.contains("asyncInner") }) else { continue }
            let middle = names.firstIndex { $0.contains("asyncMiddle") }
            let outer = names.firstIndex { $0.contains("asyncOuter") }
            #expect(middle.map { $0 > inner } == true, "\(names)")
            #expect(outer.map { $0 > (middle ?? 0) } == true, "\(names)")
            #expect(sample.flags & UInt32(PP_STACK_ASYNC) != 0)
            if middle != nil && outer != nil { withCallers += 1 }
            usleep(2000)
        }
        stopBurning.store(true, ordering: .relaxed)
        _ = await task.value
        #expect(samples >= 15)
        #expect(withCallers == samples)
    }
}

/// A walker fed garbage must stop, never crash: random registers, chains into unmapped or
/// inaccessible memory, loops and descending links, with both ways of making reads safe.
@Suite(.serialized) struct UnwindRobustnessTests {
    init() { UnwindTables.prepare() }

    /// Runs `body` on a thread with SIGSEGV/SIGBUS deliverable (see unblockAllSignals).
    func onUnblockedThread(_ body: @escaping @Sendable () -> Void) {
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            unblockAllSignals()
            body()
            done.signal()
        }
        thread.start()
        done.wait()
    }

    @Test(arguments: [true, false]) func garbageRegistersNeverCrash(recovery: Bool) throws {
        pp_fault_recovery_set_allowed(recovery ? 1 : 0)
        defer { pp_fault_recovery_set_allowed(1) }
        let recoveredBefore = pp_fault_recovery_count()
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let inaccessible = try #require(mmap(nil, pageSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(inaccessible, pageSize) }
        let unmapped = try #require(mmap(nil, pageSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        munmap(unmapped, pageSize)
        // Heap words of random content, some pointing at each other.
        let heap = UnsafeMutablePointer<UInt>.allocate(capacity: 4096)
        defer { heap.deallocate() }
        var generator = SystemRandomNumberGenerator()
        for index in 0..<4096 { heap[index] = UInt.random(in: 0...UInt.max, using: &generator) }
        for index in stride(from: 0, to: 4096, by: 7) {
            heap[index] = UInt(bitPattern: heap + Int.random(in: 0..<4096, using: &generator))
        }
        let interesting: [UInt] = [
            0, 1, 8, 4095, 4096, UInt.max, UInt.max - 7, 0xffff_8000_0000_0000, 0x0000_7fff_ffff_fff8,
            UInt(bitPattern: inaccessible), UInt(bitPattern: inaccessible) + 8, UInt(bitPattern: unmapped),
            UInt(bitPattern: heap), UInt(bitPattern: heap) + 3, UInt(bitPattern: heap) + 8 * 4000,
        ]
        let runs = 20_000
        let pcs = UnsafeMutablePointer<UInt>.allocate(capacity: 64)
        defer { pcs.deallocate() }
        nonisolated(unsafe) let shared = (interesting: interesting, heap: heap, pcs: pcs)
        onUnblockedThread {
            var generator = SystemRandomNumberGenerator()
            func value() -> UInt {
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: return shared.interesting.randomElement(using: &generator)!
                case 1: return UInt.random(in: 0...UInt.max, using: &generator)
                default: return UInt(bitPattern: shared.heap + Int.random(in: 0..<4096, using: &generator))
                }
            }
            for run in 0..<runs {
                var regs = pp_regs(pc: value(), sp: value(), fp: value(), lr: value())
                var flags: UInt32 = 0
                let walkFlags = UInt32(run % 2 == 0 ? PP_UNWIND_FROM_SIGNAL : 0) | UInt32(PP_UNWIND_FAULTS_UNBLOCKED)
                let count = pp_unwind(&regs, walkFlags, shared.pcs, 64, &flags)
                precondition(count >= 0 && count <= 64)
            }
        }
        if recovery {
            // Some of those reads faulted and were recovered by the handler.
            #expect(pp_fault_recovery_count() > recoveredBefore)
        } else {
            #expect(pp_fault_recovery_count() == recoveredBefore)
        }
    }

    @Test(arguments: [true, false]) func corruptFrameChainsStopAsIncomplete(recovery: Bool) throws {
        pp_fault_recovery_set_allowed(recovery ? 1 : 0)
        defer { pp_fault_recovery_set_allowed(1) }
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let inaccessible = try #require(mmap(nil, pageSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(inaccessible, pageSize) }
        // A fake stack of frame records {next fp, return address}, 64 bytes apart. The return
        // address is a real one (this test's), so only the links are wrong.
        let words = 1024
        let stack = UnsafeMutablePointer<UInt>.allocate(capacity: words)
        defer { stack.deallocate() }
        var realPCs = [UInt](repeating: 0, count: 4)
        _ = pp_capture_stack(0, &realPCs, 4, nil)
        let returnAddress = realPCs[0]
        let base = UInt(bitPattern: stack)
        func buildChain(records: Int) {
            for record in 0..<records {
                stack[record * 8] = base + UInt((record + 1) * 64)
                stack[record * 8 + 1] = returnAddress
            }
            stack[records * 8] = 0
            stack[records * 8 + 1] = 0
        }
        struct Corruption {
            var name: String
            var apply: (UnsafeMutablePointer<UInt>, UInt) -> Void
        }
        let inaccessibleAddress = UInt(bitPattern: inaccessible)
        let corruptions: [Corruption] = [
            Corruption(name: "into an inaccessible page") { stack, _ in stack[5 * 8] = inaccessibleAddress },
            Corruption(name: "loop to itself") { stack, base in stack[5 * 8] = base + 5 * 64 },
            Corruption(name: "descending") { stack, base in stack[5 * 8] = base + 2 * 64 },
            Corruption(name: "misaligned") { stack, base in stack[5 * 8] = base + 6 * 64 + 3 },
            Corruption(name: "huge stride") { stack, base in stack[5 * 8] = base + (64 << 20) },
            Corruption(name: "return address not code") { stack, base in stack[5 * 8 + 1] = base },
            Corruption(name: "kernel address") { stack, _ in stack[5 * 8] = 0xffff_ffff_8000_0000 },
        ]
        nonisolated(unsafe) let shared = (stack: stack, base: base)
        for corruption in corruptions {
            buildChain(records: 10)
            corruption.apply(stack, base)
            nonisolated(unsafe) var result: (count: Int32, flags: UInt32) = (0, 0)
            onUnblockedThread {
                var regs = pp_regs(pc: 0, sp: 0, fp: shared.base, lr: 0)
                var pcs = [UInt](repeating: 0, count: 64)
                var flags: UInt32 = 0
                let count = pp_unwind(&regs, UInt32(PP_UNWIND_FAULTS_UNBLOCKED), &pcs, 64, &flags)
                result = (count, flags)
            }
            #expect(result.count >= 5 && result.count <= 7, "\(corruption.name): \(result.count) frames")
            #expect(result.flags & UInt32(PP_STACK_INCOMPLETE) != 0, "\(corruption.name)")
        }
        // The intact chain walks to its end, complete.
        buildChain(records: 10)
        var regs = pp_regs(pc: 0, sp: 0, fp: base, lr: 0)
        var pcs = [UInt](repeating: 0, count: 64)
        var flags: UInt32 = 0
        let count = pp_unwind(&regs, 0, &pcs, 64, &flags)
        #expect(count == 10)
        #expect(flags == 0)
        // And a limit below its depth truncates it.
        let truncated = pp_unwind(&regs, 0, &pcs, 4, &flags)
        #expect(truncated == 4)
        #expect(flags == UInt32(PP_STACK_TRUNCATED))
    }
}

/// Real crashes still reach the handler that owned SIGSEGV before us: the Swift runtime's
/// backtracer, or the default action.
@Suite struct FaultRecoveryChainingTests {
    @Test func aRealCrashReachesTheSwiftBacktracer() throws {
        let result = try ChildProcess.run(
            "crash-after-prepare",
            environment: ["SWIFT_BACKTRACE": "enable=yes,symbolicate=off,interactive=no,color=no"]
        )
        #expect(result.stderr.contains("prepared"))
        #expect(result.crashed)
        #expect(result.stderr.contains("Program crashed"), "\(result.stderr)")
    }

    @Test func aRealCrashTakesTheDefaultActionWithoutABacktracer() throws {
        let result = try ChildProcess.run("crash-after-prepare", environment: ["SWIFT_BACKTRACE": "enable=no"])
        #expect(result.stderr.contains("prepared"))
        #expect(result.crashed)
        #expect(result.status == SIGSEGV)
    }
}
