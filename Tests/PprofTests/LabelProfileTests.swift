import CPprof
import Foundation
import Testing

@testable import Pprof

extension LabelTests {
    /// Issue 4's criteria on a real, decoded CPU profile of `pprof-testhelper labels-cpu`: every
    /// `burn…` function there runs under labels known in advance.
    @Suite(.serialized) struct CPUProfiles {
        /// Two concurrent tasks, `route=/a` and `route=/b`, burning across many awaits that
        /// resume on other threads: ≥ 95% of each function's samples carry exactly its own label,
        /// none the other's, and each function was sampled on more than one thread.
        @Test func concurrentTasksCarryTheirOwnLabels() throws {
            let run = try LabelledCPURun.shared()
            for (function, own, other) in [("burnRouteA", "/a", "/b"), ("burnRouteB", "/b", "/a")] {
                let samples = run.samples(in: function)
                let total = samples.reduce(0) { $0 + $1.count }
                let exact = samples.filter { $0.labels == ["route": own] }.reduce(0) { $0 + $1.count }
                let crossed = samples.filter { $0.labels["route"] == other }.reduce(0) { $0 + $1.count }
                let threads = Set(samples.map(\.threadID))
                print(
                    "\(function): \(exact) of \(total) samples carry route=\(own), \(crossed) route=\(other), \(threads.count) threads"
                )
                #expect(total >= 50)
                #expect(Double(exact) >= 0.95 * Double(total), "\(function): \(run.histogram(of: samples))")
                #expect(crossed == 0)
                #expect(threads.count >= 2, "\(function) never resumed on another thread")
            }
        }

        /// Children started in a scope (`async let`, a task-group child, `Task {}`) carry its
        /// labels; after a scope returns or throws (async and sync), the outer labels are back.
        @Test func childTasksInheritAndOuterLabelsReturnAfterTheScope() throws {
            let run = try LabelledCPURun.shared()
            let parent: ProfileLabels = ["scope": "outer", "route": "/parent"]
            let outer: ProfileLabels = ["scope": "outer"]
            try run.expectLabels(
                [
                    "burnAsyncLetChild": parent,
                    "burnGroupChild": parent,
                    "burnUnstructuredChild": parent,
                    "burnAfterReturn": outer,
                    "burnBeforeThrow": ["scope": "outer", "route": "/throwing"],
                    "burnAfterThrow": outer,
                    "burnSyncScope": ["scope": "outer", "route": "/sync"],
                    "burnAfterSyncReturn": outer,
                    "burnBeforeSyncThrow": ["scope": "outer", "route": "/sync-throwing"],
                    "burnAfterSyncThrow": outer,
                ]
            )
        }

        /// A nested scope overrides `route` for the inner scope only; `tenant` and `scope` carry
        /// through, and the outer `route` is back after it (async and sync inner scopes).
        @Test func nestedScopesOverrideAKeyForTheInnerScopeOnly() throws {
            let run = try LabelledCPURun.shared()
            let outer: ProfileLabels = ["scope": "outer", "route": "/outer", "tenant": "t1"]
            try run.expectLabels(
                [
                    "burnNestedBefore": outer,
                    "burnNestedInner": ["scope": "outer", "route": "/inner", "tenant": "t1"],
                    "burnNestedAfter": outer,
                    "burnNestedInnerSync": ["scope": "outer", "route": "/inner-sync", "tenant": "t1"],
                    "burnNestedAfterSync": outer,
                ]
            )
        }

        /// Threads' own labels (`setForCurrentThread`) are on their samples, a sync scope on such a
        /// thread merges with them, and clearing them leaves samples without labels.
        @Test func threadLabelsAppearOnSamples() throws {
            let run = try LabelledCPURun.shared()
            try run.expectLabels(
                [
                    "burnThreadW1": ["worker": "w1"],
                    "burnThreadW2": ["worker": "w2"],
                    "burnThreadScoped": ["worker": "w1", "route": "/on-thread"],
                    "burnThreadUnlabelled": ProfileLabels(),
                ]
            )
        }

