/// Function names for raw addresses of this process, like Go's `runtime.FuncForPC(pc).Name()`: what
/// the `/debug/pprof/symbol` endpoint answers when `go tool pprof` asks it to symbolize addresses.
///
/// Addresses are location addresses as profiles carry them: call PCs (return address − 1) or
/// interrupted PCs. Any value is safe to pass; the memory at an address is never read.
public enum ProcessSymbols {
    /// The demangled name of the function whose code contains `address` (for inlined code, the
    /// innermost function), or `nil` when no loaded image's code or symbol covers it.
    public static func functionName(containing address: UInt) -> String? {
        functionNames(containing: [address])[address]
    }

    /// The names of the functions containing each address that some function covers; addresses
    /// outside every loaded image's code, or covered by no symbol, are absent from the result.
    public static func functionNames(containing addresses: some Sequence<UInt>) -> [UInt: String] {
        // One look at the loaded images for the whole batch: only addresses inside some image's
        // code reach the symbolizer, so arbitrary input (this is fed from HTTP requests) costs
        // little per address and cannot fill the symbolizer's per-address cache with misses.
        let code = LoadedImages.current().flatMap(\.executableRanges).sorted { $0.lowerBound < $1.lowerBound }
        var names: [UInt: String] = [:]
        var seen = Set<UInt>()
        for address in addresses where seen.insert(address).inserted {
            guard isInside(address, code), let name = Symbolizer.shared.frames(at: address).first?.name else {
                continue
            }
            names[address] = name
        }
        return names
    }

    /// Whether `address` is in one of `ranges` (sorted by start, not overlapping).
    private static func isInside(_ address: UInt, _ ranges: [Range<UInt>]) -> Bool {
        var low = 0
        var high = ranges.count
        while low < high {
            let mid = (low + high) / 2
            if ranges[mid].lowerBound <= address { low = mid + 1 } else { high = mid }
        }
        return low > 0 && ranges[low - 1].contains(address)
    }
}
