import CPprof
import Foundation
import Synchronization
import Testing

@_spi(Benchmarks) @testable import Pprof

/// The labels the signal-handler side reads on this thread right now, resolved through the tag, as
/// a profile would record them.
func handlerLabels() -> [Pair] {
    let tag = pp_labels_current()
    precondition(LabelRuntime.objectInForce() == LabelRuntime.objectInForceThroughTaskLocal())
    return LabelTags.labels(forTag: tag).map { Pair($0.key, $0.value) }
}

/// Labels as comparable pairs.
struct Pair: Hashable, CustomStringConvertible {
    let key: String
    let value: String
    init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
    var description: String { "\(key)=\(value)" }
}

func pairs(_ labels: ProfileLabels) -> [Pair] { labels.map { Pair($0.key, $0.value) } }

/// Expects `ProfileLabels.current` and the handler side to both show exactly `expected`.
func expectInForce(_ expected: [Pair], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(pairs(ProfileLabels.current) == expected, "ProfileLabels.current", sourceLocation: sourceLocation)
    #expect(handlerLabels() == expected, "pp_labels_current()", sourceLocation: sourceLocation)
    // The C lookup and the one through the Swift task-local API agree.
    #expect(
        LabelRuntime.objectInForce() == LabelRuntime.objectInForceThroughTaskLocal(),
        sourceLocation: sourceLocation
    )
}

struct LabelTestError: Error {}

/// All label suites share process-wide state (the thread slot, the tag registry and its pins), so
/// they run one after another.
@Suite(.serialized) struct LabelTests {
    @Suite struct Sets {
        @Test func sortedByKeyAndLaterValueWins() {
            let labels = ProfileLabels([("route", "/a"), ("tenant", "x"), ("method", "GET"), ("route", "/b")])
            #expect(pairs(labels) == [Pair("method", "GET"), Pair("route", "/b"), Pair("tenant", "x")])
            #expect(labels["route"] == "/b")
            #expect(labels["method"] == "GET")
            #expect(labels["missing"] == nil)
            #expect(labels.count == 3)
            #expect(labels.description == #"{"method":"GET", "route":"/b", "tenant":"x"}"#)
        }

        @Test func fromDictionaryAndLiteral() {
            let fromDictionary = ProfileLabels(["z": "1", "a": "2", "m": "3"])
            #expect(pairs(fromDictionary) == [Pair("a", "2"), Pair("m", "3"), Pair("z", "1")])
            let literal: ProfileLabels = ["k": "first", "b": "x", "k": "second"]
            #expect(pairs(literal) == [Pair("b", "x"), Pair("k", "second")])
            #expect(ProfileLabels().isEmpty && ProfileLabels([(String, String)]()).isEmpty)
        }

        @Test func keysOrderedByUTF8BytesLikeGo() {
            // "Z" 0x5A < "a" 0x61 < "é" 0xC3 0xA9; the decomposed "e\u{301}" (0x65 0xCC 0x81) is a
            // different key from the precomposed "\u{E9}", as in Go.
            let labels = ProfileLabels([("\u{E9}", "1"), ("a", "2"), ("Z", "3"), ("e\u{301}", "4")])
            #expect(labels.map(\.key).map { Array($0.utf8) } == [[0x5A], [0x61], [0x65, 0xCC, 0x81], [0xC3, 0xA9]])
            #expect(labels["\u{E9}"] == "1" && labels["e\u{301}"] == "4")
        }

        @Test func agreesWithAReferenceOnRandomInputs() {
            var generator = SplitMix64(seed: 42)
            let alphabet = ["a", "b", "B", "é", "e\u{301}", "zz", "", "a0", "ab"]
            for _ in 0..<300 {
                let count = Int(generator.next() % 12)
                let input = (0..<count).map { _ in
                    (
                        alphabet[Int(generator.next() % UInt64(alphabet.count))],
                        String(generator.next() % 5)
                    )
                }
                // Reference: last value per key (bytes), sorted by key bytes.
                var last: [[UInt8]: (String, String)] = [:]
                for pair in input { last[Array(pair.0.utf8)] = pair }
                let expected = last.values.sorted { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }
                    .map { Pair($0.0, $0.1) }
                let labels = ProfileLabels(input)
                #expect(pairs(labels) == expected, "input \(input)")
                for pair in expected { #expect(labels[pair.key] == pair.value) }
                // Merging agrees with building from the concatenation.
                let other = ProfileLabels(input.reversed())
                #expect(labels.merging(other) == ProfileLabels(input + input.reversed()))
            }
        }

        @Test func mergingLetsTheArgumentWin() {
            let base: ProfileLabels = ["route": "/a", "tenant": "x"]
            let merged = base.merging(["route": "/b", "user": "u"])
            #expect(pairs(merged) == [Pair("route", "/b"), Pair("tenant", "x"), Pair("user", "u")])
            #expect(pairs(base) == [Pair("route", "/a"), Pair("tenant", "x")])
            #expect(base.merging(ProfileLabels()) == base)
            #expect(ProfileLabels().merging(base) == base)
            // Merging labels already present keeps the same set (and tag).
            #expect(base.merging(["route": "/a"]).storage === base.storage)
        }

        @Test func equalContentIsEqualAndHashesAlike() {
            let a = ProfileLabels([("x", "1"), ("y", "2")])
            let b: ProfileLabels = ["y": "2", "x": "1"]
            #expect(a == b && a.hashValue == b.hashValue)
            #expect(a != ["x": "1"] && a != ["x": "1", "y": "3"])
            #expect(Set([a, b, ["x": "1"]]).count == 2)
            #expect(a.storage!.tag != b.storage!.tag)
        }
    }