        /// The profile says nothing about labels when handlers read task labels; when they cannot
        /// (here switched off with `PPROF_TASK_LABELS=off`), its comments say so and why, samples
        /// still carry threads' own labels, and tasks' samples carry none.
        @Test func degradedLabelReadingIsReported() throws {
            let run = try LabelledCPURun.shared()
            #expect(run.taskLabelsReadable)
            #expect(!run.profile.data.comments.contains { $0.contains("labels") })

            let degraded = try LabelledCPURun.run(["seconds=0.1"], environment: ["PPROF_TASK_LABELS": "off"])
            #expect(!degraded.taskLabelsReadable)
            let comments = degraded.profile.data.comments
            print(comments)
            #expect(
                comments.contains { $0.contains("only threads' own labels") && $0.contains("PPROF_TASK_LABELS=off") }
            )
            #expect(degraded.samples(in: "burnThreadW1").allSatisfy { $0.labels == ["worker": "w1"] })
            #expect(degraded.samples(in: "burnThreadW1").count > 0)
            let taskSamples = ["burnRouteA", "burnNestedInner", "burnAfterReturn"].flatMap { degraded.samples(in: $0) }
            #expect(taskSamples.count > 0)
            #expect(taskSamples.allSatisfy { $0.labels.isEmpty })
        }

        /// `go tool pprof -tagfocus route=/a` keeps `/a`'s function and drops `/b`'s.
        @Test(.enabled(if: CPUTestSupport.goAvailable)) func goToolTagfocusKeepsOnlyTheFocusedRoute() throws {
            let run = try LabelledCPURun.shared()
            let path = CPUTestSupport.temporaryPath("labels-cpu.pb.gz")
            defer { try? FileManager.default.removeItem(atPath: path) }
            try Data(run.bytes).write(to: URL(fileURLWithPath: path))
            let arguments = ["tool", "pprof", "-symbolize=none", "-top", "-nodecount=200"]
            let all = try CPUTestSupport.go(arguments + [path])
            #expect(all.contains("burnRouteA") && all.contains("burnRouteB"))
            let focused = try CPUTestSupport.go(arguments + ["-tagfocus", "route=/a", path])
            print(focused)
            #expect(focused.contains("burnRouteA"))
            #expect(!focused.contains("burnRouteB"))
            #expect(!focused.contains("burnNested"))
            #expect(!focused.contains("burnThread"))
        }
    }

    @Suite struct GoroutineProfiles {
        /// Threads parked with their own labels, a thread parked in a sync scope, a task parked
        /// in a scope and one without labels: each sample carries the labels in force on its
        /// thread, and debug=1 prints them as `# labels:` lines.
        @Test func threadsShowTheirLabels() throws {
            let paths = ["labels-g0.pb.gz", "labels-g1.txt"].map(temporaryPath)
            defer { paths.forEach { try? FileManager.default.removeItem(atPath: $0) } }
            let result = try ChildProcess.run("labels-goroutine", paths)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("done"))

            let stacks = decodedStacks(
                try ProfileData(decoding: Array(try Data(contentsOf: URL(fileURLWithPath: paths[0]))))
            )
            func labels(in function: String) -> [ProfileLabels: Int64] {
                var found: [ProfileLabels: Int64] = [:]
                for stack in stacks where stack.names.contains(where: { $0.contains(function) }) {
                    found[ProfileLabels(stack.labels.map { ($0.key, $0.string ?? "") }), default: 0] += stack.value
                }
                return found
            }
            #expect(
                labels(in: "parkWithThreadLabels") == [
                    ["worker": "parked-0"]: 1, ["worker": "parked-1"]: 1, ["worker": "parked-2"]: 1,
                ]
            )
            #expect(labels(in: "parkInSyncScope") == [["worker": "scoped", "route": "/sync"]: 1])
            #expect(labels(in: "parkInLabelledTask") == [["route": "/task"]: 1])
            #expect(labels(in: "parkInUnlabelledTask") == [ProfileLabels(): 1])

            let text = try String(contentsOfFile: paths[1], encoding: .utf8)
            for index in 0..<3 {
                #expect(text.contains("\n# labels: {\"worker\":\"parked-\(index)\"}\n"))
            }
            #expect(text.contains("\n# labels: {\"route\":\"/sync\", \"worker\":\"scoped\"}\n"))
            #expect(text.contains("\n# labels: {\"route\":\"/task\"}\n"))
        }
    }
}

