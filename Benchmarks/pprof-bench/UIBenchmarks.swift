// The viewer's data: `ui/data`'s JSON (FlameGraphData) for the format benchmark's profile of 100k
// samples over 10k stacks of real addresses, decoded as the server decodes what it wrote.
// Budget (issue 15): ≤ 100 ms. The page's drawing time is measured in the browser test
// (ViewerBrowserTests), which prints it. CPU time of this thread, median and minimum of 7 runs.
import Foundation
@_spi(Benchmarks) import Pprof
import PprofReport

enum UIBenchmarks {
    static func run() throws {
        let (types, samples, description) = FormatBenchmarks.syntheticSamples()
        print(description)
        let built = FormatBenchmarks.build(samples, types, FormatBenchmarkSupport.Symbols())
        let profile = try ProfileData(decoding: try built.encoded())
        var json: [UInt8] = []
        let build = try FormatBenchmarks.timing(FormatBenchmarks.repetitions) {
            json = try FlameGraphData.json(profile)
        }
        let filtered = try FormatBenchmarks.timing(FormatBenchmarks.repetitions) {
            var options = ReportOptions()
            options.tagFocus = "route=resource[12]"
            json = try FlameGraphData.json(profile, options: options)
        }
        let all = try FlameGraphData.json(profile)
        let page = UIPage.served(profiles: ["profile", "heap"])
        print(
            "  ui/data JSON: \(FormatBenchmarks.ms(build)) → \(FormatBenchmarks.kib(all.count)); "
                + "with a label filter \(FormatBenchmarks.ms(filtered)); page \(FormatBenchmarks.kib(page.count))"
        )
        print(
            "  budget: JSON \(FormatBenchmarks.ms(build)) of 100 ms "
                + "(\(FormatBenchmarks.percent(build.median, 0.1))); page \(page.count) of 81,920 bytes"
        )
        _ = json
    }
}
