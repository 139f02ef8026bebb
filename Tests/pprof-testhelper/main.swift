// Child processes for tests: `pprof-testhelper <scenario> [arguments…]`. Each scenario lives in a
// file of its own; register it here.
import Foundation

let scenarios: [String: ([String]) throws -> Void] = [
    "heap-sites": HeapScenarios.sites,
    "heap-churn": HeapScenarios.churn,
    "heap-exact": HeapScenarios.exact,
    "heap-stress": HeapScenarios.stress,
    "heap-lifecycle": HeapScenarios.lifecycle,
    "trap-duplicate-name": RegistryScenarios.duplicateName,
    "trap-empty-name": RegistryScenarios.emptyName,
    "trap-duplicate-value": RegistryScenarios.duplicateValue,
    "trap-add-builtin": RegistryScenarios.addToBuiltin,
    "trap-remove-builtin": RegistryScenarios.removeFromBuiltin,
    "crash-after-prepare": UnwindScenarios.crashAfterPrepare,
    "thread-dump-parked": ThreadScenarios.parkedThreads,
    "tasks-suspended": TaskScenarios.suspended,
    "tasks-labels": TaskLabelScenarios.run,
    "tasks-churn": TaskScenarios.churn,
    "tasks-kinds": TaskKindsScenarios.run,
    "tasks-async-let": AsyncLetScenarios.run,
    "thread-dump-churn": ThreadScenarios.churn,
    "thread-dump-blocker": ThreadScenarios.blocker,
    "thread-dump-async": ThreadScenarios.asyncTask,
    "thread-dump-fork": AuditScenarios.forkWhileDumping,
    "unwind-foreign-segv-handler": AuditScenarios.foreignSegvHandler,
    "threadcreate": ThreadScenarios.threadCreate,
    "sigprof-sharing": SignalSharingScenarios.sigprofSharing,
    "contention-accuracy": ContentionScenarios.accuracy,
    "contention-kinds": ContentionScenarios.kinds,
    "contention-toggle": ContentionScenarios.toggle,
    "contention-fork": ContentionScenarios.forkWhileWaiting,
    "delta-contention": DeltaScenarios.contention,
    "delta-heap": DeltaScenarios.heap,
    "delta-heap-concurrent": DeltaScenarios.heapConcurrent,
    "delta-contention-concurrent": DeltaScenarios.contentionConcurrent,
    "cpu-accuracy": CPUScenarios.accuracy,
    "cpu-windows": CPUScenarios.windows,
    "pyroscope-push": PyroscopeScenarios.push,
    "pyroscope-cpu-reference": PyroscopeScenarios.cpuReference,
    "cpu-shares": CPUScenarios.shares,
    "cpu-equal-threads": CPUScenarios.equalThreads,
    "cpu-aliasing": CPUScenarios.aliasing,
    "cpu-cycles": CPUScenarios.cycles,
    "cpu-short-threads": CPUScenarios.shortThreads,
    "cpu-foreign-signals": CPUScenarios.foreignSignals,
    "cpu-memcpy": CPUScenarios.memcpy,
    "cpu-qsort": CPUScenarios.qsort,
    "cpu-async": CPUScenarios.asyncChain,
    "cpu-perf-after-dump": AuditScenarios.perfAfterDump,
    "audit-stress": AuditScenarios.stress,
    "format-write-closed-pipe": FormatScenarios.writeToClosedPipe,
    "labels-handler-situations": LabelScenarios.handlerSituations,
    "labels-tls-after-dlopen": LabelScenarios.tlsAfterDlopen,
    "labels-cpu": LabelScenarios.cpu,
    "labels-goroutine": LabelScenarios.goroutine,
    "symbols-write-profile": SymbolScenarios.writeProfile,
    "symbols-fuzz": SymbolScenarios.fuzz,
    "symbols-replaced-executable": SymbolScenarios.replacedExecutable,
    "http-serve": HTTPScenarios.serve,
    "wall-request": WallScenarios.request,
    "wall-many-threads": WallScenarios.manyThreads,
    "wall-idle": WallScenarios.idlePool,
    "profiler-work": ProfilerWorkScenarios.run,
]

let arguments = Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first, let scenario = scenarios[name] else {
    FileHandle.standardError.write(
        Data("usage: pprof-testhelper <\(scenarios.keys.sorted().joined(separator: "|"))>\n".utf8)
    )
    exit(64)
}
do {
    try scenario(Array(arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("pprof-testhelper \(name): \(error)\n".utf8))
    exit(1)
}