/// One run of `pprof-testhelper labels-cpu`, shared by the tests that check it.
struct LabelledCPURun: Sendable {
    struct Sample: Sendable {
        var labels: ProfileLabels
        var threadID: String
        var count: Int64
    }

    let bytes: [UInt8]
    let taskLabelsReadable: Bool
    var profile: IndexedProfile { IndexedProfile(try! ProfileData(decoding: bytes)) }

    private static let outcome = Result<LabelledCPURun, PprofError> { () throws(PprofError) in
        try run(["rate=500"])
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws(PprofError) -> LabelledCPURun {
        do {
            let path = CPUTestSupport.temporaryPath("labels-cpu.pb.gz")
            defer { try? FileManager.default.removeItem(atPath: path) }
            let result = try ChildProcess.run("labels-cpu", [path] + arguments, environment: environment)
            guard result.status == 0, !result.crashed else {
                throw PprofError.unavailable("labels-cpu failed (\(result.status)): \(result.stderr)")
            }
            print(result.stdout)
            return LabelledCPURun(
                bytes: try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))),
                taskLabelsReadable: result.stdout.contains("\"taskLabelsReadable\":1")
            )
        } catch let error as PprofError {
            throw error
        } catch {
            throw PprofError.unavailable("labels-cpu: \(error)")
        }
    }

    static func shared() throws -> LabelledCPURun { try outcome.get() }

    /// The samples whose innermost `burn…` function is `function`, with their labels other than
    /// the thread's id and name.
    func samples(in function: String) -> [Sample] {
        let profile = self.profile
        return profile.samples.compactMap { sample in
            let innermost = profile.functionNames(of: sample).first {
                $0.contains(".burn") && !$0.contains("burnAcrossAwaits") && !$0.contains("burnOnThread")
            }
            guard let innermost, innermost.contains(".\(function)(") else { return nil }
            let user = sample.labels.filter { $0.key != "thread_id" && $0.key != "thread_name" }
            return Sample(
                labels: ProfileLabels(user.map { ($0.key, $0.string ?? "") }),
                threadID: sample.labels.first { $0.key == "thread_id" }?.string ?? "",
                count: sample.values[0]
            )
        }
    }

    func histogram(of samples: [Sample]) -> [String: Int64] {
        samples.reduce(into: [:]) { $0[$1.labels.description, default: 0] += $1.count }
    }

    /// For each function: enough samples, and ≥ 95% of them carry exactly the expected labels.
    func expectLabels(_ expected: [String: ProfileLabels], sourceLocation: SourceLocation = #_sourceLocation) throws {
        for (function, labels) in expected.sorted(by: { $0.key < $1.key }) {
            let samples = self.samples(in: function)
            let total = samples.reduce(0) { $0 + $1.count }
            let exact = samples.filter { $0.labels == labels }.reduce(0) { $0 + $1.count }
            print("\(function): \(exact) of \(total) samples carry \(labels)")
            #expect(total >= 20, "\(function): \(total) samples", sourceLocation: sourceLocation)
            #expect(
                Double(exact) >= 0.95 * Double(total),
                "\(function): \(histogram(of: samples))",
                sourceLocation: sourceLocation
            )
        }
    }
}
