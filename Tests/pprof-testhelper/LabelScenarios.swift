import CPprof
import Dispatch
import Foundation
import Pprof
import Synchronization

/// Label scenarios for tests that watch `pp_labels_current()` from outside (a debugger).
enum LabelScenarios {
    /// Calls `pp_labels_current()` once in each situation a profiler's handler can interrupt, and
    /// prints one `SITUATION <name> <tag>` line per call, in call order.
    static func handlerSituations(_: [String]) {
        func probe(_ name: String) {
            let tag = pp_labels_current()
            print("SITUATION \(name) \(tag)")
        }
        probe("before-any-label-set")
        ProfileLabels.setForCurrentThread(["worker": "main"])
        probe("thread-labels-first-sample")
        probe("thread-labels-sampled-before")
        withProfileLabels(["route": "/sync"]) { probe("sync-scope-outside-tasks") }
        ProfileLabels.setForCurrentThread(ProfileLabels())
        probe("no-labels")

        let done = DispatchSemaphore(value: 0)
        Task {
            probe("task-without-labels")
            await withProfileLabels(["route": "/async"]) {
                await Task.yield()
                probe("task-scope")
                withProfileLabels(["phase": "inner"]) { probe("task-nested-sync-scope") }
                async let child: Void = { probe("async-let-child") }()
                await child
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { probe("group-child") }
                }
            }
            done.signal()
        }
        done.wait()
        print("SITUATIONS 10")
    }

    /// The residual case of the handler-side read: a thread's first access to the runtime's TLS
    /// after another thread dlopen'ed a library with TLS takes glibc's `__tls_get_addr` slow path.
    /// A thread with labels waits (spinning, without touching TLS) while the main thread opens
    /// `arguments[0]`, then calls `pp_labels_current()` once. Trace it under a debugger.
    static func tlsAfterDlopen(_ arguments: [String]) throws {
        guard let library = arguments.first else { throw ScenarioError.usage("labels-tls-after-dlopen <library>") }
        let ready = Atomic<Bool>(false)
        let go = Atomic<Bool>(false)
        let done = Atomic<Bool>(false)
        nonisolated(unsafe) var tag: UInt64 = 0
        Thread {
            ProfileLabels.setForCurrentThread(["worker": "dlopen"])
            _ = pp_labels_current()
            ready.store(true, ordering: .releasing)
            while !go.load(ordering: .acquiring) {}
            tag = pp_labels_current()
            done.store(true, ordering: .releasing)
        }.start()
        while !ready.load(ordering: .acquiring) { usleep(1000) }
        guard dlopen(library, RTLD_NOW | RTLD_LOCAL) != nil else {
            throw ScenarioError.usage("cannot open \(library): \(String(cString: dlerror()))")
        }
        go.store(true, ordering: .releasing)
        while !done.load(ordering: .acquiring) { usleep(1000) }
        print("SITUATION after-dlopen \(tag)")
    }
}
