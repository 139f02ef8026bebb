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
        // The /debug/pprof handler, framework-agnostic (request in, response out); depends only on Pprof (and PprofReport for the UI).
        .library(name: "PprofHTTP", targets: ["PprofHTTP"]),
        // A standalone debug server on SwiftNIO (own threads, loopback by default) and a ServiceLifecycle service.
        .library(name: "PprofServer", targets: ["PprofServer"]),
        // The handler mounted as a Hummingbird 2 route group.
        .library(name: "PprofHummingbird", targets: ["PprofHummingbird"]),
        // Continuous profiling: pushes CPU windows and delta profiles to Grafana Pyroscope (or Alloy).
        .library(name: "PprofPyroscope", targets: ["PprofPyroscope"]),
        // Reports without Go: top, traces, tags, diff, the flame graph page's data (core only).
        .library(name: "PprofReport", targets: ["PprofReport"]),
        // `swift run pprof top|traces|tags|diff|flame|merge` on files or URLs.
        .executable(name: "pprof", targets: ["pprof-cli"]),
        .executable(name: "pprof-demo", targets: ["pprof-demo"]),
    ],
    dependencies: [
        // Only the HTTP products use these; a user of `Pprof` alone builds none of them.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
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
        .target(name: "PprofReport", dependencies: ["Pprof"]),
        .target(name: "PprofHTTP", dependencies: ["Pprof", "PprofReport"]),
        .executableTarget(
            name: "pprof-cli",
            dependencies: [
                "Pprof", "PprofReport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "PprofServer",
            dependencies: [
                "PprofHTTP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "PprofHummingbird",
            dependencies: [
                "PprofHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .target(
            name: "PprofPyroscope",
            dependencies: [
                "Pprof",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .executableTarget(name: "pprof-demo", dependencies: ["Pprof", "PprofHooks", "PprofServer"]),
        // Child processes for tests that need a process of their own (traps, hooks, LD_PRELOAD, stripping).
        .executableTarget(
            name: "pprof-testhelper",
            dependencies: [
                "Pprof", "PprofHooks", "CTestSupport", "PprofServer", "PprofPyroscope",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/pprof-testhelper"
        ),
        // C code the helper's scenarios call (a C library's view of locks, allocation…).
        .target(name: "CTestSupport", dependencies: ["CPprof"], path: "Tests/CTestSupport"),
        // A Swift program that knows nothing of swift-pprof: the LD_PRELOAD tests and the heaptrack
        // comparison run it.
        .executableTarget(
            name: "pprof-plain-workload",
            dependencies: ["PprofWorkload"],
            path: "Tests/pprof-plain-workload"
        ),
        .target(name: "PprofWorkload", path: "Tests/PprofWorkload"),
        // The soak (`pprof-bench soak`): a Hummingbird 2 service, run bare and with everything on.
        .target(
            name: "SoakService",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/Soak/SoakService"
        ),
        .executableTarget(name: "pprof-soak-plain", dependencies: ["SoakService"], path: "Examples/Soak/pprof-soak-plain"),
        .executableTarget(
            name: "pprof-soak-server",
            dependencies: ["SoakService", "Pprof", "PprofHooks", "PprofServer"],
            path: "Examples/Soak/pprof-soak-server"
        ),
        // Benchmarks that print ratios measured side by side in one run.
        .executableTarget(
            name: "pprof-bench",
            dependencies: [
                "Pprof", "PprofHooks", "PprofBenchSupport", "PprofWorkload", "PprofServer", "PprofPyroscope",
                "PprofReport",
            ],
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
        .testTarget(name: "PprofReportTests", dependencies: ["Pprof", "PprofReport", "PprofHTTP", "PprofServer"]),
        .testTarget(
            name: "PprofHTTPTests",
            dependencies: [
                "Pprof", "PprofHTTP", "PprofReport", "PprofServer", "PprofHummingbird",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "PprofPyroscopeTests",
            dependencies: [
                "Pprof", "PprofPyroscope",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["Receiver"]
        ),
    ]
)
