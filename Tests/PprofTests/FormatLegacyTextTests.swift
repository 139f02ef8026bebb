import Foundation
import Testing

@_spi(Benchmarks) @testable import Pprof

/// The debug=1 text of count profiles, byte for byte as Go writes it.
@Suite struct FormatLegacyTextTests {
    /// Go's example symbols (from a real Go binary's layout) for the fixed examples.
    static let goSymbols: [UInt: [SymbolFrame]] = [
        0x4b1c34: [frame("main.openLog", file: "/home/u/app/files.go", line: 12, entry: 0x4b1c00)],
        0x4b1d54: [frame("main.openDB", file: "/home/u/app/files.go", line: 30, entry: 0x4b1d00)],
        0x4b2e2c: [frame("main.main", file: "/home/u/app/main.go", line: 20, entry: 0x4b2de0)],
        0x4b2e6e: [frame("main.main", file: "/home/u/app/main.go", line: 22, entry: 0x4b2de0)],
        0x43a56a: [frame("runtime.main", file: "/usr/local/go/src/runtime/proc.go", line: 271, entry: 0x43a2e0)],
        0x46d200: [frame("runtime.goexit", file: "/usr/local/go/src/runtime/asm_amd64.s", line: 1594, entry: 0x46d200)],
        0x43a9d5: [frame("runtime.gopark", file: "/usr/local/go/src/runtime/proc.go", line: 381, entry: 0x43a900)],
        0x409a8b: [frame("runtime.chanrecv", file: "/usr/local/go/src/runtime/chan.go", line: 583, entry: 0x409600)],
        0x409604: [frame("runtime.chanrecv1", file: "/usr/local/go/src/runtime/chan.go", line: 442, entry: 0x4095e0)],
        0x406c1b: [frame("runtime.selectgo", file: "/usr/local/go/src/runtime/select.go", line: 327, entry: 0x406400)],
        0x4067d7: [frame("runtime.block", file: "/usr/local/go/src/runtime/select.go", line: 103, entry: 0x4067c0)],
        0x4b1f27: [frame("main.worker", file: "/home/u/app/main.go", line: 31, entry: 0x4b1ee0)],
        0x4b1ff2: [frame("main.main", file: "/home/u/app/main.go", line: 44, entry: 0x4b1f60)],
        0x4b0e4d: [
            frame(
                "runtime/pprof.writeRuntimeProfile",
                file: "/usr/local/go/src/runtime/pprof/pprof.go",
                line: 793,
                entry: 0x4b0d80
            )
        ],
        0x4b0c44: [
            frame(
                "runtime/pprof.writeGoroutine",
                file: "/usr/local/go/src/runtime/pprof/pprof.go",
                line: 753,
                entry: 0x4b0c00
            )
        ],
        0x4ae4b3: [
            frame(
                "runtime/pprof.(*Profile).WriteTo",
                file: "/usr/local/go/src/runtime/pprof/pprof.go",
                line: 374,
                entry: 0x4ae360
            )
        ],
        0x4b2059: [frame("main.handler", file: "/home/u/app/main.go", line: 58, entry: 0x4b1fe0)],
    ]

    static func goStyle(_ name: String, _ records: [CountProfile.Record]) -> CountProfile {
        var profile = CountProfile(name: name, records: records)
        profile.isHiddenLeadingFrame = { $0.hasPrefix("runtime.") }
        profile.isHiddenFrame = { $0 == "runtime.goexit" }
        return profile
    }

    @Test func customProfileExampleIsByteForByteGos() {
        let openLog: [UInt] = [0x4b1c35, 0x4b2e2d, 0x43a56b, 0x46d201]
        let openDB: [UInt] = [0x4b1d55, 0x4b2e6f, 0x43a56b, 0x46d201]
        let profile = Self.goStyle(
            "example.com/app.openfiles",
            [.init(stack: openDB), .init(stack: openLog), .init(stack: openLog)]
        )
        let expected = """
            example.com/app.openfiles profile: total 3
            2 @ 0x4b1c35 0x4b2e2d 0x43a56b 0x46d201
            #\t0x4b1c34\tmain.openLog+0x34\t/home/u/app/files.go:12
            #\t0x4b2e2c\tmain.main+0x4c\t\t/home/u/app/main.go:20
            #\t0x43a56a\truntime.main+0x28a\t/usr/local/go/src/runtime/proc.go:271

            1 @ 0x4b1d55 0x4b2e6f 0x43a56b 0x46d201
            #\t0x4b1d54\tmain.openDB+0x54\t/home/u/app/files.go:30
            #\t0x4b2e6e\tmain.main+0x8e\t\t/home/u/app/main.go:22
            #\t0x43a56a\truntime.main+0x28a\t/usr/local/go/src/runtime/proc.go:271


            """
        #expect(profile.legacyText(symbolize: fakeSymbolizer(Self.goSymbols)) == expected)
    }

