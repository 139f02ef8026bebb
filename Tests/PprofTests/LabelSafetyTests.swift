import Foundation
import Testing

extension LabelTests {
    /// Traces every instruction `pp_labels_current()` executes, under a debugger, in each
    /// situation a profiler's handler can interrupt (no labels, thread labels, a sync scope outside
    /// tasks, a task's scope, nested scopes, async-let and task-group children): the only code
    /// reached is ours, the Concurrency runtime's two pure readers and glibc's `__tls_get_addr`
    /// fast path, with no system call. Anything else (malloc, a lock, the dynamic linker's lazy
    /// binding or TLS slow path) would show up as another function.
    @Suite(.enabled(if: Debugger.usable, "needs gdb with ptrace permission")) struct HandlerSafety {
        static let allowedFunctions: Set<String> = [
            "pp_labels_current", "object_in_force", "tag_of",
            "swift_task_getCurrent", "swift_task_localValueGet",
            "__tls_get_addr", "__tls_get_addr@plt",
        ]

        @Test func ppLabelsCurrentRunsOnlyLockFreeAllocationFreeCode() throws {
            let output = try Debugger.trace(scenario: "labels-handler-situations")
            let traces = output.split(separator: "\n").filter { $0.hasPrefix("TRACE ") }
            let situations = output.split(separator: "\n").filter { $0.hasPrefix("SITUATION ") }
                .map { $0.split(separator: " ") }
            let expectedCount = output.split(separator: "\n").first { $0.hasPrefix("SITUATIONS ") }
                .flatMap { Int($0.split(separator: " ")[1]) }
            #expect(expectedCount == 10 && situations.count == expectedCount)
            #expect(traces.count == expectedCount, "\(output)")

            var everyFunction = Set<String>()
            for trace in traces {
                // "TRACE steps=<n> syscalls=<n> functions=<name>|<name>..." (names may hold spaces).
                let parts = trace.split(separator: " functions=", maxSplits: 1)
                let counts = parts[0].split(separator: " ").dropFirst().map { $0.split(separator: "=") }
                let fields = Dictionary(counts.map { (String($0[0]), $0.count > 1 ? String($0[1]) : "") }) { a, _ in a }
                    .merging(["functions": parts.count > 1 ? String(parts[1]) : ""]) { a, _ in a }
                let functions = Set(fields["functions", default: ""].split(separator: "|").map(String.init))
                everyFunction.formUnion(functions)
                #expect(fields["syscalls"] == "0", "\(trace)")
                #expect(functions.isSubset(of: Self.allowedFunctions), "unexpected code reached: \(trace)")
            }
            // The task path really went through the runtime.
            #expect(
                everyFunction.isSuperset(of: ["swift_task_localValueGet", "swift_task_getCurrent", "__tls_get_addr"])
            )

            let tags = Dictionary(uniqueKeysWithValues: situations.map { (String($0[1]), UInt64($0[2]) ?? 0) })
            #expect(tags["before-any-label-set"] == 0 && tags["no-labels"] == 0 && tags["task-without-labels"] == 0)
            #expect(tags["thread-labels-first-sample"] != 0)
            #expect(tags["thread-labels-sampled-before"] == tags["thread-labels-first-sample"])
            let distinct = [
                "thread-labels-first-sample", "sync-scope-outside-tasks", "task-scope", "task-nested-sync-scope",
            ]
            #expect(Set(distinct.map { tags[$0] ?? 0 }).subtracting([0]).count == 4)
            #expect(tags["async-let-child"] == tags["task-scope"] && tags["group-child"] == tags["task-scope"])
        }
    }
}

/// gdb, driven by a Python script that single-steps `pp_labels_current`.
enum Debugger {
    static let executable: URL? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { URL(fileURLWithPath: String($0)).appendingPathComponent("gdb") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    /// gdb exists and may trace a child (ptrace is often forbidden in containers).
    static let usable: Bool = {
        guard let executable else { return false }
        let output = try? run(executable, ["-batch", "-nx", "-ex", "run", "--args", "/bin/true"])
        return output?.contains("exited normally") ?? false
    }()

    static func trace(scenario: String) throws -> String {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-label-trace-\(getpid()).py")
        try traceScript.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        return try run(
            executable!,
            ["-batch", "-nx", "-x", script.path, "--args", ChildProcess.helperURL.path, scenario]
        )
    }

    private static func run(_ executable: URL, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try withDefaultSignalMask { try process.run() }
        // Never hang the test run on a stuck debugger.
        let watchdog = DispatchWorkItem { process.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 300, execute: watchdog)
        let data = try pipe.fileHandleForReading.readToEnd() ?? Data()
        process.waitUntilExit()
        watchdog.cancel()
        return String(decoding: data, as: UTF8.self)
    }

    /// Stops at every call of pp_labels_current, single-steps it to its return with the other
    /// threads held, and prints the functions its instructions belong to and its system calls.
    static let traceScript = #"""
        import gdb

        gdb.execute("set pagination off")
        gdb.execute("set confirm off")
        gdb.execute("set print thread-events off")
        gdb.Breakpoint("pp_labels_current", internal=True)

        def function_at(pc):
            try:
                block = gdb.block_for_pc(pc)
            except RuntimeError:
                block = None
            while block is not None and block.function is None:
                block = block.superblock
            if block is not None:
                return block.function.name
            text = gdb.execute("info symbol 0x%x" % pc, to_string=True)
            return text.split(" in section")[0].split(" + ")[0].strip()

        def trace():
            frame = gdb.selected_frame()
            return_pc = frame.older().pc()
            entry_sp = int(gdb.parse_and_eval("$sp"))
            arch = frame.architecture()
            functions, syscalls, steps = set(), 0, 0
            gdb.execute("set scheduler-locking step")
            while steps < 20000:
                pc = int(gdb.parse_and_eval("$pc"))
                if steps > 0 and pc == return_pc and int(gdb.parse_and_eval("$sp")) >= entry_sp:
                    break
                if arch.disassemble(pc)[0]["asm"].split()[0] in ("syscall", "svc", "int", "sysenter"):
                    syscalls += 1
                functions.add(function_at(pc))
                gdb.execute("stepi", to_string=True)
                steps += 1
            gdb.execute("set scheduler-locking off")
            print("TRACE steps=%d syscalls=%d functions=%s" % (steps, syscalls, "|".join(sorted(functions))))

        gdb.execute("run")
        while True:
            try:
                frame = gdb.selected_frame()
            except gdb.error:
                break
            if frame.name() == "pp_labels_current":
                trace()
            gdb.execute("continue")
        """#
}
