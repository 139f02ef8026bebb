#if canImport(Glibc)
    import Glibc
#endif

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
        stackRecord(
            stack,
            allFrames: allFrames,
            symbolize: { symbolizer.frames(at: $0) },
            isHiddenLeadingFrame: isHiddenLeadingFrame
        )
    }

    /// `printStackRecord` with its own symbolization. Frames for which `isHiddenFrame` holds are
    /// never printed (Go always hides `runtime.goexit`). Each frame line shows the call PC
    /// (entry − 1), `function+0xoffset` from the physical function's entry, and `file:line`; an
    /// entry without a symbol prints only its call PC.
    static func stackRecord(
        _ stack: [UInt],
        allFrames: Bool,
        symbolize: (UInt) -> [SymbolFrame],
        isHiddenLeadingFrame: (String) -> Bool = { _ in false },
        isHiddenFrame: (String) -> Bool = { _ in false }
    ) -> String {
        var out = ""
        var show = allFrames
        for entry in stack {
            let pc = entry &- 1
            let frames = frames(forEntry: entry, symbolize: symbolize)
            if frames.isEmpty || frames.allSatisfy({ $0.name.isEmpty }) {
                show = true
                out += "#\t0x\(String(pc, radix: 16))\n"
                continue
            }
            for frame in frames where !isHiddenFrame(frame.name) && (show || !isHiddenLeadingFrame(frame.name)) {
                show = true
                let offset = frame.entry != 0 && pc >= frame.entry ? pc - frame.entry : 0
                let name = frame.displayName
                out += "#\t0x\(String(pc, radix: 16))\t\(name)+0x\(String(offset, radix: 16))\t"
                out += "\(frame.file):\(frame.line)\n"
            }
        }
        if !show {
            return stackRecord(stack, allFrames: true, symbolize: symbolize, isHiddenFrame: isHiddenFrame)
        }
        return out + "\n"
    }

    /// The symbolized frames of one stack entry; synthetic entries get their pseudo-function.
    static func frames(forEntry entry: UInt, symbolizer: Symbolizer = .shared) -> [SymbolFrame] {
        frames(forEntry: entry, symbolize: { symbolizer.frames(at: $0) })
    }

    static func frames(forEntry entry: UInt, symbolize: (UInt) -> [SymbolFrame]) -> [SymbolFrame] {
        if entry <= SyntheticFrame.maximumRawValue {
            let name = SyntheticFrame.functionName(forEntry: entry)
            return [SymbolFrame(name: name, systemName: name, file: "", line: 0, startLine: 0, entry: 0)]
        }
        return symbolize(entry - 1)
    }

    /// The `@ 0x… 0x…` list of raw stack entries.
    static func addressList(_ stack: [UInt]) -> String {
        var bytes: [UInt8] = []
        appendAddressList(stack, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `addressList` as UTF-8 at the end of `bytes`.
    static func appendAddressList(_ stack: [UInt], to bytes: inout [UInt8]) {
        bytes.reserveCapacity(bytes.count + 1 + stack.count * 15)
        bytes.append(UInt8(ascii: "@"))
        for entry in stack {
            bytes.append(contentsOf: [UInt8(ascii: " "), UInt8(ascii: "0"), UInt8(ascii: "x")])
            appendHex(entry, to: &bytes)
        }
    }

    private static func appendHex(_ value: UInt, to bytes: inout [UInt8]) {
        var shift = value == 0 ? 0 : (UInt.bitWidth - value.leadingZeroBitCount - 1) / 4 * 4
        while shift >= 0 {
            let digit = UInt8(truncatingIfNeeded: (value >> UInt(shift)) & 0xf)
            bytes.append(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") - 10 + digit)
            shift -= 4
        }
    }

    /// `{"k1":"v1", "k2":"v2"}`: Go's label-map string, pairs formatted with `%q` and sorted
    /// byte-wise.
    static func labelString(_ labels: [(key: String, value: String)]) -> String {
        var bytes: [UInt8] = []
        var scratch: [UInt8] = []
        appendLabelString(labels, to: &bytes, scratch: &scratch)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `labelString` as UTF-8 at the end of `bytes`; `scratch` is working space a caller reuses.
    static func appendLabelString(
        _ labels: [(key: String, value: String)],
        to bytes: inout [UInt8],
        scratch: inout [UInt8]
    ) {
        scratch.removeAll(keepingCapacity: true)
        var pairs: [Range<Int>] = []
        pairs.reserveCapacity(labels.count)
        for label in labels {
            let start = scratch.count
            appendGoQuoted(label.key, to: &scratch)
            scratch.append(UInt8(ascii: ":"))
            appendGoQuoted(label.value, to: &scratch)
            pairs.append(start..<scratch.count)
        }
        scratch.withUnsafeBufferPointer { pairBytes in
            pairs.sort { compareBytes(pairBytes, $0, pairBytes, $1) < 0 }
        }
        bytes.append(UInt8(ascii: "{"))
        for (index, pair) in pairs.enumerated() {
            if index > 0 { bytes.append(contentsOf: [UInt8(ascii: ","), UInt8(ascii: " ")]) }
            bytes.append(contentsOf: scratch[pair])
        }
        bytes.append(UInt8(ascii: "}"))
    }

    /// Byte-wise order of two ranges of UTF-8 (negative, zero or positive), one memcmp.
    static func compareBytes(
        _ x: UnsafeBufferPointer<UInt8>,
        _ xRange: Range<Int>,
        _ y: UnsafeBufferPointer<UInt8>,
        _ yRange: Range<Int>
    ) -> Int {
        let common = min(xRange.count, yRange.count)
        if common > 0 {
            let order = memcmp(x.baseAddress! + xRange.lowerBound, y.baseAddress! + yRange.lowerBound, common)
            if order != 0 { return Int(order) }
        }
        return xRange.count - yRange.count
    }

    /// `a.utf8.lexicographicallyPrecedes(b.utf8)` with one memcmp: keys share long stack prefixes,
    /// which the element-wise comparison walks byte by byte.
    static func utf8Precedes(_ a: String, _ b: String) -> Bool {
        var (a, b) = (a, b)
        return a.withUTF8 { x in
            b.withUTF8 { y in compareBytes(x, 0..<x.count, y, 0..<y.count) < 0 }
        }
    }

    /// `goQuote` as UTF-8 at the end of `bytes`.
    static func appendGoQuoted(_ string: String, to bytes: inout [UInt8]) {
        if string.utf8.allSatisfy(isPlainQuotable) {
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: string.utf8)
            bytes.append(UInt8(ascii: "\""))
        } else {
            bytes.append(contentsOf: goQuote(string).utf8)
        }
    }

    /// Printable ASCII that `%q` leaves as it is.
    private static func isPlainQuotable(_ byte: UInt8) -> Bool {
        byte >= 0x20 && byte < 0x7f && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
    }

    /// Go's `%q`/`strconv.Quote`: printable characters as they are, the rest escaped.
    static func goQuote(_ string: String) -> String {
        // Most names and label values are plain printable ASCII: quoted as they are.
        if string.utf8.allSatisfy(isPlainQuotable) { return "\"" + string + "\"" }
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

    /// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
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
/// padding with TABs, no flags.
///
/// A TAB (or vertical tab) ends a cell; the text after a line's last TAB is not a cell and is
/// never padded. Consecutive lines with a cell in the same column form a block whose width is its
/// widest cell (in Unicode scalars) plus one; each cell is followed by as many TABs as it takes to
/// reach that width rounded up to a multiple of 8. A form feed ends a line (written as a newline)
/// and ends every block.
enum TabWriter {
    static func format(_ text: String) -> String {
        var text = text
        return text.withUTF8 { String(decoding: format(utf8: $0), as: UTF8.self) }
    }

    /// A cell: its bytes in the input and its width in Unicode scalars.
    private struct Cell {
        var start: Int
        var end: Int
        var width: Int
    }

    private static let tab = UInt8(ascii: "\t")
    private static let verticalTab: UInt8 = 0x0b
    private static let newline = UInt8(ascii: "\n")
    private static let formFeed: UInt8 = 0x0c

    static func format(utf8 input: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(input.count + input.count / 4)
        var lines: [[Cell]] = []
        var current: [Cell] = []
        var cellStart = 0
        var cellWidth = 0
        for index in 0..<input.count {
            let byte = input[index]
            switch byte {
            case tab, verticalTab:
                current.append(Cell(start: cellStart, end: index, width: cellWidth))
                cellStart = index + 1
                cellWidth = 0
            case newline, formFeed:
                current.append(Cell(start: cellStart, end: index, width: cellWidth))
                lines.append(current)
                current = []
                cellStart = index + 1
                cellWidth = 0
                if byte == formFeed {
                    // A form feed flushes: no block continues past it.
                    Block(input: input, lines: lines).write(to: &output, lastLineHasNewline: true)
                    lines = []
                }
            default:
                // Count scalars: every byte that does not continue a UTF-8 sequence.
                if byte & 0xc0 != 0x80 { cellWidth += 1 }
            }
        }
        // Text after the last newline: a final line without one. As in Go, an empty trailing cell
        // (the text ends in a TAB) is not a cell.
        if cellStart < input.count { current.append(Cell(start: cellStart, end: input.count, width: cellWidth)) }
        let endsInNewline = current.isEmpty
        if !endsInNewline { lines.append(current) }
        Block(input: input, lines: lines).write(to: &output, lastLineHasNewline: endsInNewline)
        return output
    }

    /// Lines formatted together (between flushes).
    private struct Block {
        let input: UnsafeBufferPointer<UInt8>
        let lines: [[Cell]]

        func write(to output: inout [UInt8], lastLineHasNewline: Bool) {
            var widths: [Int] = []
            format(&output, &widths, 0, lines.count, lastLineHasNewline)
        }

        /// Go's `format`: finds the blocks of column `widths.count` in `line0..<line1`, fixes
        /// their width and recurses into the next column; lines outside any block are written
        /// with the widths known so far.
        private func format(
            _ output: inout [UInt8],
            _ widths: inout [Int],
            _ line0: Int,
            _ line1: Int,
            _ lastLineHasNewline: Bool
        ) {
            let column = widths.count
            var written = line0
            var this = line0
            while this < line1 {
                if column >= lines[this].count - 1 {
                    this += 1
                    continue
                }
                writeLines(&output, widths, written, this, lastLineHasNewline)
                let blockStart = this
                var width = 1  // minwidth
                while this < line1, column < lines[this].count - 1 {
                    width = max(width, lines[this][column].width + 1)  // + padding
                    this += 1
                }
                widths.append(width)
                format(&output, &widths, blockStart, this, lastLineHasNewline)
                widths.removeLast()
                written = this
            }
            writeLines(&output, widths, written, line1, lastLineHasNewline)
        }

        private func writeLines(
            _ output: inout [UInt8],
            _ widths: [Int],
            _ line0: Int,
            _ line1: Int,
            _ lastLineHasNewline: Bool
        ) {
            for index in line0..<line1 {
                let cells = lines[index]
                for (column, cell) in cells.enumerated() {
                    output.append(contentsOf: UnsafeBufferPointer(rebasing: input[cell.start..<cell.end]))
                    if column < widths.count {
                        let cellWidth = (widths[column] + 7) / 8 * 8
                        let tabs = (cellWidth - cell.width + 7) / 8
                        for _ in 0..<tabs { output.append(TabWriter.tab) }
                    }
                }
                if index < lines.count - 1 || lastLineHasNewline { output.append(TabWriter.newline) }
            }
        }
    }
}
