import Foundation
import Synchronization

/// External tools the symbolization tests build fixtures with or compare against. Each is optional:
/// a test that needs a missing one skips (returns) rather than failing.
enum Tools {
    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// The toolchain's llvm-symbolizer (next to the real `swiftc`), else the one on PATH.
    static var llvmSymbolizer: String? {
        if let swiftc = find("swiftc") {
            let directory = URL(fileURLWithPath: swiftc).resolvingSymlinksInPath().deletingLastPathComponent()
            let candidate = directory.appendingPathComponent("llvm-symbolizer").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return find("llvm-symbolizer")
    }

    struct Output {
        var status: Int32
        var data: Data
        var stderr: String
        var stdout: String { String(decoding: data, as: UTF8.self) }
    }

    /// Runs a tool to completion, feeding `input` to its standard input.
    static func run(
        _ tool: String,
        _ arguments: [String],
        input: String = "",
        environment: [String: String] = [:],
        directory: URL? = nil
    ) throws -> Output {
        try run(tool, arguments, bytes: Array(input.utf8), environment: environment, directory: directory)
    }

    static func run(
        _ tool: String,
        _ arguments: [String],
        bytes input: [UInt8],
        environment: [String: String] = [:],
        directory: URL? = nil
    ) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // Both pipes are drained while the input is written, so no side can block on a full pipe.
        let box = OutputBox()
        let group = DispatchGroup()
        for (pipe, isError) in [(stdout, false), (stderr, true)] {
            group.enter()
            DispatchQueue.global().async {
                let data = (try? pipe.fileHandleForReading.readToEnd()) ?? Data()
                box.set(data, isError: isError)
                group.leave()
            }
        }
        try stdin.fileHandleForWriting.write(contentsOf: Data(input))
        try stdin.fileHandleForWriting.close()
        group.wait()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus,
            data: box.data(isError: false),
            stderr: String(decoding: box.data(isError: true), as: UTF8.self)
        )
    }

    private final class OutputBox: Sendable {
        private let storage = Mutex<[Bool: Data]>([:])
        func set(_ value: Data, isError: Bool) { storage.withLock { $0[isError] = value } }
        func data(isError: Bool) -> Data { storage.withLock { $0[isError] ?? Data() } }
    }
}

/// Programs compiled at test time (optimized, with debug info), once per test process.
enum Fixtures {
    /// A fresh directory for this test process, removed when it exits.
    static let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-symbols-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: Fixtures.directory) }
        return url
    }()

    private static let built = Mutex<[String: String?]>([:])

    /// Compiles `source` (written to `name`) with `compiler` and `flags` into `output`; `nil` if
    /// the compiler is missing or fails. Cached by output name.
    static func build(
        _ output: String,
        source: String,
        name: String,
        compiler: String,
        flags: [String]
    ) throws -> String? {
        if let cached = built.withLock({ $0[output] }) { return cached }
        guard let tool = Tools.find(compiler) else {
            built.withLock { $0[output] = .some(nil) }
            return nil
        }
        let sourcePath = directory.appendingPathComponent(name).path
        let outputPath = directory.appendingPathComponent(output).path
        try source.write(toFile: sourcePath, atomically: true, encoding: .utf8)
        let result = try Tools.run(tool, flags + [sourcePath, "-o", outputPath])
        let path: String? = result.status == 0 ? outputPath : nil
        if path == nil { print("fixture \(output) did not build: \(result.stderr)") }
        built.withLock { $0[output] = .some(path) }
        return path
    }

    /// The 1-based line of the first line of `source` containing `marker`.
    static func line(of marker: String, in source: String) -> Int {
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        return (lines.firstIndex { $0.contains(marker) } ?? -1) + 1
    }

    /// Swift code whose always-inline helpers end up inlined, two levels deep, into `hashAll`.
    static let swiftSource = """
        @inline(__always) func mix(_ x: UInt64) -> UInt64 {
            return (x ^ (x >> 33)) &* 0xff51_afd7_ed55_8ccd  // MIX-BODY
        }

        @inline(__always) func twice(_ x: UInt64) -> UInt64 {
            return mix(mix(x) &+ 1)  // TWICE-CALLS-MIX
        }

        @inline(never) func hashAll(_ values: [UInt64]) -> UInt64 {
            var total: UInt64 = 0
            for value in values {
                total = total &+ twice(value)  // HASHALL-CALLS-TWICE
            }
            return total
        }

        @inline(never) func fixtureMain() {
            let values = (0..<UInt64(CommandLine.arguments.count + 1000)).map { $0 &* 7 }
            print(hashAll(values))
        }

        fixtureMain()

        """

    /// The same shape in C, for GCC's and Clang's DWARF (4 and 5, compressed or not).
    static let cSource = """
        #include <stdio.h>

        static inline __attribute__((always_inline)) unsigned long mix(unsigned long x) {
            return (x ^ (x >> 33)) * 0xff51afd7ed558ccdUL; /* MIX-BODY */
        }

        static inline __attribute__((always_inline)) unsigned long twice(unsigned long x) {
            return mix(mix(x) + 1); /* TWICE-CALLS-MIX */
        }

        __attribute__((noinline)) unsigned long hash_all(const unsigned long *values, int count) {
            unsigned long total = 0;
            for (int i = 0; i < count; i++) {
                total += twice(values[i]); /* HASHALL-CALLS-TWICE */
            }
            return total;
        }

        int main(int argc, char **argv) {
            (void)argv;
            unsigned long values[1000];
            for (int i = 0; i < 1000; i++) values[i] = (unsigned long)(i * 7 + argc);
            printf("%lu\\n", hash_all(values, 1000));
            return 0;
        }

        """

    /// C++ names to demangle: a member function, a template, an inlined helper.
    static let cppSource = """
        #include <cstdio>

        namespace fixture {
        template <typename T> struct Box {
            T value;
            __attribute__((noinline)) T scaled(T factor) const { return value * factor + 1; }
        };

        inline __attribute__((always_inline)) int bump(int x) { return x * 3 + 1; } // BUMP-BODY

        __attribute__((noinline)) int compute(int seed) {
            Box<int> box{seed};
            return bump(box.scaled(seed)); // COMPUTE-CALLS-BUMP
        }
        } // namespace fixture

        int main(int argc, char **) {
            std::printf("%d\\n", fixture::compute(argc));
            return 0;
        }

        """

    /// A shared library to `dlopen` and `dlclose`.
    static let librarySource = """
        __attribute__((noinline)) int pprof_fixture_library_function(int x) {
            return x * 5 + 3; /* LIBRARY-BODY */
        }

        """
}

