import Dispatch
import Foundation
import Pprof
import PprofServer

/// Writes to standard output at once (it may be a pipe, which `print` would buffer).
func say(_ text: String = "") {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// `pprof-demo [--seconds N] [--output DIR]`: run, write every profile, summarize.
enum RunCommand {
    static func run(_ options: Options) async throws {
        DemoSettings.apply()
        var files = try ProfileFiles(directory: URL(fileURLWithPath: options.output))
        let deltas = DeltaProfilers()
        try deltas.markStart()

        let service = DemoService()
        service.startBackgroundThreads()
        let cpuFile = try files.open("cpu.pb.gz")
        try CPUProfile.start(writingTo: cpuFile, rate: DemoSettings.cpuRate)
        say(
            String(
                format:
                    "pprof-demo: running a simulated service for %.1f s, profiling CPU at %d Hz, heap every %d KiB, block ≥ %d µs, mutex 1/%d…",
                options.seconds,
                DemoSettings.cpuRate,
                DemoSettings.heapSampleRate / 1024,
                DemoSettings.blockRate / 1000,
                DemoSettings.mutexFraction
            )
        )
        let started = ContinuousClock.now
        async let serving: Void = service.serveRequests()
        try? await Task.sleep(for: .seconds(options.seconds))
        service.stop()
        await serving
        let elapsed = ContinuousClock.now - started

        var cpu: CPUProfile.Summary?
        do {
            cpu = try CPUProfile.stop()
            try cpuFile.close()
            let size =
                (try? FileManager.default.attributesOfItem(atPath: files.url("cpu.pb.gz").path)[.size] as? Int) ?? 0
            files.noteCPU(ProfileFiles.byteCount(size))
        } catch {
            cpu = nil
            files.noteCPU("FAILED: \(error)")
        }
        // Written while the service's threads still exist, so the thread dump shows them.
        files.writeAll(deltas: deltas)
        service.shutdown()

        var summary = Summary(files: files, shownDirectory: options.output)
        summary.build(
            run: Summary.RunFacts(
                seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
                requests: service.requestsHandled,
                cpu: cpu
            )
        )
        say()
        FileHandle.standardOutput.write(Data(summary.text.utf8))
        if files.written.contains(where: { $0.outcome.hasPrefix("FAILED") }) {
            throw PprofError.invalidArgument("some profiles could not be written (see above)")
        }
    }
}

/// `pprof-demo serve [--port P] [--host H]`: the service runs until SIGINT or SIGTERM, with
/// `/debug/pprof` served by `PprofServer`.
enum ServeCommand {
    static func run(_ options: Options) async throws {
        DemoSettings.apply()
        let server = try await PprofServer.start(configuration: .init(host: options.host, port: options.port))
        // Paced (a few ms between requests per client), so a demo left running does not keep
        // every core busy.
        let service = DemoService(pause: .milliseconds(4))
        service.startBackgroundThreads()

        // Stop cleanly on Ctrl-C or SIGTERM.
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { service.stop() }
            source.resume()
            sources.append(source)
        }

        let base = "http://\(options.host):\(server.port)/debug/pprof"
        say("pprof-demo: serving \(base)/ (the simulated service runs until Ctrl-C)")
        say("  open \(base)/ui in a browser: flame graph, top table, label filter and diff, no Go needed")
        say("  go tool pprof -top '\(base)/profile?seconds=5'")
        say("  go tool pprof -http=127.0.0.1:8080 '\(base)/profile?seconds=10'")
        say("  go tool pprof -top \(base)/heap")
        say("  go tool pprof -top '\(base)/block?seconds=5'")
        say("  go tool pprof -top \(base)/delta_mutex")
        say("  curl '\(base)/goroutine?debug=2'")
        say("port=\(server.port)")

        await service.serveRequests()
        service.shutdown()
        await server.shutdown()
        sources.forEach { $0.cancel() }
        say("pprof-demo: stopped after \(service.requestsHandled.values.reduce(0, +)) requests")
    }
}