    @Suite struct Scopes {
        @Test func nestedScopesOverrideForTheInnerScopeOnly() {
            expectInForce([])
            withProfileLabels(["route": "/a", "tenant": "x"]) {
                expectInForce([Pair("route", "/a"), Pair("tenant", "x")])
                withProfileLabels(["route": "/b"]) {
                    expectInForce([Pair("route", "/b"), Pair("tenant", "x")])
                }
                expectInForce([Pair("route", "/a"), Pair("tenant", "x")])
            }
            expectInForce([])
        }

        @Test func outerLabelsReturnAfterAThrow() {
            withProfileLabels(["route": "/a"]) {
                #expect(throws: LabelTestError.self) {
                    try withProfileLabels(["route": "/b"]) { () throws(LabelTestError) in
                        expectInForce([Pair("route", "/b")])
                        throw LabelTestError()
                    }
                }
                expectInForce([Pair("route", "/a")])
            }
            expectInForce([])
        }

        @Test func asyncScopeReturnsValuesAndRestoresAfterThrow() async throws {
            let value = await withProfileLabels(["route": "/a"]) { () async -> Int in
                await Task.yield()
                expectInForce([Pair("route", "/a")])
                return 42
            }
            #expect(value == 42)
            await #expect(throws: LabelTestError.self) {
                try await withProfileLabels(["route": "/b"]) { () async throws(LabelTestError) in
                    await Task.yield()
                    throw LabelTestError()
                }
            }
            expectInForce([])
        }

        /// Every way a scope picks the set it binds (the given set, the outer set again, a merged set
        /// found in the cache, a new merged set) takes exactly one reference and gives it back when
        /// the scope ends, also by a throw: the sets live while in force and are freed afterwards.
        @Test func scopesReleaseEverySetTheyBind() async {
            weak var outerStorage: LabelStorage?
            weak var innerStorage: LabelStorage?
            weak var mergedStorage: LabelStorage?
            do {
                let outer: ProfileLabels = ["request": String(Int.random(in: 0..<1_000_000))]
                let inner: ProfileLabels = ["phase": "parse"]
                let overlapping: ProfileLabels = ["phase": "parse", "request": outer["request"]!]
                outerStorage = outer.storage
                innerStorage = inner.storage
                for round in 0..<3 {
                    withProfileLabels(outer) {
                        withProfileLabels(outer) {}  // the same set again
                        withProfileLabels(inner) {
                            mergedStorage = ProfileLabels.current.storage
                            withProfileLabels(inner) {}  // labels already in force
                            withProfileLabels(overlapping) {}
                            #expect(ProfileLabels.current.storage === mergedStorage)
                        }
                        _ = try? withProfileLabels(inner) { () throws(LabelTestError) in throw LabelTestError() }
                    }
                    await withProfileLabels(outer) {
                        await withProfileLabels(inner) {
                            await Task.yield()
                            #expect(ProfileLabels.current.storage === mergedStorage)
                        }
                        // Merges that miss the cache (each set is cached into its outer set at most twice).
                        await withProfileLabels(["attempt": String(round)]) { await Task.yield() }
                        _ = try? await withProfileLabels(inner) { () async throws(LabelTestError) in
                            await Task.yield()
                            throw LabelTestError()
                        }
                    }
                    #expect(ProfileLabels.current.isEmpty)
                }
                #expect(mergedStorage != nil)
            }
            #expect(outerStorage == nil && innerStorage == nil && mergedStorage == nil)
        }

