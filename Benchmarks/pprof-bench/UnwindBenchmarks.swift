import CPprof
import Foundation
@_spi(Internals) import Pprof
import PprofBenchSupport

/// `unwind`: what one stack walk costs, and how that compares with the signal it runs in.
///
/// A thread recurses 40 frames deep, in Swift code with frame pointers or in code without them
/// (every frame then needs .eh_frame rows), then walks 32 frames: directly in a loop, and from a
/// signal handler after signalling itself. Reads are made safe by fault recovery or by page
/// probes. Times are thread CPU time (user + system), which a busy machine does not inflate with
/// preemption; signal configurations are interleaved round by round and medians printed.
enum UnwindBenchmarks {
    static let depth = 40
    static let frames: Int32 = 32
    static let signalsPerRound: Int32 = 20_000
    static let walksPerRound: Int32 = 200_000
    static let rounds = 7

    struct Configuration {
        var name: String
        var walk: Bool
        var framePointers: Bool
        var recovery: Bool
        var signalCosts: [Double] = []
        var directWalks: [Double] = []
        var framesPerWalk = 0.0
        var flags: UInt32 = 0
    }

    static func run() throws {
        let clock = ContinuousClock()
        let prepareFirst = clock.measure { UnwindTables.prepare() }
        let prepareAgain = clock.measure { UnwindTables.prepare() }
        let images = UnwindTables.images
        let rows = images.map(\.rowCount).reduce(0, +)
        let bytes = images.map(\.tableBytes).reduce(0, +)
        print(
            "prepare(): first \(prepareFirst), unchanged \(prepareAgain); \(images.count) images, \(rows) rows,"
                + " \(bytes / 1024) KiB of tables"
        )
        guard pp_bench_install_handlers() == 0 else { throw PprofError.unavailable("no free real-time signals") }
        unblockSignals()

        var configurations = [
            Configuration(name: "empty handler", walk: false, framePointers: true, recovery: true),
            Configuration(name: "frame pointers, fault recovery", walk: true, framePointers: true, recovery: true),
            Configuration(name: "frame pointers, page probes", walk: true, framePointers: true, recovery: false),
            Configuration(name: ".eh_frame rows, fault recovery", walk: true, framePointers: false, recovery: true),
            Configuration(name: ".eh_frame rows, page probes", walk: true, framePointers: false, recovery: false),
        ]
        for _ in 0..<rounds {
            for index in configurations.indices {
                let configuration = configurations[index]
                pp_fault_recovery_set_allowed(configuration.recovery ? 1 : 0)
                var signalNanoseconds: Int64 = 0
                var walkNanoseconds: Int64 = 0
                var depth: Int32 = 0
                var flags: UInt32 = 0
                _ = pp_bench_take_walk_totals()
                atDepth(framePointers: configuration.framePointers) {
                    signalNanoseconds = pp_bench_signal_self(configuration.walk ? 1 : 0, signalsPerRound, frames)
                    if configuration.walk {
                        walkNanoseconds = pp_bench_walk_here(walksPerRound, frames, &depth, &flags)
                    }
                }
                let totals = pp_bench_take_walk_totals()
                configurations[index].signalCosts.append(Double(signalNanoseconds) / Double(signalsPerRound))
                if configuration.walk {
                    configurations[index].directWalks.append(Double(walkNanoseconds) / Double(walksPerRound))
                    configurations[index].framesPerWalk = Double(totals.frames) / Double(max(totals.walks, 1))
                    configurations[index].flags |= totals.last_flags | flags
                }
            }
        }
        pp_fault_recovery_set_allowed(1)
        let empty = median(configurations[0].signalCosts)
        print("signal round trip with an empty handler: \(format(empty)) ns")
        print(
            "32-frame walk                    | in handler (minus empty) | direct loop | ns/frame | handler walk / empty round trip"
        )
        for configuration in configurations.dropFirst() {
            let inHandler = median(configuration.signalCosts) - empty
            let direct = median(configuration.directWalks)
            var line = configuration.name.padding(toLength: 33, withPad: " ", startingAt: 0)
            line += "| \(format(inHandler)) ns".padding(toLength: 26, withPad: " ", startingAt: 0)
            line += "| \(format(direct)) ns".padding(toLength: 14, withPad: " ", startingAt: 0)
            line += "| \(format(direct / configuration.framesPerWalk))".padding(
                toLength: 11,
                withPad: " ",
                startingAt: 0
            )
            line += "| \(String(format: "%.3f", inHandler / empty))"
            if configuration.framesPerWalk != Double(frames) || configuration.flags & UInt32(PP_STACK_INCOMPLETE) != 0 {
                line += "  [walk stopped early: \(configuration.framesPerWalk) frames, flags \(configuration.flags)]"
            }
            print(line)
        }
    }

    /// Runs `body` 40 frames deep, in frames with or without frame pointers.
    static func atDepth(framePointers: Bool, _ body: () -> Void) {
        if framePointers {
            _ = recurseWithFramePointers(depth, body)
            return
        }
        withoutActuallyEscaping(body) { body in
            var leaf = body
            _ = withUnsafeMutablePointer(to: &leaf) { pointer in
                pp_bench_recurse_without_frame_pointers(
                    Int32(depth),
                    { context in context!.assumingMemoryBound(to: (() -> Void).self).pointee() },
                    pointer
                )
            }
        }
    }

    @inline(never) static func recurseWithFramePointers(_ depth: Int, _ leaf: () -> Void) -> Int {
        if depth <= 1 {
            leaf()
            return depth
        }
        return opaque(recurseWithFramePointers(depth - 1, leaf)) &+ depth
    }

    @_optimize(none) static func opaque(_ value: Int) -> Int { value }

    static func unblockSignals() {
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    static func format(_ value: Double) -> String { String(format: "%.1f", value) }
}
