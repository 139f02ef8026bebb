import Foundation
import Logging
import Pprof
import PprofPyroscope
import ServiceLifecycle
import Synchronization
import Testing

/// What the exporter pushes, decoded by the loopback receiver (protoc-generated classes for the
/// push API, the standard multipart parser for /ingest) and then by our decoder and go tool pprof.
@Suite(.serialized, .enabled(if: PyroscopeReceiver.isAvailable, "needs python3 with grpcio-tools and protobuf"))
struct ExporterDeliveryTests {
    /// In this process: CPU windows and goroutine snapshots every second, with auth, tenant,
    /// headers, name labels and tags; each window starts where the previous one ended and shows
    /// the labelled workload.
    @Test func pushCarriesLabelsAuthAndContiguousWindows() async throws {
        let receiver = PyroscopeReceiver()
        try receiver.start()
        defer { receiver.stop() }
        var configuration = PyroscopeConfiguration(
            serverURL: receiver.url + "/",
            applicationName: "checkout{env=prod}",
            tags: ["region": "eu"],
            authentication: .basic(user: "1234", password: "s3cret"),
            tenantID: "team-a",
            headers: ["X-Extra": "yes"],
            profiles: [.cpu, .goroutine],
            uploadInterval: .seconds(1)
        )
        configuration.shutdownDeadline = .seconds(10)
        let exporter = try PyroscopeExporter(configuration: configuration)
        let statistics = try await runExporter(exporter, for: 5) { deadline in
            withProfileLabels(ProfileLabels(["route": "/pay"])) { blackHole(payRoute(until: deadline)) }
        }

        let requests = try await receiver.received()
        #expect(requests.count == statistics.uploads)
        #expect(statistics.cycles >= 3, "a cycle a second (collection CPU \(statistics.collectionCPUNanos) ns)")
        #expect(statistics.profilesTaken == statistics.profilesUploaded && statistics.profilesDropped == 0)
        var windows: [ProfileData] = []
        for request in requests {
            #expect(request.path == "/push.v1.PusherService/Push")
            #expect(request.headers["content-type"] == "application/proto")
            #expect(request.headers["authorization"] == "Basic " + Data("1234:s3cret".utf8).base64EncodedString())
            #expect(request.headers["x-scope-orgid"] == "team-a")
            #expect(request.headers["x-extra"] == "yes")
            for series in request.series {
                #expect(series.labelOrder.first == "__name__")
                #expect(series.labels["service_name"] == "checkout")
                #expect(series.labels["env"] == "prod" && series.labels["region"] == "eu")
                #expect(series.labels["__delta__"] == nil)
                #expect(series.profiles.count == 1)
                let profile = try ProfileData(decoding: try #require(series.profiles.first))
                switch series.labels["__name__"] {
                case "process_cpu":
                    #expect(profile.sampleTypes.map(\.description) == ["samples/count", "cpu/nanoseconds"])
                    windows.append(profile)
                case "goroutines":
                    #expect(profile.sampleTypes.first?.type == "goroutine")
                default:
                    Issue.record("unexpected series \(series.labels)")
                }
            }
        }
        #expect(windows.count == statistics.cycles)
        windows.sort { $0.timeNanos < $1.timeNanos }
        for (previous, next) in zip(windows, windows.dropFirst()) {
            let gap = next.timeNanos - (previous.timeNanos + previous.durationNanos)
            #expect(abs(gap) < 5_000_000, "windows \(gap) ns apart")
        }
        let labelled = windows.dropLast().map { window in
            window.resolvedSamples().filter { $0.functionNames.contains { $0.contains("payRoute") } }
        }
        for samples in labelled {
            #expect(!samples.isEmpty)
            #expect(samples.allSatisfy { $0.label("route") == "/pay" })
        }

        if GoTool.isAvailable, let window = windows.dropLast().last {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString).pb.gz").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            try Data(try window.encoded()).write(to: URL(fileURLWithPath: path))
            let top = try GoTool.pprof(["-top", "-tagfocus", "route=/pay", path])
            #expect(top.status == 0 && top.output.contains("payRoute"), "\(top.output)")
        }
    }