        @Test func emptyLabelsChangeNothing() {
            withProfileLabels(["k": "v"]) {
                let before = ProfileLabels.current.storage
                withProfileLabels(ProfileLabels()) {
                    #expect(ProfileLabels.current.storage === before)
                }
            }
        }
    }

    @Suite struct Tasks {
        @Test func childTasksInheritButDetachedTasksDoNot() async {
            let expected = [Pair("route", "/a")]
            await withProfileLabels(["route": "/a"]) {
                async let child = { () async -> ([Pair], [Pair]) in
                    await Task.yield()
                    return (pairs(ProfileLabels.current), handlerLabels())
                }()
                let fromAsyncLet = await child
                #expect(fromAsyncLet.0 == expected && fromAsyncLet.1 == expected)

                let fromGroup = await withTaskGroup(of: ([Pair], [Pair]).self) { group in
                    for _ in 0..<4 {
                        group.addTask {
                            await Task.yield()
                            return (pairs(ProfileLabels.current), handlerLabels())
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                #expect(fromGroup.count == 4)
                #expect(fromGroup.allSatisfy { $0.0 == expected && $0.1 == expected })

                let fromDiscarding = Collected()
                await withDiscardingTaskGroup { group in
                    group.addTask {
                        await Task.yield()
                        let seen = handlerLabels()
                        fromDiscarding.append(seen)
                    }
                }
                #expect(fromDiscarding.all == [expected])

                let fromTask = await Task {
                    await Task.yield()
                    return (pairs(ProfileLabels.current), handlerLabels())
                }.value
                #expect(fromTask.0 == expected && fromTask.1 == expected)

                let fromDetached = await Task.detached {
                    await Task.yield()
                    return (pairs(ProfileLabels.current), handlerLabels())
                }.value
                #expect(fromDetached.0 == [] && fromDetached.1 == [])
            }
        }

        @Test func unstructuredTaskKeepsLabelsAfterTheScopeEnds() async {
            let task = withProfileLabels(["job": "background"]) {
                Task {
                    try? await Task.sleep(nanoseconds: 20_000_000)
                    return (pairs(ProfileLabels.current), handlerLabels())
                }
            }
            expectInForce([])
            let seen = await task.value
            #expect(seen.0 == [Pair("job", "background")] && seen.1 == [Pair("job", "background")])
        }

        @Test func taskStartedInASyncScopeOutsideTasksInherits() async {
            let task = onNewThread {
                withProfileLabels(["origin": "thread"]) {
                    Task { (pairs(ProfileLabels.current), handlerLabels()) }
                }
            }
            let seen = await task.value
            #expect(seen.0 == [Pair("origin", "thread")] && seen.1 == [Pair("origin", "thread")])
        }

        @Test func labelsSetInATaskGroupBodyReachItsChildren() async {
            let seen = await withTaskGroup(of: [Pair].self) { group in
                withProfileLabels(["phase": "fan-out"]) {
                    group.addTask { handlerLabels() }
                }
                group.addTask { handlerLabels() }
                return await group.reduce(into: Set<[Pair]>()) { $0.insert($1) }
            }
            #expect(seen == [[Pair("phase", "fan-out")], []])
        }

        @Test func labelsFollowTheTaskAcrossThreads() async {
            let hopper = Hopper()
            await withTaskGroup(of: (Set<Int32>, Bool).self) { group in
                for index in 0..<4 {
                    group.addTask {
                        let expected = [Pair("task", "\(index)")]
                        return await withProfileLabels(["task": "\(index)"]) {
                            var threads = Set<Int32>()
                            var allAgree = true
                            for round in 0..<200 {
                                if round % 10 == 0 {
                                    // A hop to a dedicated thread and back: always a different thread.
                                    let there = await hopper.visit()
                                    threads.insert(there.thread)
                                    allAgree = allAgree && there.current == expected && there.handler == expected
                                } else {
                                    await Task.yield()
                                }
                                threads.insert(pp_gettid())
                                allAgree = allAgree && pairs(ProfileLabels.current) == expected
                                allAgree = allAgree && handlerLabels() == expected
                            }
                            return (threads, allAgree)
                        }
                    }
                }
                for await (threads, allAgree) in group {
                    #expect(allAgree)
                    #expect(threads.count >= 2, "the task should have run on several threads: \(threads)")
                    #expect(threads.contains(hopper.thread))
                }
            }
            expectInForce([])
        }
    }

    @Suite struct Threads {
        @Test func threadLabelsApplyOutsideTasksBeneathScopes() throws {
            let result = onNewThread { () -> [String: [Pair]] in
                var seen: [String: [Pair]] = [:]
                seen["initial"] = handlerLabels()
                ProfileLabels.setForCurrentThread(["worker": "w1", "route": "/t"])
                seen["set"] = handlerLabels()
                seen["setCurrent"] = pairs(ProfileLabels.current)
                withProfileLabels(["route": "/scope"]) {
                    seen["scope"] = handlerLabels()
                    seen["scopeCurrent"] = pairs(ProfileLabels.current)
                    // A scope in force wins over a thread change until it ends.
                    ProfileLabels.setForCurrentThread(["worker": "w2"])
                    seen["scopeAfterSet"] = handlerLabels()
                }
                seen["afterScope"] = handlerLabels()
                seen["afterScopeCurrent"] = pairs(ProfileLabels.current)
                ProfileLabels.setForCurrentThread(ProfileLabels())
                seen["cleared"] = handlerLabels()
                return seen
            }
            #expect(result["initial"] == [])
            #expect(result["set"] == [Pair("route", "/t"), Pair("worker", "w1")])
            #expect(result["setCurrent"] == result["set"])
            #expect(result["scope"] == [Pair("route", "/scope"), Pair("worker", "w1")])
            #expect(result["scopeCurrent"] == result["scope"])
            #expect(result["scopeAfterSet"] == result["scope"])
            #expect(result["afterScope"] == [Pair("worker", "w2")])
            #expect(result["afterScopeCurrent"] == result["afterScope"])
            #expect(result["cleared"] == [])
        }

        @Test func threadLabelsDoNotLeakIntoTasksRunningOnTheThread() async {
            // The hopper's thread runs plain code between jobs, and tasks' jobs.
            let hopper = Hopper()
            let outside = hopper.executor.performAndWait {
                ProfileLabels.setForCurrentThread(["worker": "executor"])
                return handlerLabels()
            }
            #expect(outside == [Pair("worker", "executor")])
            let unlabelled = await hopper.visit()
            #expect(unlabelled.current == [] && unlabelled.handler == [])
            let labelled = await withProfileLabels(["route": "/x"]) { await hopper.visit() }
            #expect(labelled.current == [Pair("route", "/x")] && labelled.handler == [Pair("route", "/x")])
            #expect(unlabelled.thread == hopper.thread && labelled.thread == hopper.thread)
            let after = hopper.executor.performAndWait {
                defer { ProfileLabels.setForCurrentThread(ProfileLabels()) }
                return handlerLabels()
            }
            #expect(after == [Pair("worker", "executor")])
        }

        @Test func threadLabelsAreReleasedWhenTheThreadExits() {
            weak var storage: LabelStorage?
            onNewThread {
                let labels: ProfileLabels = ["request": UUID().uuidString]
                storage = labels.storage
                ProfileLabels.setForCurrentThread(labels)
            }
            #expect(storage == nil)
        }
    }
}

/// Label observations collected from concurrent tasks.
final class Collected: Sendable {
    private let items = Mutex<[[Pair]]>([])
    func append(_ item: [Pair]) { items.withLock { $0.append(item) } }
    var all: [[Pair]] { items.withLock { $0 } }
}

/// Runs `body` on a new thread and returns its result.
func onNewThread<T>(_ body: @escaping () -> T) -> T {
    nonisolated(unsafe) var result: T?
    nonisolated(unsafe) let body = body
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        result = body()
        done.signal()
    }
    thread.start()
    done.wait()
    // Let the thread finish exiting (thread-exit destructors) before returning.
    while !thread.isFinished { usleep(100) }
    return result!
}

/// An actor whose methods run on one dedicated thread, so that calling it moves a task to another
/// thread and back.
actor Hopper {
    nonisolated let executor = ThreadExecutor()
    nonisolated var thread: Int32 { executor.thread }
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    func visit() -> (thread: Int32, current: [Pair], handler: [Pair]) {
        (pp_gettid(), pairs(ProfileLabels.current), handlerLabels())
    }
}

/// A serial executor that runs every job on its own thread.
final class ThreadExecutor: SerialExecutor, @unchecked Sendable {
    private enum Work {
        case job(UnownedJob)
        case plain(() -> Void)
    }

    private let condition = NSCondition()
    private var jobs: [Work] = []
    private var threadID: Int32 = 0

    init() {
        let started = DispatchSemaphore(value: 0)
        Thread { [self] in
            condition.lock()
            threadID = pp_gettid()
            condition.unlock()
            started.signal()
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                let work = jobs.removeFirst()
                condition.unlock()
                switch work {
                case .job(let job): job.runSynchronously(on: asUnownedSerialExecutor())
                case .plain(let body): body()
                }
            }
        }.start()
        started.wait()
    }

    /// Runs `body` on the executor's thread outside any task, and waits for it.
    func performAndWait<T>(_ body: @escaping () -> T) -> T {
        nonisolated(unsafe) var result: T?
        let done = DispatchSemaphore(value: 0)
        condition.lock()
        jobs.append(
            .plain({
                result = body()
                done.signal()
            })
        )
        condition.signal()
        condition.unlock()
        done.wait()
        return result!
    }

    var thread: Int32 {
        condition.lock()
        defer { condition.unlock() }
        return threadID
    }

    func enqueue(_ job: UnownedJob) {
        condition.lock()
        jobs.append(.job(job))
        condition.signal()
        condition.unlock()
    }
}
