import Foundation
import Pprof
import Synchronization

/// Scrapes the profiled service's `/debug/pprof` while it has the load, as Alloy would: CPU in
/// back-to-back 10 s windows on one connection, the other kinds every 10 s on another.
enum Scraper {
    static let kinds = ["heap", "allocs", "block", "mutex", "goroutine", "threadcreate"]

    static func run(port: Int, windows: Int, tally: ScrapeTally, group: DispatchGroup) {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            for _ in 0..<windows { tally.fetch(port: port, kind: "profile", target: "/debug/pprof/profile?seconds=10") }
        }
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            for window in 0..<windows {
                let round = DispatchTime.now().uptimeNanoseconds
                for kind in kinds { tally.fetch(port: port, kind: kind, target: "/debug/pprof/\(kind)") }
                let spent = DispatchTime.now().uptimeNanoseconds - round
                if window < windows - 1, spent < 10_000_000_000 { usleep(UInt32((10_000_000_000 - spent) / 1000)) }
            }
        }
    }
}

/// What the scrapes brought: every response decoded, CPU samples by route label.
final class ScrapeTally: Sendable {
    struct Summary: Codable {
        var cpuWindows = 0
        var cpuSamples: Int64 = 0
        /// CPU samples that carry a `route` label, by its value.
        var samplesByRoute: [String: Int64] = [:]
        /// Decoded profiles by kind, CPU windows included.
        var profiles: [String: Int] = [:]
        var failures: [String] = []
    }

    private let state = Mutex(Summary())

    func summary() -> Summary { state.withLock { $0 } }

    func fetch(port: Int, kind: String, target: String) {
        do {
            let response = try KeepAliveConnection(port: port).fetch(target)
            guard response.status == 200 else {
                throw PprofError.invalidArgument(
                    "status \(response.status): \(String(decoding: response.body.prefix(200), as: UTF8.self))"
                )
            }
            let profile = try ProfileData(decoding: response.body)
            var byRoute: [String: Int64] = [:]
            var samples: Int64 = 0
            if kind == "profile" {
                let index = profile.sampleTypeIndex(named: "samples") ?? 0
                for sample in profile.resolvedSamples() {
                    samples += sample.values[index]
                    if let route = sample.label("route") { byRoute[route, default: 0] += sample.values[index] }
                }
            }
            state.withLock { summary in
                summary.profiles[kind, default: 0] += 1
                if kind == "profile" {
                    summary.cpuWindows += 1
                    summary.cpuSamples += samples
                    summary.samplesByRoute.merge(byRoute, uniquingKeysWith: +)
                }
            }
        } catch {
            state.withLock { $0.failures.append("\(kind): \(error)") }
        }
    }
}

/// The soak's figures: per service, the ratios against the budgets, raw tables and a plot.
struct SoakReport {
    struct ServiceSummary: Codable {
        var requestsPerSecond: Double
        /// Medians over the service's segments of wrk's percentiles.
        var p50Milliseconds: Double
        var p99Milliseconds: Double
        var p999Milliseconds: Double
        var cpuPerRequestMicroseconds: Double
        var errors: Int
        /// `EINTR` that the service's own blocking calls met (and retried).
        var interruptedCalls: Int
        var databaseFailures: Int
        var exit: String
        var rssAfterWarmUpMiB: Double
        var rssEndMiB: Double
        var rssMaxMiB: Double
        /// Least-squares slope of RSS after warm-up.
        var rssSlopeMiBPerMinute: Double
    }

    struct Summary: Codable {
        var secondsPerService: Int
        var plain: ServiceSummary
        var profiled: ServiceSummary
        var throughputRatio: Double
        var p99Ratio: Double
        var cpuPerRequestRatio: Double
        var scrapes: ScrapeTally.Summary
    }

    let segments: [Segment]
    let memory: [MemorySampler.Sample]
    let summary: Summary
    let warmUpEnd: Double

