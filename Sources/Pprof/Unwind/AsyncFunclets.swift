/// Swift async functions are split into funclets at every suspension point; the walker follows the
/// async context chain from any frame in one. Like Swift's own `FramePointerUnwinder` on Linux, a
/// funclet is recognised by its mangled name: it ends in `TY<n>_` ("suspend resume partial
/// function") or `TQ<n>_` ("await resume partial function").
enum AsyncFunclets {
    /// The funclets' address ranges as offsets from `range.lowerBound`, sorted and disjoint.
    static func ranges(in file: ELFFile, loadBias: UInt, within range: Range<UInt>) -> [Range<UInt32>] {
        var found: [Range<UInt32>] = []
        for dynamic in [false, true] {
            try? file.forEachSymbol(dynamic: dynamic) { symbol, strings in
                guard symbol.isFunction, symbol.size > 0, symbol.value != 0,
                    isFuncletName(in: strings, at: Int(symbol.nameOffset))
                else { return }
                let begin = UInt(truncatingIfNeeded: symbol.value) &+ loadBias
                let end = begin &+ UInt(truncatingIfNeeded: symbol.size)
                guard begin >= range.lowerBound, end <= range.upperBound, begin < end else { return }
                found.append(UInt32(begin - range.lowerBound)..<UInt32(end - range.lowerBound))
            }
        }
        found.sort { $0.lowerBound < $1.lowerBound }
        var merged: [Range<UInt32>] = []
        for funclet in found {
            if let last = merged.last, funclet.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, funclet.upperBound)
            } else {
                merged.append(funclet)
            }
        }
        return merged
    }

    /// Whether the NUL-terminated name at `offset` of `strings` is a Swift async funclet's, checked
    /// on the raw bytes (symbol tables hold hundreds of thousands of names).
    static func isFuncletName(in strings: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        guard offset >= 0, offset + 2 < strings.count, strings[offset] == UInt8(ascii: "$"),
            strings[offset + 1] == UInt8(ascii: "s")
        else { return false }
        var end = offset
        while end < strings.count, strings[end] != 0 { end += 1 }
        // ..."T" ("Y" | "Q") digits* "_"
        var index = end - 1
        guard index > offset + 2, strings[index] == UInt8(ascii: "_") else { return false }
        index -= 1
        while index > offset, strings[index] >= UInt8(ascii: "0"), strings[index] <= UInt8(ascii: "9") { index -= 1 }
        guard index > offset + 1 else { return false }
        let kind = strings[index]
        return (kind == UInt8(ascii: "Y") || kind == UInt8(ascii: "Q")) && strings[index - 1] == UInt8(ascii: "T")
    }
}
