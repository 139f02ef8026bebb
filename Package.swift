// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-pprof",
    products: [
        // The core: registry, CPU, threads, labels, formats, deltas. Never replaces malloc or locks.
        .library(name: "Pprof", targets: ["Pprof"]),
        // Opt-in interposition of the malloc family, pthread locks/conditions/semaphores and
        // pthread_create, for the heap, allocs, block, mutex and threadcreate profiles.
        .library(name: "PprofHooks", targets: ["PprofHooks"]),
        // The same hooks plus the library, as a shared object for LD_PRELOAD into unmodified binaries.
        .library(name: "PprofPreload", type: .dynamic, targets: ["PprofPreload"]),
        .executable(name: "pprof-demo", targets: ["pprof-demo"]),
    ],
    targets: [
        // C: the only code that runs inside signal handlers or malloc/pthread hooks.
        .target(
            name: "CPprof",
            cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("z"), .linkedLibrary("dl"), .linkedLibrary("m")]
        ),
        .target(name: "Pprof", dependencies: ["CPprof"]),
        .target(name: "PprofHooks", dependencies: ["CPprof"], cSettings: [.define("_GNU_SOURCE")]),
        .target(name: "PprofPreload", dependencies: ["Pprof", "PprofHooks"]),
        .executableTarget(name: "pprof-demo", dependencies: ["Pprof", "PprofHooks"]),
        // Child processes for tests that need a process of their own (traps, hooks, LD_PRELOAD, stripping).
        .executableTarget(
            name: "pprof-testhelper",
            dependencies: ["Pprof", "PprofHooks", "CTestSupport"],
            path: "Tests/pprof-testhelper"
        ),
        // C code the helper's scenarios call (a C library's view of locks, allocation…).
        .target(name: "CTestSupport", path: "Tests/CTestSupport"),
        // A Swift program that knows nothing of swift-pprof: the LD_PRELOAD tests and the heaptrack
        // comparison run it.
        .executableTarget(
            name: "pprof-plain-workload",
            dependencies: ["PprofWorkload"],
            path: "Tests/pprof-plain-workload"
        ),
        .target(name: "PprofWorkload", path: "Tests/PprofWorkload"),
        // Benchmarks that print ratios measured side by side in one run.
        .executableTarget(
            name: "pprof-bench",
            dependencies: ["Pprof", "PprofHooks", "PprofBenchSupport", "PprofWorkload"],
            path: "Benchmarks/pprof-bench"
        ),
        // C for the benchmarks: code without frame pointers and measuring signal handlers.
        .target(name: "PprofBenchSupport", dependencies: ["CPprof"], path: "Benchmarks/PprofBenchSupport"),
        // C test support: signal handlers that tests use to observe what profiler handlers see.
        .target(
            name: "CPprofTestSupport",
            dependencies: ["CPprof"],
            path: "Tests/CPprofTestSupport",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .testTarget(name: "PprofTests", dependencies: ["Pprof", "CPprofTestSupport"]),
    ]
)