    @Test func goroutineExampleWithLabelsAndHiddenRuntimeFramesIsByteForByteGos() {
        let worker: [UInt] = [0x43a9d6, 0x409a8c, 0x409605, 0x4b1f28, 0x46d201]
        let main: [UInt] = [0x43a9d6, 0x406c1c, 0x4067d8, 0x4b1ff3, 0x43a56b, 0x46d201]
        let handler: [UInt] = [0x4b0e4e, 0x4b0c45, 0x4ae4b4, 0x4b205a, 0x46d201]
        let profile = Self.goStyle(
            "goroutine",
            [
                .init(stack: handler, labels: [("user", "bob"), ("request", "42")]), .init(stack: worker),
                .init(stack: main), .init(stack: worker),
            ]
        )
        let expected = """
            goroutine profile: total 4
            2 @ 0x43a9d6 0x409a8c 0x409605 0x4b1f28 0x46d201
            #\t0x4b1f27\tmain.worker+0x47\t/home/u/app/main.go:31

            1 @ 0x43a9d6 0x406c1c 0x4067d8 0x4b1ff3 0x43a56b 0x46d201
            #\t0x4b1ff2\tmain.main+0x92\t\t/home/u/app/main.go:44
            #\t0x43a56a\truntime.main+0x28a\t/usr/local/go/src/runtime/proc.go:271

            1 @ 0x4b0e4e 0x4b0c45 0x4ae4b4 0x4b205a 0x46d201
            # labels: {"request":"42", "user":"bob"}
            #\t0x4b0e4d\truntime/pprof.writeRuntimeProfile+0xcd\t/usr/local/go/src/runtime/pprof/pprof.go:793
            #\t0x4b0c44\truntime/pprof.writeGoroutine+0x44\t/usr/local/go/src/runtime/pprof/pprof.go:753
            #\t0x4ae4b3\truntime/pprof.(*Profile).WriteTo+0x153\t/usr/local/go/src/runtime/pprof/pprof.go:374
            #\t0x4b2059\tmain.handler+0x79\t\t\t/home/u/app/main.go:58


            """
        #expect(profile.legacyText(symbolize: fakeSymbolizer(Self.goSymbols)) == expected)
    }

    @Test func labelsMakeStacksDistinctAndTheProtoCarriesThem() throws {
        let stack: [UInt] = [0x4b1f28]
        let profile = Self.goStyle(
            "goroutine",
            [
                .init(stack: stack, labels: [("k", "a")]), .init(stack: stack, labels: [("k", "a")]),
                .init(stack: stack, labels: [("k", "b\n\"q\"")]), .init(stack: stack),
            ]
        )
        let text = profile.legacyText(symbolize: fakeSymbolizer(Self.goSymbols))
        #expect(text.hasPrefix("goroutine profile: total 4\n2 @ 0x4b1f28\n# labels: {\"k\":\"a\"}\n#\t0x4b1f27\t"))
        #expect(text.contains("1 @ 0x4b1f28\n#\t"))
        #expect(text.contains("1 @ 0x4b1f28\n# labels: {\"k\":\"b\\n\\\"q\\\"\"}\n"))
        let data = profile.profileData(processMappings: [], symbolize: fakeSymbolizer(Self.goSymbols))
        let decoded = try ProfileData(decoding: data.encoded())
        let samples = decoded.resolvedSamples()
        #expect(samples.map(\.values) == [[2], [1], [1]])
        #expect(samples.map { $0.label("k") } == ["a", nil, "b\n\"q\""])
        #expect(samples.allSatisfy { $0.functionNames == ["main.worker"] })
    }

