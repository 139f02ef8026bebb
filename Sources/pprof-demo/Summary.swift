import Foundation
import Pprof

/// The summary printed after a run. Every figure is read back from the files just written, with
/// the library's own decoder (`ProfileData`), so the numbers are the profiles' numbers.
struct Summary {
    let files: ProfileFiles
    /// The directory as the user should type it in the commands shown (relative when possible).
    let shownDirectory: String
    var topCount = 10
    private(set) var text = ""

    init(files: ProfileFiles, shownDirectory: String) {
        self.files = files
        self.shownDirectory = shownDirectory
    }

    /// The code of the demo, as its frames are named in the profiles.
    static let demoModule = "pprof_demo."

    mutating func build(run: RunFacts) {
        line("pprof-demo: \(run.description)")
        line()
        cpuSection()
        heapSection()
        contentionSection()
        threadSection()
        customSection()
        deltaSection()
        filesSection()
        commandsSection()
    }

    struct RunFacts: CustomStringConvertible {
        var seconds: Double
        var requests: [DemoService.Route: Int]
        var cpu: CPUProfile.Summary?

        var description: String {
            let total = requests.values.reduce(0, +)
            let mix = DemoService.Route.allCases.map { "\($0.rawValue) \(requests[$0] ?? 0)" }.joined(separator: ", ")
            var text = String(format: "%.1f s of a simulated service, %d requests (", seconds, total) + mix + ")"
            if let cpu {
                text +=
                    "\nCPU profiler: \(cpu.engine) engine, \(cpu.rate) Hz, \(cpu.samples) samples, \(cpu.lostSamples) lost"
                text += ", \(cpu.threadsSampled) threads sampled"
            }
            return text
        }
    }

    // MARK: Sections

