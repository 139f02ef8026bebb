import CPprof

/// Accumulates wall samples by (stack, labels, what the thread was doing, thread) in first-seen
/// order, and at the end classifies each aggregate (running, waiting in what, idle pool thread)
/// and turns them into the profile.
struct WallSampleAggregator {
    struct Key: Hashable {
        /// Return-address entries, leaf first, as `ThreadProfiles.profileStack` gives them.
        var stack: [UInt]
        var tag: UInt64
        var status: ThreadSample.Status
        /// The restartable system call the thread was blocked in, or -1.
        var syscall: Int32
        var systemCall: ThreadProfiles.SystemCallEvidence
        /// 0 and "" unless thread labels are on.
        var threadID: Int32
        var threadName: String
    }

    private var keys: [Key] = []
    private var indices: [Key: Int] = [:]
    private var values: [(samples: Int64, wallNanos: Int64)] = []

    /// Adds one thread's answer standing for `wallNanos` of its time; returns its aggregate.
    mutating func add(_ sample: ThreadSample, wallNanos: Int64, threadName: String?) -> Int {
        let key = Key(
            stack: ThreadProfiles.profileStack(of: sample),
            tag: sample.status == .sampled ? sample.labelTag : 0,
            status: sample.status == .sampled || sample.status == .blocksSignal ? sample.status : .noAnswer,
            syscall: Int32(sample.syscall ?? -1),
            systemCall: sample.systemCall,
            threadID: threadName == nil ? 0 : sample.tid,
            threadName: threadName ?? ""
        )
        let index: Int
        if let known = indices[key] {
            index = known
        } else {
            index = keys.count
            keys.append(key)
            indices[key] = index
            values.append((0, 0))
        }
        values[index].samples += 1
        values[index].wallNanos += max(0, wallNanos)
        return index
    }

    /// Adds wall time to an aggregate without a sample (a thread's time after its last sample).
    mutating func extend(_ index: Int, byNanos nanos: Int64) {
        values[index].wallNanos += max(0, nanos)
    }

    struct Counts {
        var samples: Int64 = 0
        var idle: Int64 = 0
        var blocksSignal: Int64 = 0
        var unanswered: Int64 = 0
    }

    func build(
        periodNanos: Int64,
        startUnixNanos: Int64,
        durationNanos: Int64,
        includeIdle: Bool,
        threadLabels: Bool,
        symbolizer: Symbolizer = .shared
    ) -> (profile: ProfileData, counts: Counts) {
        var builder = ProfileBuilder(
            sampleTypes: [
                ProfileData.ValueType(type: "samples", unit: "count"),
                ProfileData.ValueType(type: "wall", unit: "nanoseconds"),
            ],
            periodType: ProfileData.ValueType(type: "wall", unit: "nanoseconds"),
            period: periodNanos,
            timeNanos: startUnixNanos,
            durationNanos: durationNanos,
            symbolizer: symbolizer
        )
        var counts = Counts()
        var tagLabels: [UInt64: [ProfileData.Label]] = [0: []]
        // A stack's state also depends on what the registers said (one pc can be blocked in its
        // system call or just back from it).
        struct StateKey: Hashable {
            var stack: [UInt]
            var syscall: Int32
            var systemCall: ThreadProfiles.SystemCallEvidence
        }
        var states: [StateKey: WallState] = [:]
        for (index, key) in keys.enumerated() {
            let value = values[index]
            counts.samples += value.samples
            let state: WallState
            switch key.status {
            case .sampled:
                let stateKey = StateKey(stack: key.stack, syscall: key.syscall, systemCall: key.systemCall)
                if let known = states[stateKey] {
                    state = known
                } else {
                    state = WallState.classify(
                        stack: key.stack,
                        syscall: key.syscall >= 0 ? Int(key.syscall) : nil,
                        systemCall: key.systemCall,
                        symbolizer: symbolizer
                    )
                    states[stateKey] = state
                }
            case .blocksSignal:
                counts.blocksSignal += value.samples
                state = .unknown
            default:
                counts.unanswered += value.samples
                state = .unknown
            }
            if state.isIdle {
                counts.idle += value.samples
                if !includeIdle { continue }
            }
            var labels: [ProfileData.Label]
            if let known = tagLabels[key.tag] {
                labels = known
            } else {
                labels = LabelTags.labels(forTag: key.tag).map { ProfileData.Label(key: $0.key, string: $0.value) }
                tagLabels[key.tag] = labels
            }
            labels.append(ProfileData.Label(key: "state", string: state.label))
            if threadLabels {
                labels.append(ProfileData.Label(key: "thread_id", string: String(key.threadID)))
                labels.append(ProfileData.Label(key: "thread_name", string: key.threadName))
            }
            builder.addSample(stack: key.stack, values: [value.samples, value.wallNanos], labels: labels)
        }
        return (builder.build(), counts)
    }
}