    /// In a child that links the hooks: over 5 s of allocations and contention, the pushed heap
    /// deltas' alloc_* add up exactly to the cumulative heap profile's at the workload's stacks,
    /// the last delta's inuse_* equals it, and the block and mutex deltas add up to theirs.
    @Test(arguments: [PyroscopeConfiguration.API.push, .ingest])
    func deltasAddUpToTheCumulativeProfiles(api: PyroscopeConfiguration.API) async throws {
        let receiver = PyroscopeReceiver()
        try receiver.start()
        defer { receiver.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("push-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let json = try await TestHelper.run([
            "pyroscope-push", directory.path, "server=\(receiver.url)", "api=\(api)", "workload=memory", "seconds=5",
        ])
        let statistics = json["statistics"] as? [String: Int] ?? [:]
        #expect(statistics["profilesDropped"] == 0)
        #expect(statistics["profilesTaken"] == statistics["profilesUploaded"])

        var deltas: [String: [ProfileData]] = [:]
        for request in try await receiver.received() {
            switch api {
            case .push:
                for series in request.series {
                    let name = series.labels["__name__"] ?? ""
                    #expect(series.labels["service_name"] == "pushtest")
                    #expect(series.labels["env"] == "test" && series.labels["region"] == "local")
                    if name != "goroutines" { #expect(series.labels["__delta__"] == "false") }
                    for bytes in series.profiles { deltas[name, default: []].append(try ProfileData(decoding: bytes)) }
                }
            case .ingest:
                #expect(request.path == "/ingest")
                #expect(request.query["name"] == "pushtest{env=test,region=local}")
                #expect(request.query["spyName"] == "swiftspy")
                let from = Int64(request.query["from"] ?? "") ?? 0
                let until = Int64(request.query["until"] ?? "") ?? 0
                #expect(String(from).count == 19 && until > from)
                let profile = try ProfileData(decoding: try #require(request.profile))
                let types = Set(profile.sampleTypes.map(\.type))
                let config = request.sampleTypeConfig ?? [:]
                let name: String
                if types.contains("alloc_space") {
                    name = "memory"
                    #expect((config["inuse_space"] as? [String: String])?["aggregation"] == "average")
                } else if types.contains("goroutine") {
                    name = "goroutines"
                } else {
                    let displayName = (config["contentions"] as? [String: String])?["display-name"] ?? ""
                    #expect(displayName == "block_count" || displayName == "mutex_count", "\(config)")
                    name = displayName.hasPrefix("block") ? "block" : "mutex"
                }
                deltas[name, default: []].append(profile)
            }
        }
        #expect(Set(deltas.keys) == ["memory", "block", "mutex", "goroutines"])
        func cumulative(_ kind: String) throws -> ProfileData {
            try ProfileData(decoding: [UInt8](Data(contentsOf: directory.appendingPathComponent("\(kind).pb.gz"))))
        }
        let heap = try cumulative("heap")
        let memory = (deltas["memory"] ?? []).sorted { $0.timeNanos < $1.timeNanos }
        for site in ["deltaHeapSiteA", "deltaHeapSiteB"] {
            for type in ["alloc_objects", "alloc_space"] {
                let pushed = memory.reduce(0) { $0 + $1.total(of: type, where: site) }
                #expect(pushed == heap.total(of: type, where: site) && pushed > 0, "\(site) \(type)")
            }
            for type in ["inuse_objects", "inuse_space"] {
                #expect(
                    memory.last?.total(of: type, where: site) == heap.total(of: type, where: site),
                    "\(site) \(type)"
                )
            }
        }
        #expect(heap.total(of: "inuse_space", where: "deltaHeapSiteA") > 0)
        for (kind, site) in [("block", "waitSiteB"), ("mutex", "releaseSiteB")] {
            let truth = try cumulative(kind)
            for type in ["contentions", "delay"] {
                let pushed = (deltas[kind] ?? []).reduce(0) { $0 + $1.total(of: type, where: site) }
                #expect(pushed == truth.total(of: type, where: site) && pushed > 0, "\(kind) \(type)")
            }
        }
    }

    /// Two children side by side for 60 s with the same workload: one pushes 10 s CPU windows, the
    /// other takes one 60 s CPU profile. The windows' CPU, summed, and the single profile's agree
    /// within 5 %, per function, as shares of the CPU time each workload measured.
    @Test func cpuWindowsOverAMinuteMatchOneProfile() async throws {
        let receiver = PyroscopeReceiver()
        try receiver.start()
        defer { receiver.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("push-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let referencePath = directory.appendingPathComponent("reference.pb.gz").path
        async let pushed = TestHelper.run([
            "pyroscope-push", directory.path, "server=\(receiver.url)", "workload=cpu", "seconds=60", "interval=10",
        ])
        async let reference = TestHelper.run(["pyroscope-cpu-reference", referencePath, "seconds=60"])
        let (pushedRun, referenceRun) = try await (pushed, reference)

        let windows = try await receiver.received().flatMap(\.series).flatMap(\.profiles).map {
            try ProfileData(decoding: $0)
        }
        #expect(windows.count >= 6)
        let single = try ProfileData(decoding: [UInt8](Data(contentsOf: URL(fileURLWithPath: referencePath))))
        let pushedCPU = pushedRun["threadCPUNanos"] as? [String: Int] ?? [:]
        let referenceCPU = referenceRun["threadCPUNanos"] as? [String: Int] ?? [:]
        for function in ["pushHotSpot", "pushWarmSpot"] {
            let windowShare =
                Double(windows.reduce(0) { $0 + $1.total(of: "cpu", where: function) })
                / Double(pushedCPU[function] ?? 1)
            let singleShare = Double(single.total(of: "cpu", where: function)) / Double(referenceCPU[function] ?? 1)
            print("\(function): windows sampled \(windowShare) of its thread CPU, one profile \(singleShare)")
            #expect(abs(windowShare - singleShare) <= 0.05 * singleShare, "\(function)")
            #expect(windowShare > 0.5)
        }
    }
}

@inline(never) func payRoute(until deadline: ContinuousClock.Instant) -> UInt64 {
    var x: UInt64 = 0xabcdef
    while ContinuousClock.now < deadline {
        for i in 0..<50_000 { x = (x &* 0x5851_F42D_4C95_7F2D) ^ UInt64(i) }
    }
    return x
}

@inline(never) func blackHole(_ value: UInt64) {
    if value == 0x1234_5678_9abc_def0 { print("") }
}

/// Runs `exporter` in a ServiceGroup while `work` runs on a thread of its own until a deadline
/// `seconds` away, then shuts it down gracefully and returns its statistics.
func runExporter(
    _ exporter: PyroscopeExporter,
    for seconds: Double,
    work: @escaping @Sendable (ContinuousClock.Instant) -> Void = { _ in }
) async throws -> PyroscopeExporterStatistics {
    let group = ServiceGroup(services: [exporter], logger: Logger(label: "test"))
    async let running: Void = group.run()
    while !exporter.statistics.started { try await Task.sleep(for: .milliseconds(20)) }
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    await withCheckedContinuation { continuation in
        Thread {
            work(deadline)
            continuation.resume()
        }.start()
    }
    try await Task.sleep(until: deadline)
    await group.triggerGracefulShutdown()
    try await running
    return exporter.statistics
}