    private mutating func cpuSection() {
        guard let profile = decode("cpu.pb.gz") else { return }
        guard let index = profile.sampleTypeIndex(named: "cpu") else { return line("cpu.pb.gz has no cpu column\n") }
        let samples = profile.resolvedSamples()
        let total = profile.total(at: index)
        let sampleCount = profile.total(of: "samples") ?? 0
        line(
            "CPU: \(seconds(total)) of CPU in \(seconds(profile.durationNanos)), \(sampleCount) samples (cpu.pb.gz)"
        )
        guard total > 0 else { return line() }
        var flat: [String: Int64] = [:]
        var cumulative: [String: Int64] = [:]
        var byRoute: [String: Int64] = [:]
        var demoCumulative: [String: Int64] = [:]
        for sample in samples {
            let value = sample.values[index]
            if let leaf = sample.frames.first { flat[Self.name(of: leaf), default: 0] += value }
            for function in Set(sample.frames.map(Self.name(of:))) { cumulative[function, default: 0] += value }
            let owners = Set(sample.frames.map(\.function))
            for function in owners where Self.isDemoCode(function) && !Self.isHelperFrame(function) {
                demoCumulative[function, default: 0] += value
            }
            byRoute[sample.label("route") ?? "(no route label)", default: 0] += value
        }
        line("  top \(topCount) functions by flat CPU (as `go tool pprof -top`):")
        line("  " + pad("flat", 8) + pad("flat%", 8) + pad("cum%", 8) + "function")
        for (function, value) in flat.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }).prefix(topCount) {
            line(
                "  " + pad(seconds(value), 8) + pad(percent(value, total), 8)
                    + pad(percent(cumulative[function] ?? 0, total), 8) + short(function)
            )
        }
        line("  the demo's own functions by cumulative CPU (async funclets counted as their function):")
        for (function, value) in demoCumulative.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }).prefix(8) {
            line("  " + pad(seconds(value), 8) + pad(percent(value, total), 8) + short(function))
        }
        line("  by label route (`-tagfocus route=/search`):")
        for (route, value) in byRoute.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) {
            line("  " + pad(seconds(value), 8) + pad(percent(value, total), 8) + route)
        }
        line()
    }

    private mutating func heapSection() {
        guard let profile = decode("heap.pb.gz") else { return }
        guard let space = profile.sampleTypeIndex(named: "inuse_space"),
            let objects = profile.sampleTypeIndex(named: "inuse_objects"),
            let allocated = profile.sampleTypeIndex(named: "alloc_space")
        else { return line("heap.pb.gz has no inuse columns\n") }
        let total = profile.total(at: space)
        line(
            "Heap: \(bytes(total)) in use, \(bytes(profile.total(at: allocated))) allocated since start "
                + "(heap.pb.gz, sampled every \(bytes(profile.period)))"
        )
        var sites: [String: (space: Int64, objects: Int64)] = [:]
        for sample in profile.resolvedSamples() where sample.values[space] > 0 {
            let site = Self.site(of: sample)
            sites[site, default: (0, 0)].space += sample.values[space]
            sites[site, default: (0, 0)].objects += sample.values[objects]
        }
        line("  top in-use sites (first function of the demo, or of the profiler itself):")
        line("  " + pad("inuse", 10) + pad("%", 8) + pad("objects", 9) + "site")
        for (site, value) in sites.sorted(by: { ($0.value.space, $1.key) > ($1.value.space, $0.key) }).prefix(5) {
            line(
                "  " + pad(bytes(value.space), 10) + pad(percent(value.space, total), 8) + pad("\(value.objects)", 9)
                    + short(site)
            )
        }
        line()
    }

    private mutating func contentionSection() {
        for (file, title) in [
            ("block.pb.gz", "Block (where threads waited)"), ("mutex.pb.gz", "Mutex (whose unlocks made others wait)"),
        ] {
            guard let profile = decode(file) else { continue }
            guard let delay = profile.sampleTypeIndex(named: "delay"),
                let count = profile.sampleTypeIndex(named: "contentions")
            else { continue }
            let total = profile.total(at: delay)
            line("\(title): \(milliseconds(total)) in \(profile.total(at: count)) contentions (\(file))")
            var sites: [String: (delay: Int64, count: Int64)] = [:]
            for sample in profile.resolvedSamples() {
                let primitive = sample.frames.first.map { short($0.function, limit: 28) } ?? "?"
                let key = "\(pad(primitive, 30))\(short(Self.site(of: sample), limit: 60))"
                sites[key, default: (0, 0)].delay += sample.values[delay]
                sites[key, default: (0, 0)].count += sample.values[count]
            }
            line("  " + pad("delay", 10) + pad("%", 8) + pad("count", 8) + pad("primitive", 30) + "site")
            for (key, value) in sites.sorted(by: { ($0.value.delay, $1.key) > ($1.value.delay, $0.key) }).prefix(4) {
                line(
                    "  " + pad(milliseconds(value.delay), 10) + pad(percent(value.delay, total), 8)
                        + pad("\(value.count)", 8) + key
                )
            }
            line()
        }
    }

    private mutating func threadSection() {
        guard let threads = decode("goroutine.pb.gz"), let created = decode("threadcreate.pb.gz") else { return }
        let live = threads.total(at: 0)
        line("Threads: \(live) now (goroutine.pb.gz), \(created.total(at: 0)) created so far (threadcreate.pb.gz)")
        // Thread names and states come from the debug=2 dump.
        if let dump = try? String(contentsOf: files.url("goroutine-debug2.txt"), encoding: .utf8) {
            var byName: [String: Int] = [:]
            for header in dump.split(separator: "\n") where header.hasPrefix("thread ") {
                let parts = header.split(separator: "\"")
                guard parts.count >= 3 else { continue }
                let name = parts[1].replacingOccurrences(of: #"[-#]?\d+$"#, with: "-N", options: .regularExpression)
                let state = parts[2].drop { $0 == " " }.split(separator: "]").first.map { $0 + "]" } ?? ""
                byName["\(name) \(state)", default: 0] += 1
            }
            line("  by name and state (goroutine-debug2.txt):")
            for (name, count) in byName.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }).prefix(8) {
                line("  " + pad("\(count) ×", 6) + name)
            }
        }
        var creators: [String: Int64] = [:]
        for sample in created.resolvedSamples() { creators[Self.site(of: sample), default: 0] += sample.values[0] }
        line("  created by:")
        for (site, count) in creators.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }).prefix(4) {
            line("  " + pad("\(count) ×", 6) + short(site))
        }
        line()
    }

    private mutating func customSection() {
        let file = "\(ConnectionPool.profile.name).pb.gz"
        guard let profile = decode(file) else { return }
        var sites: [String: Int64] = [:]
        for sample in profile.resolvedSamples() { sites[Self.site(of: sample), default: 0] += sample.values[0] }
        let where_ = sites.sorted { $0.value > $1.value }.map { "\($0.value) at \(short($0.key, limit: 60))" }
        line("Custom profile \(ConnectionPool.profile.name): \(profile.total(at: 0)) open connections (\(file))")
        for site in where_.prefix(3) { line("  " + site) }
        line()
    }

    private mutating func deltaSection() {
        guard let heap = decode("delta_heap.pb.gz"), let block = decode("delta_block.pb.gz"),
            let mutex = decode("delta_mutex.pb.gz")
        else { return }
        line("Deltas over the run (godeltaprof's delta_heap, delta_block, delta_mutex):")
        line(
            "  allocated \(bytes(heap.total(of: "alloc_space") ?? 0)), in use \(bytes(heap.total(of: "inuse_space") ?? 0))"
        )
        line(
            "  blocked \(milliseconds(block.total(of: "delay") ?? 0)), lock waits charged \(milliseconds(mutex.total(of: "delay") ?? 0))"
        )
        line()
    }

    private mutating func filesSection() {
        line("Files in \(shownDirectory)/:")
        let rows = files.written.map { "\($0.file) \($0.outcome)" }
        var row = " "
        for entry in rows {
            if row.count + entry.count > 96 {
                line(row)
                row = " "
            }
            row += " " + entry + ","
        }
        if row.count > 1 { line(String(row.dropLast())) }
        line()
    }

    private mutating func commandsSection() {
        let d = shownDirectory
        let pprof = "go tool pprof"
        line("Explore them with go tool pprof:")
        for command in [
            "\(pprof) -top \(d)/cpu.pb.gz",
            "\(pprof) -http=127.0.0.1:8080 \(d)/cpu.pb.gz      # flame graph: View > Flame Graph",
            "\(pprof) -tagfocus route=/search -top \(d)/cpu.pb.gz",
            "\(pprof) -tags \(d)/cpu.pb.gz",
            "\(pprof) -sample_index=inuse_space -top \(d)/heap.pb.gz",
            "\(pprof) -sample_index=alloc_space -top \(d)/allocs.pb.gz",
            "\(pprof) -top \(d)/block.pb.gz",
            "\(pprof) -top \(d)/mutex.pb.gz",
            "\(pprof) -traces \(d)/demo.connections.pb.gz",
            "cat \(d)/goroutine-debug2.txt",
        ] {
            line("  " + command)
        }
    }

    // MARK: Helpers

    private mutating func decode(_ file: String) -> ProfileData? {
        do {
            return try ProfileData(decoding: [UInt8](Data(contentsOf: files.url(file))))
        } catch {
            line("\(file): cannot be read: \(error)\n")
            return nil
        }
    }

    /// A frame's function, or where an address without a symbol is (a PLT stub, stripped code).
    static func name(of frame: ProfileData.Frame) -> String {
        frame.function.isEmpty ? "[no symbol in \((frame.mappingFile as NSString).lastPathComponent)]" : frame.function
    }

    static func isDemoCode(_ function: String) -> Bool {
        function.contains(demoModule)
    }

    /// The demo's or the profiler's own code (the profiler is linked into the demo).
    static func isPackageCode(_ function: String) -> Bool {
        function.contains(demoModule) || function.contains("Pprof.")
    }

    /// Closures, thunks and `defer` bodies: frames that say less than the function they are in.
    static func isHelperFrame(_ function: String) -> Bool {
        ["closure", "implicit closure", "partial apply", "$defer", "reabstraction thunk", "thunk for"].contains {
            function.hasPrefix($0)
        }
    }

    /// Where a sample comes from: the first named function of the demo or the profiler (where it
    /// allocated, waited, started a thread), else the first frame after the leaf's primitive.
    static func site(of sample: ProfileData.ResolvedSample) -> String {
        let names = sample.frames.map(\.function)
        if let own = names.first(where: { isPackageCode($0) && !isHelperFrame($0) })
            ?? names.first(where: isPackageCode)
        {
            return isDemoCode(own) ? own : own + " [profiler]"
        }
        return names.dropFirst().first ?? names.first ?? "?"
    }

    private mutating func line(_ text: String = "") {
        self.text += text + "\n"
    }

    /// A name cut to `limit` characters. Profiles carry the short Swift form already
    /// (`Profile.functionNames`: funclets and specializations folded into their function).
    func short(_ name: String, limit: Int = 80) -> String {
        name.count <= limit ? name : String(name.prefix(limit - 1)) + "…"
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    private func percent(_ value: Int64, _ total: Int64) -> String {
        total == 0 ? "-" : String(format: "%.1f%%", Double(value) * 100 / Double(total))
    }

    private func seconds(_ nanoseconds: Int64) -> String {
        String(format: "%.2fs", Double(nanoseconds) / 1e9)
    }

    private func milliseconds(_ nanoseconds: Int64) -> String {
        String(format: "%.1fms", Double(nanoseconds) / 1e6)
    }

    private func bytes(_ count: Int64) -> String {
        if count >= 1 << 20 { return String(format: "%.1f MiB", Double(count) / 1_048_576) }
        if count >= 1 << 10 { return String(format: "%.0f KiB", Double(count) / 1024) }
        return "\(count) B"
    }
}
