/// Go's legacy text profile layouts (debug=1), byte-compatible with `runtime/pprof`.
enum LegacyText {
    /// `printStackRecord`: one `#` line per frame (inlined frames expanded), then a blank line.
    /// Leading frames for which `isHiddenLeadingFrame` holds are skipped until the first shown one
    /// (Go hides leading `runtime.` frames); if that leaves nothing, every frame is printed.
    static func stackRecord(
        _ stack: [UInt],
        allFrames: Bool,
        symbolizer: Symbolizer = .shared,
        isHiddenLeadingFrame: (String) -> Bool = { _ in false }
    ) -> String {
        var out = ""
        var show = allFrames
        for entry in stack {
            let pc = entry &- 1
            let frames = frames(forEntry: entry, symbolizer: symbolizer)
            if frames.isEmpty {
                show = true
                out += "#\t0x\(String(pc, radix: 16))\n"
                continue
            }
            for frame in frames where show || !isHiddenLeadingFrame(frame.name) {
                show = true
                let offset = frame.entry != 0 && pc >= frame.entry ? pc - frame.entry : 0
                out +=
                    "#\t0x\(String(pc, radix: 16))\t\(frame.name)+0x\(String(offset, radix: 16))\t\(frame.file):\(frame.line)\n"
            }
        }
        if !show {
            return stackRecord(stack, allFrames: true, symbolizer: symbolizer)
        }
        return out + "\n"
    }

    /// The symbolized frames of one stack entry; synthetic entries get their pseudo-function.
    static func frames(forEntry entry: UInt, symbolizer: Symbolizer = .shared) -> [SymbolFrame] {
        if entry <= SyntheticFrame.maximumRawValue {
            let name = SyntheticFrame(rawValue: entry)?.functionName ?? "pprof.unknownFrame"
            return [SymbolFrame(name: name, systemName: name, file: "", line: 0, startLine: 0, entry: 0)]
        }
        return symbolizer.frames(at: entry - 1)
    }

    /// The `@ 0x… 0x…` list of raw stack entries.
    static func addressList(_ stack: [UInt]) -> String {
        var out = "@"
        for entry in stack { out += " 0x\(String(entry, radix: 16))" }
        return out
    }

    /// `{"k1":"v1", "k2":"v2"}`: Go's label-map string, pairs formatted with `%q` and sorted.
    static func labelString(_ labels: [(key: String, value: String)]) -> String {
        let pairs = labels.map { goQuote($0.key) + ":" + goQuote($0.value) }
            .sorted { Array($0.utf8).lexicographicallyPrecedes($1.utf8) }
        return "{" + pairs.joined(separator: ", ") + "}"
    }

    /// Go's `%q`/`strconv.Quote`: printable characters as they are, the rest escaped.
    static func goQuote(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{07}": out += "\\a"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{0B}": out += "\\v"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out += "\\x" + hexDigits(scalar.value, width: 2)
                } else if scalar.value >= 0x80 && !isGoPrintable(scalar) {
                    out +=
                        scalar.value > 0xffff
                        ? "\\U" + hexDigits(scalar.value, width: 8) : "\\u" + hexDigits(scalar.value, width: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    private static func isGoPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator:
            return false
        case .spaceSeparator:
            return scalar == " "
        default:
            return true
        }
    }

    private static func hexDigits(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

/// Go's `text/tabwriter` as `runtime/pprof` configures it: minwidth 1, tabwidth 8, padding 1,
/// padding with TABs, no flags. Cells are tab-terminated; the text after a line's last TAB is not
/// a cell. Consecutive lines with a cell in the same column form a block whose width is the widest
/// cell plus one, rounded up to a multiple of 8.
enum TabWriter {
    static func format(_ text: String) -> String {
        // Each line: its cells (tab-terminated texts, then the trailing text) and whether it ended in "\n".
        var lines: [[Substring]] = []
        var endsWithNewline: [Bool] = []
        var rest = text[...]
        while !rest.isEmpty {
            let lineEnd = rest.firstIndex(of: "\n")
            let line = lineEnd.map { rest[..<$0] } ?? rest
            lines.append(line.split(separator: "\t", omittingEmptySubsequences: false))
            endsWithNewline.append(lineEnd != nil)
            rest = lineEnd.map { rest[rest.index(after: $0)...] } ?? rest[rest.endIndex...]
        }
        var output = ""
        var widths: [Int] = []
        func width(of cell: Substring) -> Int { cell.unicodeScalars.count }

        func writeLines(_ start: Int, _ end: Int) {
            for index in start..<end {
                let cells = lines[index]
                for (column, cell) in cells.enumerated() {
                    output += cell
                    if column < widths.count && column < cells.count - 1 {
                        let cellWidth = (widths[column] + 7) / 8 * 8
                        let padding = cellWidth - width(of: cell)
                        output += String(repeating: "\t", count: (padding + 7) / 8)
                    }
                }
                if endsWithNewline[index] { output += "\n" }
            }
        }

        func format(_ line0: Int, _ line1: Int) {
            var line0 = line0
            let column = widths.count
            var this = line0
            while this < line1 {
                if column >= lines[this].count - 1 {
                    this += 1
                    continue
                }
                writeLines(line0, this)
                line0 = this
                var blockWidth = 1
                while this < line1, column < lines[this].count - 1 {
                    blockWidth = max(blockWidth, width(of: lines[this][column]) + 1)
                    this += 1
                }
                widths.append(blockWidth)
                format(line0, this)
                widths.removeLast()
                line0 = this
            }
            writeLines(line0, line1)
        }

        format(0, lines.count)
        return output
    }
}