/// What a sampled thread was doing, as the `state` label says it.
enum WallState: Hashable {
    /// On a CPU, or runnable (not blocked in a system call).
    case running
    /// Blocked; the kind is `lock`, `condition`, `semaphore`, `sleep`, `io`, `futex`, …
    case waiting(String)
    /// A pool thread (libdispatch worker, SwiftNIO event loop) waiting for work.
    case idle(String)
    /// Not sampled: blocks the signal or did not answer.
    case unknown

    var label: String {
        switch self {
        case .running: return "running"
        case .waiting(let kind): return "waiting:" + kind
        case .idle(let kind): return "idle:" + kind
        case .unknown: return "unknown"
        }
    }

    var isIdle: Bool {
        if case .idle = self { return true }
        return false
    }

    static func classify(
        stack: [UInt],
        syscall: Int?,
        systemCall: ThreadProfiles.SystemCallEvidence,
        symbolizer: Symbolizer
    ) -> WallState {
        switch systemCall {
        case .blocked: break
        case .returned: return .running
        case .noneSeen:
            guard ThreadProfiles.leafIsBlockingCallWrapper(stack, symbolizer: symbolizer) else { return .running }
        }
        let kind = waitKind(ThreadProfiles.waitReason(syscall: syscall, stack: stack, symbolizer: symbolizer))
        let names = stack.flatMap { entry -> [String] in
            entry <= SyntheticFrame.maximumRawValue ? [] : symbolizer.frames(at: entry - 1).map(\.name)
        }
        return IdlePoolWait.matches(names) ? .idle(kind) : .waiting(kind)
    }

    /// The thread dump's wait reason as a `state` kind.
    static func waitKind(_ reason: String?) -> String {
        switch reason {
        case "mutex lock": return "lock"
        case "cond wait": return "condition"
        case "semaphore wait": return "semaphore"
        case "sleep", "sleep or timed wait": return "sleep"
        case "IO wait", "read", "accept": return "io"
        case "futex wait": return "futex"
        case "join": return "join"
        case "child wait": return "child"
        case "signal wait": return "signal"
        default: return "syscall"
        }
    }
}

/// Recognises the stack of a pool thread waiting for work: from the leaf outward, only the pool's
/// wait machinery (semaphore, futex, condition, epoll/Selector, system call wrappers) down to the
/// pool's own loop function. A pool thread waiting inside work (a task, a channel handler) has that
/// work's frames in between and is not idle.
enum IdlePoolWait {
    /// The loops of pool threads: libdispatch's worker (which runs the Swift cooperative pool on
    /// Linux) and SwiftNIO's event loop and thread pool.
    static let loops = [
        "_dispatch_worker_thread", "SelectableEventLoop.run()", "NIOThreadPool.process(",
    ]

    static let waitMachinery = [
        "sem_", "sema4", "semaphore", "futex", "pthread_cond", "lll_", "epoll", "Selector", "whenReady",
        "syscall", "Syscall", "poll", "ConditionLock", "NIOLock", "_dispatch_", "clock_nanosleep", "wait",
        "Wait", "withLock", "Lock.", "call_real_",
    ]

    static func matches(_ names: [String]) -> Bool {
        for name in names {
            // The loop function or a closure of it (SwiftNIO waits from inside `run()`'s closure).
            if loops.contains(where: { name.contains($0) }) { return true }
            guard waitMachinery.contains(where: { name.contains($0) }) else { return false }
        }
        return false
    }
}