    init(
        settings: SoakBenchmarks.Settings,
        pairs: Int,
        segments: [Segment],
        memory: [MemorySampler.Sample],
        plainStats: [String: Int],
        profiledStats: [String: Int],
        scrapes: ScrapeTally.Summary,
        plainExit: String,
        profiledExit: String
    ) {
        self.segments = segments
        self.memory = memory
        // Warm-up: the first pair of segments, in which the profiled service loads its symbol tables.
        let warmUpEnd = segments.count > 2 ? segments[2].start : (memory.last?.time ?? 0) * 0.2
        self.warmUpEnd = warmUpEnd
        func service(_ name: String, _ column: Int, _ stats: [String: Int], _ exit: String) -> ServiceSummary {
            let mine = segments.filter { $0.service == name }
            let requests = mine.reduce(0) { $0 + $1.wrk.requests }
            let seconds = mine.reduce(0) { $0 + $1.wrk.seconds }
            let settled = memory.filter { $0.time >= warmUpEnd }.map {
                (time: $0.time, mib: Double($0.bytes[column]) / 1_048_576)
            }
            return ServiceSummary(
                requestsPerSecond: Double(requests) / max(seconds, 1e-9),
                p50Milliseconds: Self.median(mine.map(\.wrk.p50)) / 1000,
                p99Milliseconds: Self.median(mine.map(\.wrk.p99)) / 1000,
                p999Milliseconds: Self.median(mine.map(\.wrk.p999)) / 1000,
                cpuPerRequestMicroseconds: mine.reduce(0) { $0 + $1.cpuSeconds } / Double(max(requests, 1)) * 1e6,
                errors: mine.reduce(0) { $0 + $1.wrk.errors },
                interruptedCalls: stats["interruptedCalls"] ?? -1,
                databaseFailures: stats["databaseFailures"] ?? -1,
                exit: exit,
                rssAfterWarmUpMiB: settled.first?.mib ?? 0,
                rssEndMiB: settled.last?.mib ?? 0,
                rssMaxMiB: settled.map(\.mib).max() ?? 0,
                rssSlopeMiBPerMinute: Self.slope(settled.map { ($0.time / 60, $0.mib) })
            )
        }
        let plain = service("plain", 0, plainStats, plainExit)
        let profiled = service("profiled", 1, profiledStats, profiledExit)
        summary = Summary(
            secondsPerService: pairs * settings.segment,
            plain: plain,
            profiled: profiled,
            throughputRatio: profiled.requestsPerSecond / plain.requestsPerSecond,
            p99Ratio: profiled.p99Milliseconds / plain.p99Milliseconds,
            cpuPerRequestRatio: profiled.cpuPerRequestMicroseconds / plain.cpuPerRequestMicroseconds,
            scrapes: scrapes
        )
    }

    var text: String {
        let plain = summary.plain
        let profiled = summary.profiled
        func row(_ label: String, _ a: Double, _ b: Double, _ format: String, budget: String = "") -> String {
            line(label, String(format: format, a), String(format: format, b), String(format: "%.3f", b / a), budget)
        }
        func verdict(_ ok: Bool) -> String { ok ? "within budget" : "OVER BUDGET" }
        var lines = [
            line("", "plain", "profiled", "ratio"),
            row(
                "requests/s",
                plain.requestsPerSecond,
                profiled.requestsPerSecond,
                "%.0f",
                budget: "≥ 0.98: " + verdict(summary.throughputRatio >= 0.98)
            ),
            row("p50 latency (ms)", plain.p50Milliseconds, profiled.p50Milliseconds, "%.2f"),
            row(
                "p99 latency (ms)",
                plain.p99Milliseconds,
                profiled.p99Milliseconds,
                "%.2f",
                budget: "≤ 1.05: " + verdict(summary.p99Ratio <= 1.05)
            ),
            row("p999 latency (ms)", plain.p999Milliseconds, profiled.p999Milliseconds, "%.2f"),
            row("CPU per request (µs)", plain.cpuPerRequestMicroseconds, profiled.cpuPerRequestMicroseconds, "%.1f"),
            row("RSS after warm-up (MiB)", plain.rssAfterWarmUpMiB, profiled.rssAfterWarmUpMiB, "%.1f"),
            row("RSS at the end (MiB)", plain.rssEndMiB, profiled.rssEndMiB, "%.1f"),
            line(
                "RSS slope after (MiB/min)",
                String(format: "%.2f", plain.rssSlopeMiBPerMinute),
                String(format: "%.2f", profiled.rssSlopeMiBPerMinute)
            ),
            line("errors (wrk)", "\(plain.errors)", "\(profiled.errors)"),
            line("EINTR met by the service", "\(plain.interruptedCalls)", "\(profiled.interruptedCalls)"),
            line("database failures", "\(plain.databaseFailures)", "\(profiled.databaseFailures)"),
            "  shutdown: plain \(plain.exit), profiled \(profiled.exit)",
        ]
        let scrapes = summary.scrapes
        let decoded = scrapes.profiles.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(
            separator: ", "
        )
        lines.append("  scrapes decoded: \(decoded); failures: \(scrapes.failures.count)")
        let labelled = scrapes.samplesByRoute.values.reduce(0, +)
        let shares = scrapes.samplesByRoute.sorted { $0.value > $1.value }.map {
            String(format: "%@ %.0f %%", $0.key, Double($0.value) * 100 / Double(max(scrapes.cpuSamples, 1)))
        }.joined(separator: ", ")
        lines.append(
            "  CPU windows: \(scrapes.cpuWindows), \(scrapes.cpuSamples) samples, \(labelled) with a route label (\(shares))"
        )
        for failure in scrapes.failures.prefix(5) { lines.append("  scrape failure: \(failure)") }
        return lines.joined(separator: "\n")
    }

