import Foundation
import Pprof
import Synchronization

/// `tasks-async-let <count> <debug0 path> <debug2 path>`: `count` named tasks each waiting on an
/// `async let` child suspended three async functions deep on a continuation never resumed.
enum AsyncLetScenarios {
    static let parked = Mutex<[CheckedContinuation<Int, Never>]>([])

    @inline(never) static func letInner(_ value: Int) async -> Int {
        let resumed = await withCheckedContinuation { continuation in parked.withLock { $0.append(continuation) } }
        return resumed &+ value &* 17
    }

    @inline(never) static func letMiddle(_ value: Int) async -> Int { await letInner(value &+ 4) &* 19 }

    @inline(never) static func letOuter(_ value: Int) async -> Int { await letMiddle(value &* 6) &- 23 }

    @inline(never) static func letParent(_ value: Int) async -> Int {
        async let child = letOuter(value)
        return await child &+ 29
    }

    static func run(_ arguments: [String]) throws {
        let count = Int(arguments[0])!
        TaskRegistry.prepare()
        var parents: [Task<Void, Never>] = []
        for index in 0..<count {
            parents.append(Task.detached(name: "let-parent-\(index)") { print("never \(await letParent(index))") })
        }
        while parked.withLock({ $0.count }) < count { usleep(1000) }
        usleep(200_000)
        let profile = Profile.lookup("goroutine")!
        for (debug, path) in zip([0, 2], arguments.dropFirst()) { try writeProfile(profile, debug: debug, to: path) }
        _ = parents
        print("done")
    }
}
