import Dispatch
import Foundation
import Logging
@_spi(Integration) import Pprof

/// Takes each cycle's profiles on a thread of its own: one CPU profile runs for the exporter's
/// whole life and is cut into windows (`CPUProfile.startNextWindow`), the heap, block and mutex
/// profiles are deltas since the previous cycle (godeltaprof's profilers), and goroutine is a
/// snapshot. Its state is touched only on its serial queue, hence `@unchecked Sendable`.
final class ProfileCollector: @unchecked Sendable {
    private let profiles: PyroscopeConfiguration.Profiles
    private let cpuRate: Int
    private let logger: Logger
    private let queue = DispatchQueue(label: "pprof-pyroscope-collector")

    private let heap = DeltaHeapProfiler()
    private let block = DeltaBlockProfiler()
    private let mutex = DeltaMutexProfiler()
    /// The buffer the running CPU window writes to; nil while this collector has no CPU profile.
    private var cpuWindow: ProfileBuffer?
    private var cycleStartNanos = unixNanos()
    /// Profiles that could not be taken, each logged once.
    private var reportedUnavailable: Set<String> = []

    init(configuration: PyroscopeConfiguration, logger: Logger) {
        profiles = configuration.profiles
        cpuRate = configuration.cpuRate
        self.logger = logger
    }

    /// Starts the CPU profile (if selected) and the first cycle.
    func start() async {
        await onQueue {
            self.cycleStartNanos = unixNanos()
            self.startCPUProfile()
        }
    }

    /// The profiles of the cycle that ends now, and the collector thread's CPU time for them. With
    /// `final`, the CPU profile is stopped instead of continued.
    func collect(final: Bool) async -> (profiles: [CollectedProfile], cpuNanos: Int64) {
        await onQueue {
            let cpuBefore = threadCPUNanos()
            let collected = self.takeProfiles(final: final)
            return (collected, threadCPUNanos() - cpuBefore)
        }
    }

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: ProfilerWork.run(body)) }
        }
    }

    private func startCPUProfile() {
        guard profiles.contains(.cpu), cpuWindow == nil else { return }
        let buffer = ProfileBuffer()
        do {
            try CPUProfile.start(writingTo: buffer, rate: cpuRate)
            cpuWindow = buffer
            reportedUnavailable.remove("cpu")
        } catch {
            // Someone else's CPU profile (e.g. /debug/pprof/profile) runs: try again next cycle.
            reportUnavailable("cpu", error)
        }
    }

    private func takeProfiles(final: Bool) -> [CollectedProfile] {
        let end = unixNanos()
        let start = cycleStartNanos
        cycleStartNanos = end
        var collected: [CollectedProfile] = []
        func add(_ kind: CollectedProfile.Kind, _ bytes: [UInt8]) {
            collected.append(CollectedProfile(kind: kind, bytes: bytes, startNanos: start, endNanos: end))
        }

        if let window = cpuWindow {
            do {
                if final {
                    cpuWindow = nil
                    try CPUProfile.stop()
                } else {
                    let next = ProfileBuffer()
                    try CPUProfile.startNextWindow(writingTo: next)
                    cpuWindow = next
                }
                add(.cpu, window.bytes)
            } catch {
                // The profile was stopped by someone else (or its window failed): start again.
                cpuWindow = nil
                reportUnavailable("cpu", error)
            }
        }
        if !final { startCPUProfile() }

        var heapTypes: Set<String> = []
        if profiles.contains(.heap) { heapTypes.formUnion(["inuse_objects", "inuse_space"]) }
        if profiles.contains(.allocs) { heapTypes.formUnion(["alloc_objects", "alloc_space"]) }
        if !heapTypes.isEmpty, let bytes = take("heap", { try self.heap.profile(to: $0) }) {
            if heapTypes.count == 4 {
                add(.memory, bytes)
            } else if let selected = try? ProfileData(decoding: bytes).keepingSampleTypes(heapTypes).encoded() {
                add(.memory, selected)
            }
        }
        if profiles.contains(.block), let bytes = take("block", { try self.block.profile(to: $0) }) {
            add(.block, bytes)
        }
        if profiles.contains(.mutex), let bytes = take("mutex", { try self.mutex.profile(to: $0) }) {
            add(.mutex, bytes)
        }
        if profiles.contains(.goroutine), let goroutine = Profile.lookup("goroutine"),
            let bytes = take("goroutine", { try goroutine.write(to: $0, debug: 0) })
        {
            add(.goroutine, bytes)
        }
        return collected
    }

    private func take(_ name: String, _ write: (ProfileBuffer) throws -> Void) -> [UInt8]? {
        let buffer = ProfileBuffer()
        do {
            try write(buffer)
            return buffer.bytes
        } catch {
            reportUnavailable(name, error)
            return nil
        }
    }

    private func reportUnavailable(_ name: String, _ error: any Error) {
        guard reportedUnavailable.insert(name).inserted else { return }
        logger.warning(
            "Pyroscope exporter cannot take the \(name) profile; it is skipped until it can",
            metadata: ["reason": "\(error)"]
        )
    }
}

func unixNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

func threadCPUNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