/// One frame as `llvm-symbolizer --inlining --output-style=JSON` reports it.
struct ReferenceFrame: Equatable, CustomStringConvertible {
    var function: String
    var file: String
    var line: Int
    var startLine: Int

    var description: String { "\(function) \(file):\(line) (start \(startLine))" }

    /// Equal function, line and start line, and file where there is a line (without one,
    /// llvm-symbolizer guesses a file from `STT_FILE` symbols).
    func matches(_ other: ReferenceFrame) -> Bool {
        function == other.function && line == other.line && startLine == other.startLine
            && (line == 0 || file == other.file)
    }

    /// Symbolizes file `addresses` of `binary`, keyed by address; nil without llvm-symbolizer.
    static func llvmSymbolizer(_ binary: String, addresses: [UInt64]) throws -> [UInt64: [ReferenceFrame]]? {
        try llvmSymbolizer(object: ["--obj=\(binary)"], addresses: addresses)
    }

    /// Symbolizes file `addresses` of the binary whose GNU build ID is `buildID`, found only
    /// through that ID under `debugDirectory` (`.build-id/xx/rest.debug`); nil without a
    /// llvm-symbolizer that looks up build IDs.
    static func llvmSymbolizer(
        buildID: String,
        debugDirectory: String,
        addresses: [UInt64]
    ) throws -> [UInt64: [ReferenceFrame]]? {
        guard let tool = Tools.llvmSymbolizer,
            try Tools.run(tool, ["--help"]).stdout.contains("--build-id")
        else { return nil }
        return try llvmSymbolizer(
            object: ["--build-id=\(buildID)", "--debug-file-directory=\(debugDirectory)"],
            addresses: addresses
        )
    }

    private static func llvmSymbolizer(object: [String], addresses: [UInt64]) throws -> [UInt64: [ReferenceFrame]]? {
        guard let tool = Tools.llvmSymbolizer else { return nil }
        let input = addresses.map { "0x" + String($0, radix: 16) }.joined(separator: "\n") + "\n"
        let output = try Tools.run(
            tool,
            ["--inlining", "--functions=linkage", "--no-demangle", "--output-style=JSON"] + object,
            input: input
        )
        var result: [UInt64: [ReferenceFrame]] = [:]
        for line in output.stdout.split(separator: "\n") {
            guard let entry = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let address = (entry["Address"] as? String).flatMap({ UInt64($0.dropFirst(2), radix: 16) }),
                let symbols = entry["Symbol"] as? [[String: Any]]
            else { continue }
            result[address] = symbols.compactMap { symbol in
                guard let function = symbol["FunctionName"] as? String, !function.isEmpty, function != "??" else {
                    return nil
                }
                var file = symbol["FileName"] as? String ?? ""
                // We show pseudo-files such as `<compiler-generated>` without a directory.
                if file.hasSuffix(">"), let open = file.lastIndex(of: "<") { file = String(file[open...]) }
                let line = symbol["Line"] as? Int ?? 0
                return ReferenceFrame(
                    function: function,
                    file: file,
                    line: line,
                    startLine: symbol["StartLine"] as? Int ?? 0
                )
            }
        }
        return result
    }
}
