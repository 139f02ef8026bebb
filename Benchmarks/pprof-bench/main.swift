// Benchmarks that print ratios measured side by side in one run: `pprof-bench <name>`, or all of
// them without an argument. Build with `-c release`. Each benchmark lives in a file of its own;
// register it here.
import Foundation

let benchmarks: [(name: String, run: () throws -> Void)] = [
    ("unwind", UnwindBenchmarks.run),
    ("threads", ThreadBenchmarks.run),
    ("contention", ContentionBenchmarks.run),
    ("cpu", CPUBenchmarks.run),
    ("delta", DeltaBenchmarks.run),
    ("format", FormatBenchmarks.run),
    ("labels", LabelBenchmarks.run),
    ("heap", HeapBenchmarks.run),
    ("symbols", SymbolBenchmarks.run),
    ("http", HTTPBenchmarks.run),
    ("wall", WallBenchmarks.run),
    ("push", PushBenchmarks.run),
    ("ui", UIBenchmarks.run),
    ("tasks", TaskBenchmarks.run),
    ("footprint", FootprintBenchmarks.run),
]
/// Run only when named: the soak takes 20 minutes.
let namedOnly: [(name: String, run: () throws -> Void)] = [("soak", SoakBenchmarks.run)]

let selected = CommandLine.arguments.dropFirst()
let unknown = selected.filter { name in !(benchmarks + namedOnly).contains { $0.name == name } }
guard unknown.isEmpty else {
    print(
        "unknown benchmark \(unknown.joined(separator: ", ")); known: \((benchmarks + namedOnly).map(\.name).joined(separator: ", "))"
    )
    exit(64)
}
for benchmark in benchmarks + namedOnly
where selected.contains(benchmark.name) || (selected.isEmpty && !namedOnly.contains { $0.name == benchmark.name }) {
    print("== \(benchmark.name)")
    try benchmark.run()
}