    /// A row of the table: a label, the two services' figures, then the ratio and the budget.
    private func line(_ label: String, _ plain: String, _ profiled: String, _ rest: String...) -> String {
        func right(_ text: String, _ width: Int) -> String {
            String(repeating: " ", count: max(0, width - text.count)) + text
        }
        let cells = [label.padding(toLength: 28, withPad: " ", startingAt: 0), right(plain, 10), right(profiled, 10)]
        return "  "
            + (cells + rest.enumerated().map { $0.offset == 0 ? right($0.element, 8) : $0.element })
            .joined(separator: " ")
    }

    /// `segments.tsv`, `memory.tsv`, `report.txt` and `soak.svg` (RSS and p99 over the run).
    func write(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var table = "start_s\tservice\trequests\tseconds\tp50_us\tp99_us\tp999_us\terrors\tcpu_s\n"
        for segment in segments {
            let wrk = segment.wrk
            table += String(
                format: "%.1f\t%@\t%d\t%.2f\t%.0f\t%.0f\t%.0f\t%d\t%.3f\n",
                segment.start,
                segment.service,
                wrk.requests,
                wrk.seconds,
                wrk.p50,
                wrk.p99,
                wrk.p999,
                wrk.errors,
                segment.cpuSeconds
            )
        }
        try table.write(to: directory.appendingPathComponent("segments.tsv"), atomically: true, encoding: .utf8)
        var rss = "time_s\tplain_rss_kib\tprofiled_rss_kib\n"
        for sample in memory {
            rss += String(format: "%.1f\t%d\t%d\n", sample.time, sample.bytes[0] >> 10, sample.bytes[1] >> 10)
        }
        try rss.write(to: directory.appendingPathComponent("memory.tsv"), atomically: true, encoding: .utf8)
        try (text + "\n").write(to: directory.appendingPathComponent("report.txt"), atomically: true, encoding: .utf8)
        try plot.write(to: directory.appendingPathComponent("soak.svg"), atomically: true, encoding: .utf8)
    }

    /// Two panels over the run's minutes: RSS of both services, and each segment's p99.
    var plot: String {
        let width = 900.0
        let panel = 220.0
        let left = 70.0
        let end = max(memory.last?.time ?? 1, 1)
        func x(_ seconds: Double) -> Double { left + seconds / end * (width - left - 20) }
        let colors = ["plain": "#1f77b4", "profiled": "#d62728"]
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(2 * panel + 90))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="16">RSS (MiB) and p99 latency (ms) over \(String(format: "%.0f", end / 60)) minutes: plain (blue), profiled (red)</text>

            """
        func panelLines(top: Double, maximum: Double, label: String) {
            svg += "<text x=\"8\" y=\"\(top + 12)\">\(label)</text>\n"
            for step in 0...4 {
                let value = maximum * Double(step) / 4
                let y = top + panel - panel * Double(step) / 4
                svg += "<line x1=\"\(left)\" x2=\"\(width - 20)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#ddd\"/>"
                svg +=
                    "<text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">\(String(format: "%.1f", value))</text>\n"
            }
        }
        let rssTop = 30.0
        let rssMaximum = (memory.flatMap(\.bytes).max().map { Double($0) / 1_048_576 } ?? 1) * 1.1
        panelLines(top: rssTop, maximum: rssMaximum, label: "RSS")
        for (column, name) in ["plain", "profiled"].enumerated() {
            let points = memory.map {
                String(
                    format: "%.1f,%.1f",
                    x($0.time),
                    rssTop + panel - Double($0.bytes[column]) / 1_048_576 / rssMaximum * panel
                )
            }
            svg +=
                "<polyline fill=\"none\" stroke=\"\(colors[name]!)\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>\n"
        }
        let latencyTop = rssTop + panel + 40
        let latencyMaximum = (segments.map(\.wrk.p99).max() ?? 1) / 1000 * 1.1
        panelLines(top: latencyTop, maximum: latencyMaximum, label: "p99")
        for segment in segments {
            let y = latencyTop + panel - segment.wrk.p99 / 1000 / latencyMaximum * panel
            svg += String(
                format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"3\"/>\n",
                x(segment.start),
                x(segment.start + segment.wrk.seconds),
                y,
                y,
                colors[segment.service]!
            )
        }
        for minute in stride(from: 0, through: Int(end / 60), by: max(1, Int(end / 60) / 10)) {
            svg +=
                "<text x=\"\(x(Double(minute) * 60))\" y=\"\(latencyTop + panel + 16)\" text-anchor=\"middle\">\(minute) min</text>\n"
        }
        return svg + "</svg>\n"
    }

    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted.count % 2 == 1
            ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static func slope(_ points: [(Double, Double)]) -> Double {
        guard points.count > 1 else { return 0 }
        let meanX = points.reduce(0) { $0 + $1.0 } / Double(points.count)
        let meanY = points.reduce(0) { $0 + $1.1 } / Double(points.count)
        let covariance = points.reduce(0) { $0 + ($1.0 - meanX) * ($1.1 - meanY) }
        let variance = points.reduce(0) { $0 + ($1.0 - meanX) * ($1.0 - meanX) }
        return variance > 0 ? covariance / variance : 0
    }
}
