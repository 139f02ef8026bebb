import Glibc
import Pprof
import PprofReport

/// `pprof`: go tool pprof's text reports, the flame graph page and merging, in Swift.
@main
struct PprofCommand {
    static func main() async {
        let arguments: Arguments
        do {
            arguments = try Arguments(Array(CommandLine.arguments.dropFirst()))
        } catch {
            fail("\(error)")
        }
        if arguments.showsHelp {
            print(Arguments.usage)
            return
        }
        do {
            _ = try SampleFilter(arguments.options)  // a bad expression fails before any download
            let loader = ProfileLoader(seconds: arguments.seconds)
            defer { loader.shutdown() }
            var profiles: [ProfileData] = []
            for source in arguments.sources { profiles.append(try await loader.load(source)) }
            var base: ProfileData?
            if let path = arguments.base { base = try await loader.load(path) }
            try run(arguments, profiles, base)
        } catch {
            fail("\(error)")
        }
    }

    static func run(_ arguments: Arguments, _ profiles: [ProfileData], _ base: ProfileData?) throws {
        switch arguments.command {
        case .top, .diff:
            print(try TextReport(profile: profiles[0], base: base, options: arguments.options).top(), terminator: "")
        case .traces:
            print(try TextReport(profile: profiles[0], base: base, options: arguments.options).traces(), terminator: "")
        case .tags:
            print(try TextReport(profile: profiles[0], options: arguments.options).tags(), terminator: "")
        case .flame:
            let data = try FlameGraphData.json(profiles[0], base: base, options: arguments.options)
            let page = UIPage.standalone(data: data, title: arguments.sources[0])
            let path = arguments.output ?? "flame.html"
            try writeFile(path, page)
            print("wrote \(path) (\(page.count / 1024) KB); open it in a browser")
        case .merge:
            let filter = try SampleFilter(arguments.options)
            let merged = try ProfileData(merging: profiles.map { filter.apply(to: $0) })
            let path = arguments.output ?? "merged.pb.gz"
            try writeFile(path, try merged.encoded())
            print("wrote \(path): \(merged.samples.count) samples from \(profiles.count) profiles")
        }
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw ReportError("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, $0.count - written) }
            if result < 0 {
                if errno == EINTR { continue }
                throw ReportError("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            written += result
        }
    }

    static func fail(_ message: String) -> Never {
        var line = "pprof: " + message
        if !line.hasSuffix("\n") { line += "\n" }
        line.withCString { _ = write(2, $0, strlen($0)) }
        exit(1)
    }
}