    @Test func labelsInAnotherOrderCountTogetherAndTiesOrderByTheirTextAsGoDoes() {
        let profile = CountProfile(
            name: "goroutine",
            records: [
                .init(stack: [0xf], labels: [("b", "2"), ("a", "1")]),
                .init(stack: [0x10]),
                .init(stack: [0xf], labels: [("a", "1"), ("b", "2")]),
                .init(stack: [0x10], labels: [("a", "1"), ("b", "2")]),
                .init(stack: [0x10], labels: [("b", "2"), ("a", "1")]),
                .init(stack: [0]),
                .init(stack: [0xf]),
            ]
        )
        let groups = profile.groups()
        // Count first, then the key text byte-wise: "0x10" sorts before "0xf", "0x0" before both.
        #expect(
            groups.list.map { groups.key(of: $0) } == [
                "@ 0x10\n# labels: {\"a\":\"1\", \"b\":\"2\"}", "@ 0xf\n# labels: {\"a\":\"1\", \"b\":\"2\"}",
                "@ 0x0", "@ 0x10", "@ 0xf",
            ]
        )
        #expect(groups.list.map(\.count) == [2, 2, 1, 1, 1])
        #expect(
            LegacyText.addressList([0xffff_ffff_ffff_ffff, 0x7f3a_dc00_2601]) == "@ 0xffffffffffffffff 0x7f3adc002601"
        )
    }

    @Test func inlinedFramesShareTheirEntrysPCAndOffsetsAreFromThePhysicalFunction() {
        let symbols: [UInt: [SymbolFrame]] = [
            0x2000: [
                frame("Swift.Array.append(_:)", file: "Array.swift", line: 9, entry: 0x1f00),
                frame("app.handle() -> ()", file: "app.swift", line: 3, entry: 0x1f00),
            ]
        ]
        let record = LegacyText.stackRecord([0x2001, 0x9001], allFrames: false, symbolize: fakeSymbolizer(symbols))
        #expect(
            record == """
                #\t0x2000\tSwift.Array.append(_:)+0x100\tArray.swift:9
                #\t0x2000\tapp.handle() -> ()+0x100\tapp.swift:3
                #\t0x9000


                """
        )
    }

    @Test func whenEveryFrameIsHiddenAllAreShown() {
        let symbols: [UInt: [SymbolFrame]] = [0x43a9d5: Self.goSymbols[0x43a9d5]!]
        let record = LegacyText.stackRecord(
            [0x43a9d6],
            allFrames: false,
            symbolize: fakeSymbolizer(symbols),
            isHiddenLeadingFrame: { $0.hasPrefix("runtime.") }
        )
        #expect(record == "#\t0x43a9d5\truntime.gopark+0xd5\t/usr/local/go/src/runtime/proc.go:381\n\n")
    }

    @Test func tabWriterHandlesTheEdgeCases() {
        #expect(TabWriter.format("") == "")
        #expect(TabWriter.format("no tabs") == "no tabs")
        #expect(TabWriter.format("a\t") == "a", "a trailing empty cell is dropped, as in Go")
        #expect(TabWriter.format("a\tb") == "a\tb")
        #expect(TabWriter.format("abcdefgh\tx\nab\ty\n") == "abcdefgh\tx\nab\t\ty\n")
        #expect(TabWriter.format("abcdefgh\tx\u{0C}ab\ty\n") == "abcdefgh\tx\nab\ty\n", "a form feed ends the block")
        #expect(TabWriter.format("é\tx\n1234567\ty\n") == "é\tx\n1234567\ty\n", "width counts scalars, not bytes")
    }

    // MARK: - Against Go itself

    static let tabwriterProgram = """
        package main

        import (
        \t"bufio"
        \t"bytes"
        \t"fmt"
        \t"io"
        \t"os"
        \t"strconv"
        \t"text/tabwriter"
        )

        func main() {
        \tin := bufio.NewReader(os.Stdin)
        \tout := bufio.NewWriter(os.Stdout)
        \tdefer out.Flush()
        \tfor {
        \t\tvar mode string
        \t\tvar n int
        \t\tif _, err := fmt.Fscan(in, &mode, &n); err != nil {
        \t\t\treturn
        \t\t}
        \t\tin.ReadByte()
        \t\tdata := make([]byte, n)
        \t\tif _, err := io.ReadFull(in, data); err != nil {
        \t\t\tpanic(err)
        \t\t}
        \t\tvar result []byte
        \t\tif mode == "tab" {
        \t\t\tvar buf bytes.Buffer
        \t\t\tw := tabwriter.NewWriter(&buf, 1, 8, 1, '\\t', 0)
        \t\t\tw.Write(data)
        \t\t\tw.Flush()
        \t\t\tresult = buf.Bytes()
        \t\t} else {
        \t\t\tresult = []byte(strconv.Quote(string(data)))
        \t\t}
        \t\tfmt.Fprintf(out, "%d\\n", len(result))
        \t\tout.Write(result)
        \t}
        }
        """

    /// Runs the Go program on framed inputs and returns its framed outputs.
    static func runGo(_ cases: [(mode: String, input: String)]) throws -> [String] {
        var input: [UInt8] = []
        for (mode, text) in cases {
            input += Array("\(mode) \(text.utf8.count)\n".utf8) + Array(text.utf8)
        }
        let output = try GoTool.runProgram(tabwriterProgram, input: input)
        #expect(output.status == 0, "\(output.stderr)")
        var results: [String] = []
        var rest = output.stdout[...]
        while let newline = rest.firstIndex(of: UInt8(ascii: "\n")) {
            let count = Int(String(decoding: rest[..<newline], as: UTF8.self))!
            let body = rest[(newline + 1)..<(newline + 1 + count)]
            results.append(String(decoding: body, as: UTF8.self))
            rest = rest[(newline + 1 + count)...]
        }
        return results
    }

    static func randomLayout(_ rng: inout SplitMix64) -> String {
        let pieces = ["a", "bb", "0x4b1c34", "main.main+0x4c", "é", "函数", "🦊", "", "runtime.main+0x28a", "x y z"]
        var text = ""
        for _ in 0..<Int.random(in: 0...12, using: &rng) {
            let cells = Int.random(in: 0...5, using: &rng)
            for cell in 0..<cells {
                for _ in 0..<Int.random(in: 0...4, using: &rng) { text += pieces.randomElement(using: &rng)! }
                if cell < cells - 1 || Bool.random(using: &rng) {
                    text += Int.random(in: 0..<12, using: &rng) == 0 ? "\u{0B}" : "\t"
                }
            }
            text += Int.random(in: 0..<15, using: &rng) == 0 ? "\u{0C}" : "\n"
        }
        if Bool.random(using: &rng) { text += pieces.randomElement(using: &rng)! + "\t" + "tail" }
        return text
    }

    @Test(.enabled(if: GoTool.isAvailable, "needs the go toolchain"))
    func tabWriterMatchesGosOnRandomLayouts() throws {
        var rng = SplitMix64(seed: 2024)
        let layouts = (0..<400).map { _ in Self.randomLayout(&rng) }
        let goOutputs = try Self.runGo(layouts.map { ("tab", $0) })
        #expect(goOutputs.count == layouts.count)
        for (layout, goOutput) in zip(layouts, goOutputs) {
            #expect(TabWriter.format(layout) == goOutput, "input: \(layout.debugDescription)")
        }
    }

    @Test(.enabled(if: GoTool.isAvailable, "needs the go toolchain"))
    func goQuoteMatchesStrconvQuote() throws {
        var rng = SplitMix64(seed: 77)
        let scalars: [Unicode.Scalar] = [
            "a", "Z", " ", "\"", "\\", "\u{00}", "\u{07}", "\u{08}", "\u{09}", "\u{0A}", "\u{0B}", "\u{0C}", "\u{0D}",
            "\u{1B}", "\u{7F}", "\u{80}", "\u{9F}", "\u{A0}", "é", "ß", "\u{0301}", "\u{200B}", "\u{200D}", "\u{2028}",
            "\u{3000}", "函", "\u{E000}", "\u{FEFF}", "\u{FFFD}", "🦊", "\u{1F1FA}", "\u{10FFFD}",
        ]
        let strings = (0..<500).map { _ in
            String(
                String.UnicodeScalarView(
                    (0..<Int.random(in: 0...8, using: &rng)).map { _ in scalars.randomElement(using: &rng)! }
                )
            )
        }
        let goOutputs = try Self.runGo(strings.map { ("quote", $0) })
        #expect(goOutputs.count == strings.count)
        for (string, goOutput) in zip(strings, goOutputs) {
            #expect(
                LegacyText.goQuote(string) == goOutput,
                "input: \(string.unicodeScalars.map { String($0.value, radix: 16) })"
            )
        }
    }

    static let countProfileProgram = """
        package main

        import (
        \t"os"
        \t"runtime/pprof"
        )

        var prof = pprof.NewProfile("example.com/app.openfiles")

        //go:noinline
        func openLog(v int) { prof.Add(v, 0) }

        //go:noinline
        func openDB(v int) { prof.Add(v, 0) }

        func inlinedWrapper(v int) { openDB(v) }

        //go:noinline
        func ñandúWithAVeryLongNameThatWidensTheColumnBeyondEveryOtherName(v int) { openLog(v) }

        //go:noinline
        func viaHelper(v int) { openLog(v) }

        func main() {
        \tfor i := 0; i < 3; i++ {
        \t\topenLog(i)
        \t}
        \tfor i := 10; i < 12; i++ {
        \t\topenDB(i)
        \t}
        \tfor i := 20; i < 22; i++ {
        \t\tinlinedWrapper(i)
        \t}
        \tviaHelper(30)
        \tñandúWithAVeryLongNameThatWidensTheColumnBeyondEveryOtherName(40)
        \tfile, _ := os.Create(os.Args[1])
        \tprof.WriteTo(file, 0)
        \tfile.Close()
        \tprof.WriteTo(os.Stdout, 1)
        }
        """

    /// Go's own `printCountProfile` output, reproduced: the records and symbols are read from
    /// Go's text, fed to our writer, and the text must come out identical. Go's debug=0 output of
    /// the same profile is read by our decoder and must show the same stacks and counts.
    @Test(.enabled(if: GoTool.isAvailable, "needs the go toolchain"))
    func reproducesGosPrintCountProfile() throws {
        let protoFile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "go-count-\(UUID().uuidString).pb.gz"
        )
        defer { try? FileManager.default.removeItem(at: protoFile) }
        let output = try GoTool.runProgram(Self.countProfileProgram, arguments: [protoFile.path])
        #expect(output.status == 0, "\(output.stderr)")
        let goText = output.text
        let lines = goText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = try #require(lines.first)
        let name = try #require(header.components(separatedBy: " profile: total ").first)

        var records: [CountProfile.Record] = []
        var symbols: [UInt: [SymbolFrame]] = [:]
        var groups: [(count: Int, stack: [UInt])] = []
        // Frames of the current record by PC: several for one PC are inlined frames.
        var recordFrames: [UInt: [SymbolFrame]] = [:]
        for line in lines.dropFirst() + ["0 @ "] {
            if line.hasPrefix("#\t") {
                // #<TAB>0xPC<TABs>name+0xOFF<TABs>file:line
                let fields = line.split(separator: "\t", omittingEmptySubsequences: true).map(String.init)
                let pc = try #require(UInt(fields[1].dropFirst(2), radix: 16))
                let function = try #require(fields[2].range(of: "+0x", options: .backwards))
                let offset = try #require(UInt(fields[2][function.upperBound...], radix: 16))
                let location = try #require(fields[3].range(of: ":", options: .backwards))
                recordFrames[pc, default: []].append(
                    frame(
                        String(fields[2][..<function.lowerBound]),
                        file: String(fields[3][..<location.lowerBound]),
                        line: Int(fields[3][location.upperBound...])!,
                        entry: pc - offset
                    )
                )
            } else if let at = line.range(of: " @ ") {
                symbols.merge(recordFrames) { _, new in new }
                recordFrames = [:]
                let count = try #require(Int(line[..<at.lowerBound]))
                let stack = line[at.upperBound...].split(separator: " ").compactMap { UInt($0.dropFirst(2), radix: 16) }
                if count > 0 { groups.append((count, stack)) }
            }
        }
        // Entries without a printed frame are the always-hidden `runtime.goexit`.
        for group in groups {
            for entry in group.stack where symbols[entry - 1] == nil {
                symbols[entry - 1] = [frame("runtime.goexit", file: "asm_amd64.s", line: 1, entry: entry - 1)]
            }
            records += Array(repeating: CountProfile.Record(stack: group.stack), count: group.count)
        }
        #expect(groups.count == 5, "openLog, openDB, the inlined wrapper, viaHelper, the long name")
        #expect(records.count == 9)
        let ours = Self.goStyle(name, records.reversed()).legacyText(symbolize: fakeSymbolizer(symbols))
        #expect(ours == goText)

        // Go's protobuf, read by our decoder: the same counts and, by address, the same functions.
        let decoded = try ProfileData(decoding: [UInt8](Data(contentsOf: protoFile)))
        #expect(decoded.sampleTypes == [.init(type: name, unit: "count")])
        #expect(decoded.samples.map { $0.values[0] } == groups.map { Int64($0.count) })
        for (sample, group) in zip(decoded.resolvedSamples(), groups) {
            let expected = group.stack.flatMap { symbols[$0 - 1]!.map(\.name) }.filter { $0 != "runtime.goexit" }
            #expect(sample.functionNames.filter { $0 != "runtime.goexit" } == expected)
        }
    }
}
